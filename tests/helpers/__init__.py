"""What the tests import: the repository's paths, the debug config the users run too (conf/debug/fast.yaml),
composing the real configs and running the CLIs as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from omegaconf import open_dict

from xrobust.config.composition import schema_error

ROOT = Path(__file__).resolve().parents[2]
CONF_DIR = ROOT / "conf"
SHARED_DATA = ROOT.parent / "shared" / "data"

# Small, fast settings for end-to-end runs on the packaged sample: the debug config users run too.
FAST = ["debug=fast"]


def compose_config(overrides: list[str], output_dir: Path | None = None):
    """Compose conf/train.yaml exactly as the CLI would, with the run folder set to output_dir; an override a schema
    refuses is the XrobustError line the CLI prints."""
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        try:
            cfg = compose("train", overrides=overrides, return_hydra_config=True)
        except Exception as err:
            line = schema_error(err)
            if line is None:
                raise
            raise line from None
    if output_dir is not None:
        with open_dict(cfg):
            cfg.hydra.runtime.output_dir = str(output_dir)
    HydraConfig.instance().set_config(cfg)
    return cfg


def run_cli(args: list[str], cwd: Path, timeout: int = 600, env: dict | None = None):
    """Run `python -m xrobust.train` in a subprocess, as a user would."""
    full_env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "xrobust.train", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
    )


def run_report(args: list[str], capsys) -> tuple[int, str, str]:
    """xrobust-report in this process: its exit code, stdout and stderr."""
    from xrobust.report.cli import main

    try:
        main(args)
        code = 0
    except SystemExit as exit_:
        code = exit_.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err
