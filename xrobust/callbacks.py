"""Callbacks for what a long unattended sweep needs beyond Lightning's own: pre-emption and non-finite losses."""

from __future__ import annotations

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import OnExceptionCheckpoint

from xrobust.errors import XrobustError


class NonFiniteLoss(XrobustError):
    """The loss became NaN or inf: the current weights are not worth a checkpoint."""


class CrashCheckpoint(OnExceptionCheckpoint):
    """Save on SIGTERM (SLURM pre-emption) or a crash, so `ckpt_path=last` resumes; never on a NaN loss. The
    exception carries the step it stopped at (`exception.step`), for the job's failed.json."""

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        exception.step = trainer.global_step
        if not isinstance(exception, NonFiniteLoss):
            super().on_exception(trainer, pl_module, exception)


class FiniteLossGuard(pl.Callback):
    """Stop before a NaN/inf loss reaches the weights, naming the step and the likely cause.

    The decision is taken across ranks: every rank stops together, so none waits in the gradient all-reduce for
    a rank that stopped."""

    def on_before_backward(self, trainer: pl.Trainer, pl_module: pl.LightningModule, loss: torch.Tensor) -> None:
        finite_here = bool(torch.isfinite(loss).all())
        if trainer.strategy.reduce_boolean_decision(finite_here, all=True):
            return
        lr = trainer.optimizers[0].param_groups[0]["lr"] if trainer.optimizers else None
        noise = getattr(pl_module, "noise", None)
        noise_params = noise.params() if noise is not None else {}
        value = loss.item() if not finite_here else "non-finite on another rank"
        raise NonFiniteLoss(
            f"training loss became {value} at step {trainer.global_step} (epoch {trainer.current_epoch}); "
            f"likely cause: a learning rate or noise strength too large (lr={lr}, noise={noise_params}); "
            "the weights are unchanged and the last good checkpoint is kept"
        )
