"""Model selection on English dev accuracy where an equal score counts as a new best: of tied epochs the later
one is kept (Lightning's ModelCheckpoint keeps the first), since it has trained longer at the same dev score."""

from __future__ import annotations

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint


class LatestBestCheckpoint(ModelCheckpoint):
    """`ModelCheckpoint` whose comparisons are >= (mode max) or <= (mode min) instead of strict."""

    def check_monitor_top_k(self, trainer: pl.Trainer, current: torch.Tensor | None = None) -> bool:
        if current is None or self.save_top_k == -1 or len(self.best_k_models) < self.save_top_k:
            return super().check_monitor_top_k(trainer, current)
        monitor_op = {"min": torch.le, "max": torch.ge}[self.mode]
        better_or_equal = monitor_op(current, self.best_k_models[self.kth_best_model_path])
        # With several devices every process must take the same decision.
        return trainer.strategy.reduce_boolean_decision(bool(better_or_equal))

    def _update_best_and_save(self, current, trainer, monitor_candidates) -> None:
        super()._update_best_and_save(current, trainer, monitor_candidates)
        # Of the kept checkpoints tied at the best score, the latest (dicts keep insertion order).
        tied = [path for path, score in self.best_k_models.items() if score == self.best_model_score]
        self.best_model_path = tied[-1]
