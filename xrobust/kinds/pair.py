"""Pair classification (XNLI, PAWS-X, AmericasNLI): two text fields in, one label out of task.label_names."""

from __future__ import annotations

from typing import Any

from xrobust.errors import XrobustError
from xrobust.kinds.base import TaskKind, tokenize_with_lengths


class PairKind(TaskKind):
    name = "pair"
    auto_model_class = "AutoModelForSequenceClassification"
    supports_generalized = True

    def validate(self, spec, where: str) -> None:
        if len(spec.text_fields) != 2:
            raise XrobustError(f"{where}: a pair task needs exactly two task.text_fields, got {list(spec.text_fields)}")

    def encode(self, batch: dict, tokenizer, task, max_length: int) -> dict:
        """Tokenize a batch of text pairs, truncated to max_length, and flag which ones had to be truncated."""
        first, second = (batch[name] for name in task.text_fields)
        encoded, full_lengths = tokenize_with_lengths(tokenizer, first, second, max_length)
        encoded["truncated"] = [n > max_length for n in full_lengths]
        encoded["labels"] = batch["label"]
        return encoded

    def collator(self, tokenizer):
        from transformers import DataCollatorWithPadding

        return DataCollatorWithPadding(tokenizer)

    def encoder_head(self, encoder, labels: dict[str, Any]):
        from xrobust.models.heads import EncoderClassifier

        for key in ("id2label", "label2id"):
            if key in labels:
                setattr(encoder.config, key, labels[key])
        return EncoderClassifier(encoder, num_labels=labels["num_labels"])


KIND = PairKind()
