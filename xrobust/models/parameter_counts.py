"""A model's size: its parameters in total, trainable, and without the input embeddings (the usual x-axis of
scaling comparisons, and how the report orders a family's sizes)."""

from __future__ import annotations

from torch import nn


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """Total and trainable parameter counts."""
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return total, trainable


def count_non_embedding_parameters(model: nn.Module) -> int:
    """Parameters outside the input embedding matrices (token, and position or token type where the family has
    them): the model's size without its vocabulary, the usual x-axis of scaling comparisons.

    Those matrices are the `nn.Embedding` siblings of the input embedding (BERT's and XLM-R's `embeddings`
    module, the T5 family's `shared`); relative position tables inside the layers count as body."""
    inputs = model.get_input_embeddings()
    name = next(name for name, module in model.named_modules() if module is inputs)
    parent = model.get_submodule(name.rpartition(".")[0])
    embedding = {id(p) for m in parent.children() if isinstance(m, nn.Embedding) for p in m.parameters()}
    return sum(p.numel() for p in model.parameters() if id(p) not in embedding)
