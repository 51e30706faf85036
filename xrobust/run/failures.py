"""A failed job of a multirun records why in its folder and lets the sweep go on; the sweep ends non-zero.

Hydra's basic sweeper re-raises a job's exception only after the whole batch, skipping the multirun's end
callbacks, and a SystemExit leaves the launcher at once: so a multirun job returns normally after writing
failed.json, and `FailedJobs` (conf/hydra/default.yaml) counts those files when the multirun ends.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from xrobust.errors import XrobustError
from xrobust.run.results import write_json
from xrobust.status import FAILED_FILE, sweep_status


def one_line(err: BaseException) -> str:
    """An XrobustError's message says what and where; any other exception is named by its type too."""
    text = " ".join(str(err).split())
    return text if isinstance(err, XrobustError) else f"{type(err).__name__}: {text}"


def record_failure(run_dir: Path, err: BaseException, exit_status: int) -> str:
    """Write failed.json (the one-line error, the exit status a single run would end with, the step when
    training had started) and return the line."""
    line = one_line(err)
    write_json(run_dir / FAILED_FILE, {"error": line, "exit_status": exit_status, "step": getattr(err, "step", None)})
    return line


def clear_failure(run_dir: Path) -> None:
    """A job that starts again is no longer failed."""
    (run_dir / FAILED_FILE).unlink(missing_ok=True)


class FailedJobs(Callback):
    """At the end of a multirun: say how many jobs failed, where to read why, and exit 1 if any did."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep = Path(config.hydra.sweep.dir)
        jobs, _ = sweep_status(sweep)
        failed = [job for job in jobs if job.state == "failed"]
        if not failed:
            return
        print(f"xrobust: {len(failed)} of {len(jobs)} jobs failed:", file=sys.stderr)
        for job in failed:
            print(f"  {job.folder.name}: {job.detail}", file=sys.stderr)
        print(f"xrobust: status and the command that completes the sweep: xrobust-status {sweep}", file=sys.stderr)
        sys.exit(1)
