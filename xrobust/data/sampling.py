"""Training order that depends only on (seed, epoch), so a run resumed from a checkpoint sees the same batches."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch.utils.data import DistributedSampler, Sampler


class EpochShuffleSampler(Sampler[int]):
    """A fresh permutation each epoch; Lightning calls `set_epoch` at the start of every epoch."""

    def __init__(self, num_examples: int, seed: int):
        self.num_examples = num_examples
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.num_examples

    def generator(self) -> torch.Generator:
        return torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)

    def __iter__(self):
        return iter(torch.randperm(self.num_examples, generator=self.generator()).tolist())


class LengthGroupedSampler(DistributedSampler):
    """Batches of similar length, so dynamic padding pads little; still random, and still fixed by (seed, epoch).

    Like HF's `group_by_length`: shuffle, cut into mega-batches of `mega_batches` batches, sort each by length;
    unlike it, the batches are then shuffled too, so an epoch does not run from long to short pairs. The one
    partial batch, if any, stays last, where the DataLoader expects it.

    On several ranks it deals whole batches to them (rank r takes batches r, r + N, ...), so each rank's batches
    keep their similar lengths. Being a DistributedSampler, Lightning uses it as it is instead of wrapping it in
    one that would reshuffle its items across batches.
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
        super().__init__(lengths, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed)
        self.num_examples = len(lengths)
        self.lengths = torch.as_tensor(lengths)
        self.batch_size = batch_size
        self.mega_batches = mega_batches

    def generator(self) -> torch.Generator:
        return torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)

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

    def __iter__(self):
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
            return iter([])
        partial = [batches.pop()] if len(batches[-1]) < self.batch_size else []
        shuffled = [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]
        return iter(torch.cat(self.deal([*shuffled, *partial])).tolist())


class LengthSortedSampler(Sampler[int]):
    """Evaluation order, longest first: each batch holds pairs of nearly one length and the peak comes early."""

    def __init__(self, lengths: Sequence[int]):
        self.order = torch.sort(torch.as_tensor(lengths), descending=True, stable=True).indices.tolist()

    def __len__(self) -> int:
        return len(self.order)

    def __iter__(self):
        return iter(self.order)
