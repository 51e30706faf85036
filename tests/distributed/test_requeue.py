"""A time-limit requeue signal on one rank of two: both ranks save one last.ckpt together at the same step, exit
promptly with the requeue status, and the same command resumes to the uninterrupted run's results."""

from __future__ import annotations

import os
import re
import signal
import time

import psutil
import pytest
import torch
from helpers.small_runs import small_sample, varied_tiny_checkpoint
from test_sharded import DDP, job, predictions, start, train

from xrobust.lightning.requeue import REQUEUE_EXIT_STATUS, RequeueOnSignal

# 6 epochs of 4 steps; the signal is sent after the first epoch's save, so 20 steps (seconds) remain for it to
# land even when the test process is starved of CPU.
SCHEDULE = ["trainer.max_epochs=6", "trainer.limit_train_batches=4", "callbacks.requeue.check_every_n_steps=1"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return varied_tiny_checkpoint(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="module")
def small_data(tmp_path_factory):
    return small_sample(tmp_path_factory.mktemp("small-sample"))


def rank_process(main_pid: int, rank: int) -> psutil.Process:
    """The process of local rank `rank`: rank 0 is the command itself, the others the copies Lightning starts."""
    if rank == 0:
        return psutil.Process(main_pid)
    for child in psutil.Process(main_pid).children(recursive=True):
        if child.environ().get("LOCAL_RANK") == str(rank):
            return child
    raise AssertionError(f"no process of rank {rank}")


def test_a_requeue_signal_on_one_rank_saves_on_both_then_resumes_as_uninterrupted(tiny, small_data, tmp_path):
    reference = train(job(tiny, small_data, tmp_path / "reference", *DDP, *SCHEDULE), tmp_path / "reference.log")

    run_dir, log = tmp_path / "requeued", tmp_path / "requeued.log"
    args = job(tiny, small_data, run_dir, *DDP, *SCHEDULE)
    proc = start(args, log)
    last = run_dir / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + 300
    while not last.exists():  # the first epoch's last.ckpt: both ranks are training, the handler installed
        assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(0.1)
    first_save = last.stat().st_mtime_ns
    os.kill(rank_process(proc.pid, 1).pid, signal.SIGUSR2)  # rank 1 only
    signalled = time.monotonic()
    assert proc.wait(timeout=120) == REQUEUE_EXIT_STATUS, log.read_text()[-3000:]
    print(f"signal to exit: {time.monotonic() - signalled:.1f} s")

    saved = [int(step) for step in re.findall(r"requeue signal: saved .* at step (\d+)", log.read_text())]
    assert len(saved) == 2 and saved[0] == saved[1], log.read_text()[-3000:]  # both ranks, one step
    assert last.stat().st_mtime_ns > first_save
    checkpoint = torch.load(last, weights_only=True)
    assert checkpoint["global_step"] == saved[0] > 4  # after the signal, not the epoch-end save
    assert len(checkpoint["rank_random_states"]) == 2  # both ranks took part in the save
    assert not (run_dir / "checkpoints" / "on_exception.ckpt").exists()
    assert not (run_dir / "results.json").exists()

    resumed = train(args, tmp_path / "resumed.log")
    assert "Restoring states from the checkpoint" in (tmp_path / "resumed.log").read_text()
    assert resumed["model_selection"]["steps_run"] == reference["model_selection"]["steps_run"] == 24
    assert resumed["accuracy"] == reference["accuracy"]
    assert predictions(run_dir) == predictions(tmp_path / "reference")


def test_bad_settings_are_one_line_naming_the_key():
    with pytest.raises(Exception, match="callbacks.requeue.signal_name='USR9'"):
        RequeueOnSignal(signal_name="USR9")
    with pytest.raises(Exception, match="check_every_n_steps=0"):
        RequeueOnSignal(check_every_n_steps=0)
    assert RequeueOnSignal(signal_name="SIGUSR1").signum == signal.SIGUSR1


def test_last_ckpt_is_also_written_every_half_hour_of_training(tmp_path):
    """conf/callbacks/default.yaml's last_every: Lightning's time-interval checkpoint, writing the same last.ckpt
    that `ckpt_path=last` resumes from, and no other file."""
    from datetime import timedelta

    from helpers import compose_config
    from hydra.utils import instantiate

    callbacks = compose_config([], tmp_path).callbacks
    last_every, main = instantiate(callbacks.last_every), instantiate(callbacks.model_checkpoint)
    assert last_every._train_time_interval == timedelta(minutes=30)
    assert last_every.save_top_k == 0 and last_every.save_last is True and last_every.dirpath == main.dirpath
    assert isinstance(instantiate(callbacks.requeue), RequeueOnSignal)
