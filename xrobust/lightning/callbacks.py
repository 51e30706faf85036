"""Callbacks for what a long unattended sweep needs beyond Lightning's own: pre-emption and non-finite losses."""

from __future__ import annotations

import pytorch_lightning as pl
import torch
import torch.distributed as dist
from pytorch_lightning.callbacks import OnExceptionCheckpoint
from pytorch_lightning.trainer.states import TrainerFn
from pytorch_lightning.utilities.rank_zero import rank_zero_warn

from xrobust.errors import XrobustError
from xrobust.lightning.requeue import Requeued


class NonFiniteLoss(XrobustError):
    """The loss became NaN or inf: the current weights are not worth a checkpoint."""


class CrashCheckpoint(OnExceptionCheckpoint):
    """Save on SIGTERM (SLURM pre-emption) or a crash, so `ckpt_path=last` resumes; never on a NaN loss, and never
    before a training step of this fit: an exception while resuming comes after the weights are restored but
    before the optimizer and loops are, and that half-restored state, newer than last.ckpt, would be resumed from
    next. The exception carries the step it stopped at (`exception.step`, for failed.json) and the checkpoint
    written (`exception.checkpoint`, None when none was)."""

    def __init__(self, dirpath, filename: str = "on_exception") -> None:
        super().__init__(dirpath, filename)
        self.started_at_step: int | None = None  # global_step when training started or resumed

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.started_at_step = trainer.global_step

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        exception.step = trainer.global_step
        exception.checkpoint = None
        if isinstance(exception, NonFiniteLoss | Requeued):  # Requeued: last.ckpt is already saved
            return
        if self.started_at_step is None or trainer.global_step <= self.started_at_step:
            rank_zero_warn(
                "no training step since this run started or resumed: no crash checkpoint written "
                "(the checkpoints already in the folder, if any, stay the resume point)"
            )
            return
        super().on_exception(trainer, pl_module, exception)
        exception.checkpoint = self.ckpt_path


class FiniteLossGuard(pl.Callback):
    """Stop before a NaN/inf loss reaches the weights, naming the step and the likely cause.

    Without a host sync on the hot path where the optimizer allows it: an optimizer that takes `found_inf` (torch's
    fused Adam/AdamW, as GradScaler uses them) skips its step on the device once any rank's loss was non-finite,
    so the weights stay unchanged, and the flag is read every `check_every_n_steps` steps, before each validation
    and at the end of an epoch or of training. Any other optimizer is checked before every backward (a sync per
    step). Either way every rank decides together, so none waits in a collective for a rank that stopped."""

    def __init__(self, check_every_n_steps: int = 50):
        if check_every_n_steps < 1:
            raise XrobustError(f"callbacks.finite_loss_guard.check_every_n_steps={check_every_n_steps}: must be >= 1")
        self.check_every_n_steps = check_every_n_steps
        # Device tensors: the first non-finite loss seen since the last check, and the step it was seen at.
        self.bad_loss: torch.Tensor | None = None
        self.bad_step: torch.Tensor | None = None

    def on_before_backward(self, trainer: pl.Trainer, pl_module: pl.LightningModule, loss: torch.Tensor) -> None:
        if not skips_on_device(trainer):
            finite_here = bool(torch.isfinite(loss).all())
            if not trainer.strategy.reduce_boolean_decision(finite_here, all=True):
                raise self.error(trainer, pl_module, loss.item() if not finite_here else "non-finite on another rank")
            return
        loss = loss.detach().float()
        bad = ~torch.isfinite(loss).all()
        if dist.is_available() and dist.is_initialized():  # asynchronous on NCCL: no host sync
            bad = bad.float()
            dist.all_reduce(bad, op=dist.ReduceOp.MAX)
            bad = bad.bool()
        if self.bad_loss is None:
            self.bad_loss = torch.zeros((), device=loss.device)
            self.bad_step = torch.full((), -1, dtype=torch.long, device=loss.device)
        first = bad & (self.bad_step < 0)
        self.bad_loss = torch.where(first, loss, self.bad_loss)
        self.bad_step = torch.where(first, trainer.global_step, self.bad_step)

    def on_before_optimizer_step(self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer) -> None:
        if self.bad_step is not None and skips_on_device(trainer):
            optimizer.found_inf = (self.bad_step >= 0).float()

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args) -> None:
        if trainer.global_step % self.check_every_n_steps == 0:
            self.check(trainer, pl_module)

    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.state.fn == TrainerFn.FITTING:
            self.check(trainer, pl_module)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.check(trainer, pl_module)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.check(trainer, pl_module)

    def check(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """The synced point: the flag is the same on every rank (all-reduced), so every rank raises together."""
        if self.bad_step is None or int(self.bad_step) < 0:
            return
        step, value = int(self.bad_step), self.bad_loss.item()
        raise self.error(trainer, pl_module, value, step)

    @staticmethod
    def error(trainer: pl.Trainer, pl_module: pl.LightningModule, value, step: int | None = None) -> NonFiniteLoss:
        lr = trainer.optimizers[0].param_groups[0]["lr"] if trainer.optimizers else None
        noise = getattr(pl_module, "noise", None)
        noise_params = noise.params() if noise is not None else {}
        step = trainer.global_step if step is None else step
        return NonFiniteLoss(
            f"training loss became {value} at step {step} (epoch {trainer.current_epoch}); "
            f"likely cause: a learning rate or noise strength too large (lr={lr}, noise={noise_params}); "
            "the weights are unchanged and the last good checkpoint is kept"
        )


def skips_on_device(trainer: pl.Trainer) -> bool:
    """Whether every optimizer skips its own step given a `found_inf` tensor (torch's fused Adam/AdamW do)."""
    optimizers = trainer.optimizers
    return bool(optimizers) and all(getattr(opt, "_step_supports_amp_scaling", False) for opt in optimizers)
