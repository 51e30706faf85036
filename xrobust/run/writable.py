"""The run folder must take writes, checked before anything is trained: a folder that cannot hold checkpoints and
results is one line at start-up, not a traceback from Hydra's mkdir or a training lost at its final write."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from xrobust import console
from xrobust.errors import XrobustError


def check_writable(folder: Path, key: str = "hydra.run.dir") -> None:
    """Create `folder` (as Hydra would) and a scratch file in it; refuse the folder naming the key that set it."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as err:
        raise XrobustError(
            f"run folder {folder} is not writable ({err.strerror or err}): choose another with {key}=..."
        ) from None


class WritableRunFolder(Callback):
    """Hydra callback (conf/hydra/default.yaml): checks hydra.run.dir, or hydra.sweep.dir for a multirun, before
    Hydra creates it, whose own error would be a traceback with exit status 1."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._check(Path(str(config.hydra.run.dir)), "hydra.run.dir")

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._check(Path(str(config.hydra.sweep.dir)), "hydra.sweep.dir")

    @staticmethod
    def _check(folder: Path, key: str) -> None:
        try:
            check_writable(folder, key)
        except XrobustError as err:
            console.say(f"xrobust: error: {err}")
            sys.exit(2)
