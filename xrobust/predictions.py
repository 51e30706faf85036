"""Per-item test predictions from every rank, each item counted once: a distributed sampler gives each rank a
share of every test set, padded with repeated items, so results are computed from the gathered unique rows."""

from __future__ import annotations

import torch.distributed as dist

# One test item: its id, the gold label index, the predicted label index.
Row = tuple[int, int, int]


def gather_from_ranks(local: dict[str, list[Row]]) -> list[dict[str, list[Row]]]:
    """Every rank's rows, one entry per rank (just these rows in a single process)."""
    if not (dist.is_available() and dist.is_initialized()):
        return [local]
    gathered: list = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, local)
    return gathered


def unique_by_id(shards: list[dict[str, list[Row]]]) -> dict[str, list[Row]]:
    """One row per (test set, item id), sorted by id; a repeat from the sampler's padding is dropped."""
    merged: dict[str, dict[int, Row]] = {}
    for shard in shards:
        for name, rows in shard.items():
            by_id = merged.setdefault(name, {})
            for row in rows:
                by_id.setdefault(row[0], row)
    return {name: sorted(by_id.values()) for name, by_id in merged.items()}


def accuracy(rows: list[Row]) -> float:
    return sum(gold == predicted for _, gold, predicted in rows) / len(rows) if rows else 0.0
