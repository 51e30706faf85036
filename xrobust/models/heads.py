"""A classification head over an encoder-only stack, for encoder-decoder checkpoints used through their encoder.

mT0 (mT5) ships as an encoder-decoder; transformers' `MT5ForSequenceClassification` runs the decoder too. Here
the encoder alone (`MT5EncoderModel`) feeds a mean-pooled linear head, so the decoder's ~55% of the parameters
are never loaded. The module quacks like a transformers sequence classifier for everything this project calls:
`model(input_ids=..., attention_mask=..., inputs_embeds=..., labels=...)` returns an object with `.loss` and
`.logits`, `base_model` is the body without the head, and `get_input_embeddings()` /
`gradient_checkpointing_enable()` delegate to the encoder. Which model_type loads this way: models/model_types.py.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from transformers.modeling_outputs import SequenceClassifierOutput


class BodyWrapper(nn.Module):
    """A module around a transformers body that answers what the training and planning code asks a transformers
    model (its name, base model, input embeddings, checkpointing) by forwarding to `body`."""

    supports_gradient_checkpointing = True

    @property
    def body(self) -> nn.Module:
        raise NotImplementedError

    @property
    def name_or_path(self) -> str:
        return getattr(self.body, "name_or_path", "")

    @property
    def base_model(self) -> nn.Module:
        return self.body

    def get_input_embeddings(self) -> nn.Module:
        return self.body.get_input_embeddings()

    def gradient_checkpointing_enable(self, gradient_checkpointing_kwargs: dict | None = None, **kwargs: Any) -> None:
        enable = getattr(self.body, "activation_checkpointing_enable", None)  # transformers 5's name
        if enable is not None:
            enable(activation_checkpointing_kwargs=gradient_checkpointing_kwargs, **kwargs)
        else:
            self.body.gradient_checkpointing_enable(gradient_checkpointing_kwargs=gradient_checkpointing_kwargs)

    activation_checkpointing_enable = gradient_checkpointing_enable


class EncoderClassifier(BodyWrapper):
    """`encoder` (a transformers model returning `last_hidden_state`) + dropout + mean pooling + linear."""

    def __init__(self, encoder: nn.Module, num_labels: int, dropout: float | None = None):
        super().__init__()
        self.encoder = encoder
        self.config = encoder.config
        self.config.num_labels = num_labels
        self.num_labels = num_labels
        hidden = self.config.hidden_size
        if dropout is None:
            dropout = getattr(self.config, "classifier_dropout", None) or getattr(self.config, "dropout_rate", 0.0)
        self.dropout = nn.Dropout(float(dropout))
        self.classifier = nn.Linear(hidden, num_labels)
        # The T5 family's own head init: a zero-mean normal scaled by d_model ** -0.5.
        factor = float(getattr(self.config, "initializer_factor", 1.0))
        nn.init.normal_(self.classifier.weight, mean=0.0, std=factor * hidden**-0.5)
        nn.init.zeros_(self.classifier.bias)

    @property
    def body(self) -> nn.Module:
        return self.encoder

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,  # accepted and ignored: T5-style encoders have none
        return_dict: bool | None = None,
        **kwargs: Any,
    ) -> SequenceClassifierOutput:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask, inputs_embeds=inputs_embeds)[0]
        if attention_mask is None:
            pooled = hidden.mean(dim=1)
        else:
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
        logits = self.classifier(self.dropout(pooled).to(self.classifier.weight.dtype))
        loss = None
        if labels is not None:
            loss = nn.functional.cross_entropy(logits.float().view(-1, self.num_labels), labels.view(-1))
        return SequenceClassifierOutput(loss=loss, logits=logits)


class EncoderMultipleChoice(BodyWrapper):
    """Multiple choice over an `EncoderClassifier` with one output: score each (context, choice) pair, then
    softmax over the choices, as transformers' `*ForMultipleChoice` heads do for encoder-only models."""

    def __init__(self, scorer: EncoderClassifier):
        super().__init__()
        if scorer.num_labels != 1:
            raise ValueError("the choice scorer must have a single output")
        self.scorer = scorer
        self.config = scorer.config

    @property
    def body(self) -> nn.Module:
        return self.scorer.encoder

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> SequenceClassifierOutput:
        shaped = input_ids if input_ids is not None else inputs_embeds
        batch, choices = shaped.shape[:2]
        flat = {
            "input_ids": input_ids.flatten(0, 1) if input_ids is not None else None,
            "attention_mask": attention_mask.flatten(0, 1) if attention_mask is not None else None,
            "inputs_embeds": inputs_embeds.flatten(0, 1) if inputs_embeds is not None else None,
        }
        logits = self.scorer(**flat).logits.view(batch, choices)
        loss = nn.functional.cross_entropy(logits.float(), labels) if labels is not None else None
        return SequenceClassifierOutput(loss=loss, logits=logits)
