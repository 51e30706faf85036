"""A time-limit requeue that saves on every rank: the signal only sets a flag; at a step boundary the ranks agree
(all-reduced), every rank takes part in saving last.ckpt, rank 0 requeues the job, and every rank exits.

submitit's own handler (SIGUSR2 by default, SUBMITIT_PREEMPT_SIGNAL) requeues and exits on global rank 0 inside
the handler, so a checkpoint that needs every rank (random-state gather, sharded save) waits for a rank that is
gone. Here that handler is kept and called only after the collective save: it pickles the job for the next
submission and runs `scontrol requeue` (on SLURM) or exits with submitit-local's requeue status. Without submitit,
rank 0 requeues a SLURM job itself; outside SLURM the run only saves and exits for the same command to resume.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
from pathlib import Path
from types import FrameType

import pytorch_lightning as pl
from pytorch_lightning.callbacks import ModelCheckpoint

from xrobust.errors import XrobustError

log = logging.getLogger("xrobust")

# What a rank exits with after the requeue when submitit does not decide it: submitit-local's requeue status, which
# its controller restarts on; SLURM restarts a job that `scontrol requeue` requeued whatever its tasks exit with.
REQUEUE_EXIT_STATUS = 144
LAST = ModelCheckpoint.CHECKPOINT_NAME_LAST + ModelCheckpoint.FILE_EXTENSION


class Requeued(SystemExit):
    """Every rank leaves fit through this once last.ckpt is saved and the job requeued: a clean exit, not a crash
    (CrashCheckpoint saves nothing for it)."""


class RequeueOnSignal(pl.Callback):
    """On `signal_name` (submitit's time-limit signal, USR2 unless SUBMITIT_PREEMPT_SIGNAL names another) save
    last.ckpt with every rank and requeue. The flag is read every `check_every_n_steps` optimizer steps (one
    all-reduce each): the signal must come that many steps plus one save before the limit
    (hydra.launcher.signal_delay_s)."""

    def __init__(self, signal_name: str | None = None, check_every_n_steps: int = 10):
        name = signal_name or os.environ.get("SUBMITIT_PREEMPT_SIGNAL", "USR2")
        self.signum = getattr(signal, f"SIG{name.upper().removeprefix('SIG')}", None)
        if not isinstance(self.signum, signal.Signals):
            raise XrobustError(f"callbacks.requeue.signal_name={name!r}: not a signal name (e.g. USR2)")
        if check_every_n_steps < 1:
            raise XrobustError(f"callbacks.requeue.check_every_n_steps={check_every_n_steps}: must be >= 1")
        self.check_every_n_steps = check_every_n_steps
        self.requested = False
        self.previous_handler = None

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage == "fit":
            self.previous_handler = signal.signal(self.signum, self.request)

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage == "fit" and self.previous_handler is not None:
            signal.signal(self.signum, self.previous_handler)
            self.previous_handler = None

    def request(self, signum: int, frame: FrameType | None) -> None:
        """The signal handler: only a flag, read at the next step boundary."""
        self.requested = True

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args) -> None:
        if trainer.global_step % self.check_every_n_steps != 0:
            return
        if trainer.strategy.reduce_boolean_decision(self.requested, all=False):
            self.save_and_requeue(trainer)

    def save_and_requeue(self, trainer: pl.Trainer) -> None:
        path = checkpoint_dir(trainer) / LAST
        trainer.save_checkpoint(path)  # collective: every rank takes part
        trainer.strategy.barrier("requeue-saved")
        log.warning("requeue signal: saved %s at step %d; requeueing", path, trainer.global_step)
        status = requeue(self.previous_handler, self.signum, trainer.is_global_zero)
        raise Requeued(status)


def checkpoint_dir(trainer: pl.Trainer) -> Path:
    """Where `ckpt_path=last` looks: the model checkpoint's folder."""
    callback = trainer.checkpoint_callback
    if callback is None or callback.dirpath is None:
        return Path(trainer.default_root_dir) / "checkpoints"
    return Path(callback.dirpath)


def requeue(previous_handler, signum: int, global_zero: bool) -> int:
    """Requeue the job (rank 0) and return the exit status every rank leaves with."""
    handler = submitit_handler(previous_handler)
    if handler is not None:
        try:
            handler(signum, None)  # rank 0: pickles the job, requeues, exits; other ranks: returns
        except SystemExit as exit_:
            return exit_.code if isinstance(exit_.code, int) else REQUEUE_EXIT_STATUS
        return REQUEUE_EXIT_STATUS
    job_id = os.environ.get("SLURM_ARRAY_JOB_ID") or os.environ.get("SLURM_JOB_ID")
    if global_zero and job_id:
        task = os.environ.get("SLURM_ARRAY_TASK_ID")
        subprocess.run(["scontrol", "requeue", f"{job_id}_{task}" if task else job_id], check=True, timeout=60)
    return REQUEUE_EXIT_STATUS


def submitit_handler(handler):
    """submitit's checkpoint-and-requeue handler when it was the one installed (a submitit job), else None."""
    try:
        from submitit.core.job_environment import SignalHandler
    except ImportError:  # submitit is the [cluster] extra
        return None
    return handler if isinstance(getattr(handler, "__self__", None), SignalHandler) else None
