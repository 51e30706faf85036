"""Tiny random-weight checkpoints of the real Hub model types, written in the Hub layout (config.json, weights,
tokenizer files), so the loading and training paths of large models run offline in seconds."""

from __future__ import annotations

from pathlib import Path

from transformers import AutoTokenizer, XLMRobertaConfig, XLMRobertaForMaskedLM

from xrobust.models.embedded import ensure_embedded_model

# Small enough to train in a fraction of a second a step on CPU; the vocabulary is the embedded tokenizer's.
TINY_SIZE = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64}


def tiny_checkpoint(folder: Path, model_type: str = "xlm-roberta", seed: int = 0) -> Path:
    """Write a tiny random-weight checkpoint of `model_type` (the pre-training class the Hub repo ships, no task
    head) with the embedded XLM-R tokenizer into `folder`."""
    import torch

    if model_type != "xlm-roberta":
        raise ValueError(f"no tiny checkpoint for model_type {model_type!r}")
    tokenizer = AutoTokenizer.from_pretrained(ensure_embedded_model("me5-small"))
    config = XLMRobertaConfig(vocab_size=len(tokenizer), max_position_embeddings=130, **TINY_SIZE)
    torch.manual_seed(seed)
    model = XLMRobertaForMaskedLM(config)
    folder = Path(folder)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
