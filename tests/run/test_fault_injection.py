"""Fault injection: a run SIGKILLed at a seeded step (mid-epoch included) and resumed with the same command ends as
the uninterrupted run, bit for bit (predictions.tsv, results.json's metrics, every row of metrics.csv), for every
noise method, in one process and on 2 DDP ranks (gloo). A tiny random XLM-R keeps each run to seconds; the
uninterrupted runs are shared by the kill tests of their cell."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from helpers import ROOT
from helpers.small_runs import env, overrides, small_sample, varied_tiny_checkpoint

NOISES = ["none", "rs_rp", "code_switch", "adv"]  # code_switch: rs_da's augmentation without its file
FP32 = "trainer.precision=32-true"  # the same arithmetic on every machine and rank count
RANKS = {1: [FP32], 2: ["trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2", FP32]}
# 3 batches an epoch (64 pairs, batches of 8, 2 ranks: 4 each, limited to 3), 7 steps: epochs end after steps 3
# and 6; validation and last.ckpt after every step, so most kills land mid-epoch.
SCHEDULE = ["trainer.max_steps=7", "trainer.limit_train_batches=3", "trainer.val_check_interval=1"]
SCHEDULE += ["+callbacks.model_checkpoint.save_on_train_epoch_end=false"]
SCHEDULE += ["trainer.limit_val_batches=1", "logger=csv", "trainer.log_every_n_steps=1", "data.max_length=32"]
# The checkpointed step after which each cell's run is killed: seeded, so a failure reproduces.
KILL_AT = {(noise, ranks): random.Random(f"{noise}/{ranks}").randint(1, 6) for noise in NOISES for ranks in RANKS}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return varied_tiny_checkpoint(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="module")
def small_data(tmp_path_factory) -> Path:
    return small_sample(tmp_path_factory.mktemp("small-sample"))


def command(tiny: Path, data: Path, noise: str, ranks: int, run_dir: Path) -> list[str]:
    args = overrides(tiny, data, f"noise={noise}", *RANKS[ranks], *SCHEDULE)
    args = [arg for arg in args if arg != "logger=none"]
    return [sys.executable, "-m", "xrobust.train", *args, f"hydra.run.dir={run_dir}"]


def start(args: list[str], log: Path) -> subprocess.Popen:
    """In its own session, so that a SIGKILL to the group takes every rank at once, as a lost node does."""
    with open(log, "w") as handle:
        return subprocess.Popen(
            args, cwd=ROOT, stdout=handle, stderr=subprocess.STDOUT, env=env(), start_new_session=True
        )


def finish(args: list[str], log: Path) -> str:
    proc = start(args, log)
    assert proc.wait(timeout=300) == 0, log.read_text()[-3000:]
    return log.read_text()


def outcome(run_dir: Path) -> dict:
    """What must not depend on an interruption: the predictions, the metrics, and every logged row."""
    results = json.loads((run_dir / "results.json").read_text())
    return {
        "predictions": (run_dir / "predictions.tsv").read_text(),
        "accuracy": results["accuracy"],
        "model_selection": results["model_selection"],
        "metrics.csv": (run_dir / "csv" / "metrics.csv").read_text(),
    }


def checkpointed_step(run_dir: Path) -> int:
    last = run_dir / "checkpoints" / "last.ckpt"
    return torch.load(last, map_location="cpu", weights_only=True)["global_step"] if last.is_file() else 0


def kill_after(step: int, run_dir: Path, proc: subprocess.Popen) -> bool:
    """SIGKILL every rank once last.ckpt holds `step`. Each save renames a new file into place; on seeing one the
    watcher freezes the ranks (SIGSTOP) before reading its step, so the run cannot move on meanwhile. False when the
    run outran the watcher (a starved test process missed the saves up to its end): a race of the harness, not a
    finding about resume."""
    last, seen, deadline = run_dir / "checkpoints" / "last.ckpt", None, time.monotonic() + 300
    while True:
        if proc.poll() is not None:
            return False
        assert time.monotonic() < deadline, "timed out"
        try:
            stat = last.stat()
        except FileNotFoundError:
            stat = None
        signature = None if stat is None else (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        if signature is not None and signature != seen:
            seen = signature
            os.killpg(proc.pid, signal.SIGSTOP)
            if checkpointed_step(run_dir) >= step:
                break
            os.killpg(proc.pid, signal.SIGCONT)
        time.sleep(0.005)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    return True


@pytest.fixture(scope="module")
def uninterrupted(tiny, small_data, tmp_path_factory):
    """The uninterrupted run of each (noise, ranks) cell, made on first use."""
    made: dict[tuple[str, int], dict] = {}

    def get(noise: str, ranks: int) -> dict:
        if (noise, ranks) not in made:
            run_dir = tmp_path_factory.mktemp(f"reference-{noise}-{ranks}")
            finish(command(tiny, small_data, noise, ranks, run_dir / "run"), run_dir / "log")
            made[noise, ranks] = outcome(run_dir / "run")
        return made[noise, ranks]

    return get


@pytest.mark.parametrize("ranks", list(RANKS))
@pytest.mark.parametrize("noise", NOISES)
def test_sigkill_then_resume_is_the_uninterrupted_run(tiny, small_data, uninterrupted, noise, ranks, tmp_path):
    expected = uninterrupted(noise, ranks)
    for attempt in range(3):
        run_dir = tmp_path / f"run-{attempt}"
        args = command(tiny, small_data, noise, ranks, run_dir)
        if kill_after(KILL_AT[noise, ranks], run_dir, start(args, tmp_path / f"killed-{attempt}.log")):
            break
        print(f"the run ended before the watcher saw step {KILL_AT[noise, ranks]}: trying again")
    else:
        pytest.fail("three runs in a row ended before the watcher could kill them")
    resumed_from = checkpointed_step(run_dir)
    assert not (run_dir / "results.json").exists()

    log = finish(args, tmp_path / "resumed.log")
    assert "Restoring states from the checkpoint" in log
    assert "resume is not exact" not in log and "not resumable" not in log
    mid_epoch = resumed_from % 3 != 0
    print(f"fault: SIGKILL after step {resumed_from} ({'mid-epoch' if mid_epoch else 'epoch end'}), {noise}, {ranks}")
    assert outcome(run_dir) == expected
    assert json.loads((run_dir / "results.json").read_text())["resume"] == {"exact": True, "reason": None}
