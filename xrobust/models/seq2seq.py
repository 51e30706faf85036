"""The text-to-text head (`model.head=seq2seq`): a whole encoder-decoder LM (mT5, mT0) trained and scored by
rank classification, as the mT5 and mT0 papers measure these models.

Each candidate string (a label's verbalizer, or a multiple-choice item's own choices) is scored by the sum of its
tokens' log-probabilities (EOS included) given the input; the prediction is the best-scored candidate, so no text
is ever decoded freely. The encoder runs once per item, the decoder once per candidate over the encoder's output.
The loss is T5's fine-tuning loss: the teacher-forced token cross-entropy of the gold candidate.

The module quacks like the sequence classifiers the training code, noise methods and sharding use (see
models/heads.py): `logits[b, c]` is candidate c's score, `get_input_embeddings()` is the encoder's input embedding
(the noise methods perturb the encoder's input through `inputs_embeds`), `base_model` the whole LM.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from transformers.modeling_outputs import BaseModelOutput, SequenceClassifierOutput

from xrobust.models.heads import BodyWrapper


class RankClassifier(BodyWrapper):
    """A seq2seq LM (`AutoModelForSeq2SeqLM`) that classifies by ranking candidate strings.

    The candidates arrive with every batch as token ids `choice_ids` (batch, candidates, length), each ending in
    EOS, padded where `choice_mask` is 0: the task's verbalizer for every item, or each item's own choices
    (xrobust/kinds/base.py encodes both), so one checkpoint serves any template and label set."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.config = model.config

    @property
    def body(self) -> nn.Module:
        """The whole LM: what an intermediate stage hands on (the next stage loads it whole, or its encoder)."""
        return self.model

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        choice_ids: torch.Tensor | None = None,
        choice_mask: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> SequenceClassifierOutput:
        if choice_ids is None:
            raise ValueError("RankClassifier needs the candidates of every item as choice_ids (batch, choices, length)")
        if choice_mask is None:
            choice_mask = torch.ones_like(choice_ids)
        batch, choices, length = choice_ids.shape
        hidden = self.model.get_encoder()(
            input_ids=input_ids, attention_mask=attention_mask, inputs_embeds=inputs_embeds
        ).last_hidden_state
        # Every candidate of an item reads the same encoder output: (batch * choices, source length, width).
        expanded = BaseModelOutput(last_hidden_state=hidden.repeat_interleave(choices, dim=0))
        mask = attention_mask.repeat_interleave(choices, dim=0) if attention_mask is not None else None
        targets = choice_ids.reshape(batch * choices, length)
        real = choice_mask.reshape(batch * choices, length).bool()
        decoder_input_ids = self.model.prepare_decoder_input_ids_from_labels(labels=targets)
        logits = self.model(
            encoder_outputs=expanded,
            attention_mask=mask,
            decoder_input_ids=decoder_input_ids,  # causal: a candidate's padding never reaches its real tokens
            use_cache=False,  # nothing is decoded after this pass: no key/value cache to keep
        ).logits
        # The log-likelihood of each target token, fp32 (the log-softmax over a 250k vocabulary); 0 on padding.
        token_nll = nn.functional.cross_entropy(
            logits.float().reshape(-1, logits.shape[-1]), targets.masked_fill(~real, -100).reshape(-1), reduction="none"
        ).view(batch, choices, length)
        scores = -token_nll.sum(dim=-1)
        loss = None
        if labels is not None:
            gold = torch.arange(batch, device=labels.device)
            loss = token_nll[gold, labels].sum() / real.view(batch, choices, length)[gold, labels].sum().clamp(min=1)
        return SequenceClassifierOutput(loss=loss, logits=scores)
