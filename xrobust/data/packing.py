"""Padding-free batches (`data.packing=true`): several encoded examples share one row of at most max_length tokens.

Padding a shuffled batch to its longest example spends most of its tokens on padding; packing puts the examples
end to end instead and keeps what the model computes per example the same (xrobust/models/packing.py builds the
block-diagonal attention from `example_index`, restarts positions from `position_ids` and pools per example).
"""

from __future__ import annotations

from typing import Any

import torch

from xrobust.errors import XrobustError

# Per-token inputs that travel with each example into its row (token_type_ids only where the tokenizer makes them).
TOKEN_COLUMNS = ("input_ids", "token_type_ids")


def first_fit_rows(lengths: list[int], capacity: int) -> list[list[int]]:
    """Example indices grouped into rows of at most `capacity` tokens: first fit, longest first (a few percent
    from the optimum), rows kept in the order they were opened."""
    rows: list[list[int]] = []
    room: list[int] = []
    for index in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
        size = lengths[index]
        row = next((r for r, free in enumerate(room) if free >= size), None)
        if row is None:
            rows.append([])
            room.append(capacity)
            row = len(rows) - 1
        rows[row].append(index)
        room[row] -= size
    return rows


class PackingCollator:
    """Packs a list of encoded rows (each with its integer `id`) into rows of at most `max_length` tokens.

    Returns `input_ids` (and `token_type_ids`) of shape (rows, length), `attention_mask` 1 on real tokens and 0
    on the padding that ends a row (what the noise methods perturb is unchanged), `position_ids` each token's
    offset within its example, `example_index` the example each token belongs to (-1 on padding), and `labels`
    and `id` per example in the order the examples came (example_index counts in that order)."""

    def __init__(self, tokenizer: Any, max_length: int):
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        self.max_length = max_length

    def __call__(self, features: list[dict]) -> dict[str, torch.Tensor]:
        ids = [torch.as_tensor(feature["input_ids"]).long() for feature in features]
        lengths = [len(tokens) for tokens in ids]
        too_long = [n for n in lengths if n > self.max_length]
        if too_long:
            raise ValueError(f"an example of {too_long[0]} tokens does not fit a packed row of {self.max_length}")
        rows = first_fit_rows(lengths, self.max_length)
        width = max(sum(lengths[i] for i in row) for row in rows)
        columns = [c for c in TOKEN_COLUMNS if c in features[0]]
        pads = {"input_ids": self.pad_id, "token_type_ids": 0}
        batch = {c: torch.full((len(rows), width), pads[c], dtype=torch.long) for c in columns}
        batch["attention_mask"] = torch.zeros((len(rows), width), dtype=torch.long)
        batch["position_ids"] = torch.zeros((len(rows), width), dtype=torch.long)
        batch["example_index"] = torch.full((len(rows), width), -1, dtype=torch.long)
        for r, row in enumerate(rows):
            start = 0
            for index in row:
                end = start + lengths[index]
                for column in columns:
                    batch[column][r, start:end] = torch.as_tensor(features[index][column])
                batch["attention_mask"][r, start:end] = 1
                batch["position_ids"][r, start:end] = torch.arange(lengths[index])
                batch["example_index"][r, start:end] = index
                start = end
        for key in ("labels", "id"):
            if key in features[0]:
                batch[key] = torch.as_tensor([int(feature[key]) for feature in features])
        return batch


def packing_collator(kind: Any, tokenizer: Any, head: str, max_length: int) -> PackingCollator:
    """The packing collator for a task kind and model.head; packing is built for one sequence per example."""
    if kind.name != "pair" or head != "classifier":
        raise XrobustError(
            f"data.packing=true: supported for pair tasks with model.head=classifier, not {kind.name} with {head}"
        )
    return PackingCollator(tokenizer, max_length)
