"""The stop a halving sweep's rung puts on a job (`+callbacks.rung_stop`, added by hydra/sweeper=halving).

Fitting ends once `epochs` epochs are done while trainer.max_epochs, and with it the learning-rate schedule, stays the
full run's: the rung is a prefix of the full run, so a job the sweeper keeps resumes from its last.ckpt and ends as
if it had never stopped.
"""

from __future__ import annotations

import logging

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback

log = logging.getLogger("xrobust")


class RungStop(Callback):
    """Sets trainer.should_stop at the end of epoch `epochs` (after its validation and checkpoints), or at the start
    when a resumed job is already that far."""

    def __init__(self, epochs: int) -> None:
        self.epochs = epochs

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._stop_after(trainer, trainer.current_epoch)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._stop_after(trainer, trainer.current_epoch + 1)

    def _stop_after(self, trainer: pl.Trainer, epochs_done: int) -> None:
        if epochs_done >= self.epochs and not trainer.should_stop:
            trainer.should_stop = True
            log.info("rung stop: fitting ends after epoch %d of at most %s", epochs_done, trainer.max_epochs)
