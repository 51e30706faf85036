"""FSDP2 checkpoints on 2 gloo ranks: each sharded save is written beside its target and swapped in, and a torn
`last.ckpt/` is set aside by the next run (one warning line) instead of failing every restart."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from helpers import ROOT
from helpers.small_runs import env, overrides, small_sample, varied_tiny_checkpoint

FSDP2 = ["trainer=fsdp2", "trainer.accelerator=cpu", "trainer.devices=2", "trainer.precision=32-true"]


def train(args: list[str], log) -> int:
    with open(log, "w") as handle:
        proc = subprocess.run(
            [sys.executable, "-m", "xrobust.train", *args], cwd=ROOT, stdout=handle, stderr=subprocess.STDOUT, env=env()
        )
    return proc.returncode


def test_a_torn_sharded_last_checkpoint_is_set_aside(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    run_dir = tmp_path / "run"
    args = overrides(varied_tiny_checkpoint(tmp_path / "tiny"), small_sample(data), *FSDP2)
    # Two validations, so last.ckpt/ is saved twice: the second save replaces a whole folder.
    args += ["trainer.max_steps=4", "trainer.val_check_interval=2", "checkpoint.keep_after_success=all"]
    args += [f"hydra.run.dir={run_dir}"]
    assert train(args, tmp_path / "first.log") == 0, (tmp_path / "first.log").read_text()[-3000:]
    checkpoints = run_dir / "checkpoints"
    lasts = resume_points(checkpoints)  # last.ckpt, and last-v1.ckpt of the time-interval callback if it saved
    assert sorted(p.name for p in lasts[-1].iterdir()) == [".metadata", "__0_0.distcp", "__1_0.distcp", "meta.pt"]
    assert not [p.name for p in checkpoints.iterdir() if p.name.startswith(".")]  # no staging folder left

    torn = lasts[-1]
    (torn / ".metadata").unlink()  # as a save killed before its coordinator finished leaves it
    (run_dir / "results.json").unlink()
    assert train(args, tmp_path / "again.log") == 0, (tmp_path / "again.log").read_text()[-3000:]
    log = (tmp_path / "again.log").read_text()
    assert f"is incomplete (a write was cut short): set aside as {torn.name}.torn" in log
    if len(lasts) > 1:
        assert f"Restoring states from the checkpoint path at {lasts[-2]}" in log
    else:
        assert "this stage starts afresh" in log
    assert (checkpoints / f"{torn.name}.torn").is_dir()
    assert json.loads((run_dir / "results.json").read_text())["model_selection"]["steps_run"] == 4

    # A shard of the right length but wrong bytes passes every check before the resume: torch's
    # CheckpointException (a BaseException) ends the run with one line, not a traceback.
    shard = resume_points(checkpoints)[-1] / "__0_0.distcp"
    shard.write_bytes(bytes(len(shard.read_bytes())))
    (run_dir / "results.json").unlink()
    assert train(args, tmp_path / "corrupt.log") == 1
    log = (tmp_path / "corrupt.log").read_text()
    errors = {line for line in log.splitlines() if line.startswith("xrobust: error:")}
    assert len(errors) == 1 and "distributed checkpoint failed: rank 0: " in errors.pop()
    assert "Traceback" not in log


def resume_points(checkpoints: Path) -> list[Path]:
    """The checkpoints `ckpt_path=last` chooses among, oldest first (Lightning takes the newest)."""
    return sorted(checkpoints.glob("last*.ckpt"), key=lambda p: p.stat().st_mtime)
