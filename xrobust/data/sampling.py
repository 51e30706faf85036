"""Training order that depends only on (seed, epoch), so a run resumed from a checkpoint sees the same batches."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch.utils.data import DistributedSampler, Sampler


class TrainingOrder(DistributedSampler):
    """This rank's training order for one epoch, a function of (seed, epoch, rank, ranks) only, plus a start.

    Being a DistributedSampler that shards itself, Lightning uses it as it is instead of wrapping it in one that
    would reshuffle it with another seed. `start` skips the first indices of the next epoch's stream once: the
    training loader (xrobust/data/resumable.py) sets it to resume mid-epoch where a checkpoint stopped.
    """

    def __init__(self, num_examples: int, seed: int, num_replicas: int = 1, rank: int = 0):
        super().__init__(range(num_examples), num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed)
        self.num_examples = num_examples
        self.start = 0

    def generator(self) -> torch.Generator:
        return torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)

    def epoch_order(self) -> list[int]:
        """This rank's indices for the current epoch, from its first on."""
        raise NotImplementedError

    def describe(self) -> dict[str, int | str]:
        """What fixes the order besides the epoch: a checkpoint's position means the same batches only if it matches."""
        name = type(self).__name__
        return {"sampler": name, "seed": self.seed, "examples": self.num_examples, "ranks": self.num_replicas}

    def __iter__(self):
        start, self.start = self.start, 0
        return iter(self.epoch_order()[start:])


class EpochShuffleSampler(TrainingOrder):
    """A fresh permutation each epoch; Lightning calls `set_epoch` at the start of every epoch.

    On several ranks each takes every N-th index of it, padded like DistributedSampler by repeating its start so
    every rank takes as many steps.
    """

    def epoch_order(self) -> list[int]:
        order = torch.randperm(self.num_examples, generator=self.generator()).tolist()
        if self.num_replicas == 1 or not order:
            return order
        padded = [order[i % len(order)] for i in range(self.total_size)]
        return padded[self.rank :: self.num_replicas]


class LengthGroupedSampler(TrainingOrder):
    """Batches of similar length, so dynamic padding pads little; still random, and still fixed by (seed, epoch).

    Like HF's `group_by_length`: shuffle, cut into mega-batches of `mega_batches` batches, sort each by length;
    unlike it, the batches are then shuffled too, so an epoch does not run from long to short pairs. The one
    partial batch, if any, stays last, where the DataLoader expects it.

    On several ranks it deals whole batches to them (rank r takes batches r, r + N, ...), so each rank's batches
    keep their similar lengths.
    """

    def __init__(
        self,
        lengths: Sequence[int],
        batch_size: int,
        seed: int,
        mega_batches: int = 50,
        num_replicas: int = 1,
        rank: int = 0,
    ):
        super().__init__(len(lengths), seed, num_replicas=num_replicas, rank=rank)
        self.lengths = torch.as_tensor(lengths)
        self.batch_size = batch_size
        self.mega_batches = mega_batches

    def describe(self) -> dict[str, int | str]:
        return super().describe() | {"mega_batches": self.mega_batches}

    def deal(self, batches: list) -> list:
        """This rank's whole batches, round-robin; padded like DistributedSampler by repeating batches from the
        start, so every rank takes as many steps. Only the last round can hold the partial batch or a repeat,
        so a rank's partial batch is its last."""
        if not batches:
            return []
        rounds = -(-len(batches) // self.num_replicas)
        padded = [batches[i % len(batches)] for i in range(rounds * self.num_replicas)]
        return padded[self.rank :: self.num_replicas]

    def __len__(self) -> int:
        full, rest = divmod(self.num_examples, self.batch_size)
        return sum(self.deal([self.batch_size] * full + ([rest] if rest else [])))

    def epoch_order(self) -> list[int]:
        generator = self.generator()
        order = torch.randperm(self.num_examples, generator=generator)
        mega = self.batch_size * self.mega_batches
        batches = []
        for start in range(0, self.num_examples, mega):
            chunk = order[start : start + mega]
            # stable, so equal lengths keep their shuffled order
            chunk = chunk[torch.sort(self.lengths[chunk], descending=True, stable=True).indices]
            batches.extend(chunk.split(self.batch_size))
        if not batches:
            return []
        partial = [batches.pop()] if len(batches[-1]) < self.batch_size else []
        shuffled = [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]
        return torch.cat(self.deal([*shuffled, *partial])).tolist()


class LengthSortedSampler(Sampler[int]):
    """Evaluation order, longest first: each batch holds pairs of nearly one length and the peak comes early."""

    def __init__(self, lengths: Sequence[int]):
        self.order = torch.sort(torch.as_tensor(lengths), descending=True, stable=True).indices.tolist()

    def __len__(self) -> int:
        return len(self.order)

    def __iter__(self):
        return iter(self.order)
