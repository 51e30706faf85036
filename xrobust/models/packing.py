"""The classifier's forward on packed batches (xrobust/data/packing.py): the same logits per example as padding.

Attention stays inside each example (a block-diagonal mask built from `example_index`), absolute positions
restart per example (XLM-R's start after its padding index), relative positions (DeBERTa-v2, mT5) are offsets
within a row and so already per example, and the head pools each example: its first token for the transformers
heads, the mean of its tokens for the encoder head (models/heads.py). Families declare support in
models/families.py; the others are refused at start-up rather than computed differently.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from transformers.modeling_outputs import SequenceClassifierOutput

from xrobust.errors import XrobustError
from xrobust.models.heads import EncoderClassifier
from xrobust.models.model_types import model_type_record

FIRST_TOKEN_HEADS = ("xlm-roberta", "xlm-roberta-xl", "bert", "deberta-v2")


def classifier_of(model: nn.Module) -> nn.Module:
    """The task model under a LoRA wrapper (peft injects its layers in place, so calling the parts is the same)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def check_packing(model: nn.Module) -> None:
    """Refuse data.packing=true, naming the family, where packed logits would differ from padded ones."""
    classifier = classifier_of(model)
    model_type = getattr(getattr(classifier, "config", None), "model_type", None)
    record = model_type_record(model_type) if model_type else None
    if record is None or not record.packing:
        raise XrobustError(f"data.packing=true: model family {model_type!r} does not support packed batches")
    head_ok = isinstance(classifier, EncoderClassifier) or (
        model_type in FIRST_TOKEN_HEADS and type(classifier).__name__.endswith("ForSequenceClassification")
    )
    if not head_ok:
        raise XrobustError(f"data.packing=true: the {type(classifier).__name__} head does not support packed batches")
    if getattr(classifier.config, "z_steps", 0) > 1:
        raise XrobustError(f"data.packing=true: {model_type!r} with z_steps > 1 does not support packed batches")


class PackedClassifier:
    """Calls the model as it is on padded batches, and through `packed_forward` on batches with `example_index`;
    every other attribute is the model's, so the noise methods use it as they use the model."""

    def __init__(self, model: nn.Module):
        check_packing(model)
        self.model = model

    def __getattr__(self, name: str) -> Any:
        if name == "model":  # not set yet (e.g. while unpickling): no recursion through __getattr__
            raise AttributeError(name)
        return getattr(self.model, name)

    def __call__(self, **inputs: Any) -> SequenceClassifierOutput:
        if inputs.get("example_index") is None:
            return self.model(**inputs)
        return packed_forward(self.model, **inputs)


def packed_forward(
    model: nn.Module,
    example_index: torch.Tensor,
    position_ids: torch.Tensor,
    input_ids: torch.Tensor | None = None,
    inputs_embeds: torch.Tensor | None = None,
    attention_mask: torch.Tensor | None = None,
    token_type_ids: torch.Tensor | None = None,
    labels: torch.Tensor | None = None,
    **kwargs: Any,
) -> SequenceClassifierOutput:
    """Logits (and loss) per example, in example_index order; position_ids are offsets within each example."""
    classifier = classifier_of(model)
    starts = example_starts(example_index)
    if isinstance(classifier, EncoderClassifier):
        mask = block_mask(classifier.encoder.config, classifier.encoder, example_index)
        hidden = classifier.encoder(input_ids=input_ids, attention_mask=mask, inputs_embeds=inputs_embeds)[0]
        pooled = example_means(hidden, example_index, starts)
        logits = classifier.classifier(classifier.dropout(pooled).to(classifier.classifier.weight.dtype))
    else:
        tokens = {"input_ids": input_ids, "inputs_embeds": inputs_embeds, "token_type_ids": token_type_ids}
        hidden = body_hidden(classifier, tokens, attention_mask, position_ids, example_index)
        logits = first_token_head(classifier, hidden[starts][example_order(example_index, starts)])
    loss = None
    if labels is not None:
        loss = nn.functional.cross_entropy(logits.float().view(-1, logits.shape[-1]), labels.view(-1))
    return SequenceClassifierOutput(loss=loss, logits=logits)


def example_starts(example_index: torch.Tensor) -> torch.Tensor:
    """(rows, length) True on each example's first token."""
    previous = torch.nn.functional.pad(example_index[:, :-1], (1, 0), value=-1)
    return (example_index >= 0) & (example_index != previous)


def example_order(example_index: torch.Tensor, starts: torch.Tensor) -> torch.Tensor:
    """The permutation from examples in row-major order to example_index order. Stable, so copies of a row made
    by repeat_interleave (rs_rp's num_samples) stay adjacent, as their repeated labels are."""
    return torch.argsort(example_index[starts], stable=True)


def example_means(hidden: torch.Tensor, example_index: torch.Tensor, starts: torch.Tensor) -> torch.Tensor:
    """(examples, hidden) mean of each example's tokens, in example_index order."""
    real = example_index >= 0
    segment = torch.cumsum(starts.flatten().long(), 0).view_as(example_index) - 1  # row-major example number
    count = int(starts.sum())
    sums = hidden.new_zeros(count, hidden.shape[-1]).index_add(0, segment[real], hidden[real])
    sizes = torch.bincount(segment[real], minlength=count).clamp(min=1).unsqueeze(-1).to(hidden.dtype)
    return (sums / sizes)[example_order(example_index, starts)]


def block_mask(config: Any, body: nn.Module, example_index: torch.Tensor) -> torch.Tensor:
    """The 4D mask of the model's attention implementation that lets a token see only its own example's tokens
    (the padding that ends a row sees only padding, so no softmax row is empty)."""
    from transformers.masking_utils import create_bidirectional_mask

    def same_example(batch_idx, head_idx, q_idx, kv_idx):
        return example_index[batch_idx, q_idx] == example_index[batch_idx, kv_idx]

    dtype = body.get_input_embeddings().weight.dtype
    like = torch.empty((*example_index.shape, 1), dtype=dtype, device=example_index.device)
    mask = create_bidirectional_mask(
        config=config, inputs_embeds=like, attention_mask=None, and_mask_function=same_example
    )
    if mask is None or mask.dim() != 4:
        raise XrobustError(f"data.packing=true: attention {config._attn_implementation!r} takes no block mask")
    return mask


def body_hidden(
    classifier: nn.Module,
    tokens: dict[str, torch.Tensor | None],
    attention_mask: torch.Tensor | None,
    position_ids: torch.Tensor,
    example_index: torch.Tensor,
) -> torch.Tensor:
    """The last hidden states of a transformers sequence classifier's body on a packed batch."""
    body, config = classifier.base_model, classifier.config
    if config.model_type == "deberta-v2":
        # Its embeddings multiply by a 2D padding mask and its encoder takes a 3D 0/1 mask, so both run here.
        same = (example_index.unsqueeze(-1) == example_index.unsqueeze(-2)).long()
        padding = attention_mask if attention_mask is not None else (example_index >= 0).long()
        token_type_ids = tokens["token_type_ids"]
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(example_index)
        embedded = body.embeddings(
            input_ids=tokens["input_ids"],
            token_type_ids=token_type_ids,
            position_ids=position_ids,
            mask=padding,
            inputs_embeds=tokens["inputs_embeds"],
        )
        return body.encoder(embedded, same, output_hidden_states=True, return_dict=True).last_hidden_state
    if config.model_type in ("xlm-roberta", "xlm-roberta-xl"):
        position_ids = position_ids + config.pad_token_id + 1  # RoBERTa's positions start after the padding index
    mask = block_mask(config, body, example_index)
    return body(attention_mask=mask, position_ids=position_ids, **tokens)[0]


def first_token_head(classifier: nn.Module, first: torch.Tensor) -> torch.Tensor:
    """The model's own classification head on each example's first-token state (examples, hidden)."""
    features = first.unsqueeze(1)  # (examples, 1, hidden): the heads read features[:, 0]
    model_type = classifier.config.model_type
    if model_type == "bert":
        pooled = classifier.base_model.pooler(features)
    elif model_type == "deberta-v2":
        pooled = classifier.pooler(features)
    else:
        return classifier.classifier(features)
    return classifier.classifier(classifier.dropout(pooled))
