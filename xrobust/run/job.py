"""Job: one training stage's parts (built by run/stages.py's build_job) and what fitting it selected (read by
run/results.py); its own module so that results.py needs nothing of stages.py, which writes through it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pytorch_lightning as pl
    from pytorch_lightning.loggers import Logger

    from xrobust.data.datamodule import TransferDataModule
    from xrobust.lightning.module import TransferModule
    from xrobust.noise.base import NoiseMethod


@dataclass
class Job:
    """Everything one training stage needs, built from the config, and what fitting it selected."""

    noise: NoiseMethod
    datamodule: TransferDataModule
    module: TransferModule
    trainer: pl.Trainer
    logger: Logger | bool
    # The ckpt_path that evaluating the selection passes to the trainer: "best" (the checkpoint with the best
    # dev-en accuracy), or None when nothing was checkpointed (the weights as trained).
    selected: str | None = None
    best_val_acc: float | None = None
    # Read right after fit: testing the selected checkpoint restores the callbacks' state as of that epoch.
    early_stopped: bool | None = None
    train_seconds: float = 0.0
    # eval.test_last: the test results of the weights after the last epoch (before the selection was loaded).
    last_epoch_results: dict | None = None
    # Seconds spent building: "data" (tokenizer and every split read), "data_setup" (the reading alone).
    timings: dict[str, float] = field(default_factory=dict)
    # The read-outs of the model as built, before fit (xrobust/diagnostics/hooks.py's before_training), by name.
    diagnostics: dict = field(default_factory=dict)
