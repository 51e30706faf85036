"""Each item's representation as the model encodes it: its hidden states mean-pooled over the real tokens
(attention-masked), at the layers asked for (0: the embedding output). Batched; the caller holds no_grad."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import datasets
import torch

from xrobust.errors import XrobustError


def default_layers(num_layers: int) -> list[int]:
    """The embedding output, the middle layer and the last one."""
    return sorted({0, num_layers // 2, num_layers})


def pooled_states(
    model: torch.nn.Module,
    rows: datasets.Dataset,
    collate: Callable[[list[dict]], dict],
    batch_size: int,
    layers: Sequence[int] | None,
    device: torch.device,
) -> tuple[list[int], dict[int, torch.Tensor]]:
    """The layers read (`layers`, or default_layers) and, per layer, one float32 row per item of `rows`, in order,
    on the CPU."""
    pooled: dict[int, list[torch.Tensor]] = {}
    chosen: list[int] | None = list(layers) if layers is not None else None
    for start in range(0, len(rows), batch_size):
        batch = collate([rows[i] for i in range(start, min(start + batch_size, len(rows)))])
        inputs = {
            k: v.to(device) for k, v in batch.items() if isinstance(v, torch.Tensor) and k not in ("labels", "id")
        }
        states = model(**inputs, output_hidden_states=True).hidden_states
        if chosen is None:
            chosen = default_layers(len(states) - 1)
        if max(chosen) >= len(states):
            raise XrobustError(
                f"invalid config: eval.alignment.layers={chosen} (the model has {len(states) - 1} layers: must be "
                f"<= {len(states) - 1}, 0 being the embedding output)"
            )
        mask = inputs["attention_mask"].unsqueeze(-1).float()
        for layer in chosen:
            summed = (states[layer].float() * mask).sum(dim=1)
            pooled.setdefault(layer, []).append((summed / mask.sum(dim=1).clamp(min=1)).cpu())
    return chosen or [], {layer: torch.cat(parts) for layer, parts in pooled.items()}


def rows_by_id(rows: datasets.Dataset) -> dict[Any, int]:
    """Each item id's row number."""
    return {item: index for index, item in enumerate(rows["id"])}
