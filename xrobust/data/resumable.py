"""The training DataLoader that a checkpoint can stop mid-epoch: a resume takes the batches an uninterrupted run
would have taken next, or says in one line (and in results.json's `resume`) why it cannot.

The state is the position (epoch, batches taken) and what fixes the order (the sampler's `describe()`, the batch
size); the order itself is recomputed from them (xrobust/data/sampling.py). Lightning's fit loop saves the state of
a training loader that has one, but restores it only when the loader is made after the checkpoint is loaded, and
`trainer.estimated_stepping_batches` (the LR schedule) makes it before; so the datamodule carries it too
(`TransferDataModule.state_dict`), and Lightning restores that before anything asks for a loader.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import torch
from lightning_fabric.utilities.rank_zero import rank_zero_only
from torch.utils.data import DataLoader

log = logging.getLogger("xrobust")


class ResumableLoader(DataLoader):
    """A DataLoader over a `TrainingOrder` sampler that counts the batches it hands out in the current epoch."""

    def __init__(self, *args: Any, **kwargs: Any):
        # Its own generator: a DataLoader iterator draws its workers' base seed from it, and from the global torch
        # generator (dropout's) without one, which a resumed run would then draw from at another moment.
        kwargs.setdefault("generator", torch.Generator())
        super().__init__(*args, **kwargs)
        self.epoch = 0
        self.taken = 0
        self.saved: dict[str, Any] | None = None
        # The trainer's epoch and the batches of it its progress counts as done (the datamodule sets both): the
        # epoch Lightning hands `set_epoch` is one ahead after a resume from an epoch's last batch, and the batches
        # are where a checkpoint without a loader state resumes.
        self.lightning_epoch: Callable[[], int] | None = None
        self.lightning_batches: Callable[[], int] = lambda: 0
        # None until a resume starts; then {"exact": bool, "reason": str | None} (results.json's `resume`).
        self.resume: dict[str, Any] | None = None

    def order(self) -> dict[str, Any]:
        return self.sampler.describe() | {"batch_size": self.batch_size}

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "batches": self.taken, "order": self.order()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.saved = state

    def __iter__(self):
        # At the first batch: Lightning calls `iter()` before it sets the epoch.
        if self.lightning_epoch is not None:
            self.sampler.set_epoch(self.lightning_epoch())
        epoch = self.sampler.epoch
        self.generator.manual_seed(self.sampler.seed * 100_003 + epoch)
        skip = self._resume_position(epoch)
        self.sampler.start = skip * self.batch_size
        self.epoch, self.taken = epoch, skip
        for batch in super().__iter__():
            self.taken += 1
            yield batch

    def _resume_position(self, epoch: int) -> int:
        """Batches of this epoch to skip: the saved position on the first epoch of a resume, else 0."""
        saved, self.saved = self.saved, None
        if saved is None:
            unrecorded = self.lightning_batches()
            if unrecorded:
                self._report(False, "the checkpoint holds no data-loader position (written before xrobust saved one)")
            return unrecorded
        then, now = saved["order"], self.order()
        changed = [f"{key} {then.get(key)} -> {now[key]}" for key in now if then.get(key) != now[key]]
        if changed:
            self._report(False, "the training order changed since the checkpoint: " + ", ".join(changed))
        else:
            self._report(True, None)
        return saved["batches"] if saved["epoch"] == epoch else 0

    def _report(self, exact: bool, reason: str | None) -> None:
        self.resume = {"exact": exact, "reason": reason}
        if not exact and rank_zero_only.rank == 0:
            log.warning("resume is not exact: %s; this run will differ from an uninterrupted one", reason)
