"""Raw token ids to dynamically padded batches: pairs through `DataCollatorWithPadding`, choices through
`DataCollatorForMultipleChoice`; the example ids ride along so predictions can be paired across runs."""

from __future__ import annotations

import torch
from transformers import DataCollatorForMultipleChoice, DataCollatorWithPadding, PreTrainedTokenizerBase


class ChoiceCollator:
    """`DataCollatorForMultipleChoice` pads (batch, choices, length); it would try to split the scalar id."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase):
        self.pad = DataCollatorForMultipleChoice(tokenizer)

    def __call__(self, features: list[dict]) -> dict[str, torch.Tensor]:
        ids = [feature["id"] for feature in features] if features and "id" in features[0] else None
        batch = self.pad([{k: v for k, v in feature.items() if k != "id"} for feature in features])
        if ids is not None:
            batch["id"] = torch.as_tensor(ids)
        return batch


def make_collator(tokenizer: PreTrainedTokenizerBase, multiple_choice: bool):
    return ChoiceCollator(tokenizer) if multiple_choice else DataCollatorWithPadding(tokenizer)
