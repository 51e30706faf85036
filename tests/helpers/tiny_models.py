"""Tiny random-weight checkpoints of the real Hub model types, written in the Hub layout (config.json, weights,
tokenizer files), so the loading and training paths of large models run offline in seconds."""

from __future__ import annotations

import io
import json
import shutil
from importlib import resources
from pathlib import Path

from tokenizers import Tokenizer
from transformers import AutoTokenizer, DebertaV2Tokenizer

from xrobust.models.embedded import ensure_embedded_model

# Small enough to train in a fraction of a second a step on CPU.
TINY_SIZE = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64}
TINY_MT5_SIZE = {"d_model": 32, "d_kv": 16, "d_ff": 64, "num_heads": 2, "num_layers": 2, "num_decoder_layers": 2}
SENTENCEPIECE_VOCAB = 1000

# model_type -> the file names its real Hub repo's tokenizer ships (what the tiny checkpoint writes too).
TOKENIZER_FILES = {
    "xlm-roberta": {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"},
    "xlm-roberta-xl": {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"},
    # microsoft/mdeberta-v3-base: a SentencePiece model and a two-key tokenizer_config.json, no tokenizer.json.
    "deberta-v2": {"spm.model", "tokenizer_config.json"},
    # bigscience/mt0-*: the SentencePiece model beside its tokenizers serialization.
    "mt5": {"spiece.model", "tokenizer.json", "tokenizer_config.json"},
}
MODEL_TYPES = tuple(TOKENIZER_FILES)


def tiny_checkpoint(folder: Path, model_type: str = "xlm-roberta", seed: int = 0, safetensors: bool = True) -> Path:
    """Write a tiny random-weight checkpoint of `model_type` (the pre-training class the Hub repo ships, no task
    head) with its family's tokenizer into `folder`: the embedded XLM-R tokenizer for XLM-R and XLM-R XL, a
    SentencePiece model trained here for DeBERTa-v2 and mT5. safetensors=False writes only pytorch_model.bin,
    as facebook/xlm-roberta-xxl and microsoft/mdeberta-v3-base ship."""
    import torch

    if model_type not in TOKENIZER_FILES:
        raise ValueError(f"no tiny checkpoint for model_type {model_type!r} (known: {', '.join(MODEL_TYPES)})")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    vocab_size = _write_tokenizer(folder, model_type)
    torch.manual_seed(seed)
    model = _pretraining_model(model_type, vocab_size)
    if safetensors:
        model.save_pretrained(folder)
    else:
        model.config.save_pretrained(folder)
        torch.save(model.state_dict(), folder / "pytorch_model.bin")
    return folder


def _pretraining_model(model_type: str, vocab_size: int):
    import transformers

    if model_type == "xlm-roberta":
        config = transformers.XLMRobertaConfig(vocab_size=vocab_size, max_position_embeddings=130, **TINY_SIZE)
        return transformers.XLMRobertaForMaskedLM(config)
    if model_type == "xlm-roberta-xl":
        config = transformers.XLMRobertaXLConfig(vocab_size=vocab_size, max_position_embeddings=130, **TINY_SIZE)
        return transformers.XLMRobertaXLForMaskedLM(config)
    if model_type == "deberta-v2":
        # mDeBERTa-v3's relative-attention settings (its config.json), at the tiny size.
        config = transformers.DebertaV2Config(
            vocab_size=vocab_size,
            relative_attention=True,
            position_buckets=256,
            norm_rel_ebd="layer_norm",
            share_att_key=True,
            pos_att_type="p2c|c2p",
            max_relative_positions=-1,
            position_biased_input=False,
            type_vocab_size=0,
            layer_norm_eps=1e-7,
            **TINY_SIZE,
        )
        return transformers.DebertaV2ForMaskedLM(config)
    # mT0's settings (gated-GELU FFN, an LM head of its own), at the tiny size. transformers 5 ties the LM head to
    # `shared` in every MT5Config it builds; loading keeps a checkpoint's own head apart, as for mT0's.
    import torch

    config = transformers.MT5Config(vocab_size=vocab_size, feed_forward_proj="gated-gelu", **TINY_MT5_SIZE)
    model = transformers.MT5ForConditionalGeneration(config)
    model.lm_head.weight = torch.nn.Parameter(torch.randn_like(model.lm_head.weight))  # T5's untied init: N(0, 1)
    return model


def _write_tokenizer(folder: Path, model_type: str) -> int:
    """Write the tokenizer files the real repo ships; returns the tokenizer's size (the model's vocab_size)."""
    if model_type in ("xlm-roberta", "xlm-roberta-xl"):
        # The embedded model's files as they are: reading them back with AutoTokenizer takes seconds.
        embedded = ensure_embedded_model("me5-small")
        for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
            shutil.copyfile(embedded / name, folder / name)
        return Tokenizer.from_file(str(folder / "tokenizer.json")).get_vocab_size(with_added_tokens=True)
    if model_type == "deberta-v2":
        # DeBERTa-v3's piece ids: [PAD] 0, [CLS] 1, [SEP] 2, [UNK] 3; the tokenizer appends [MASK].
        pieces = {"pad_piece": "[PAD]", "bos_piece": "[CLS]", "eos_piece": "[SEP]", "unk_piece": "[UNK]"}
        (folder / "spm.model").write_bytes(sentencepiece_model(pad_id=0, bos_id=1, eos_id=2, unk_id=3, **pieces))
        (folder / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": False, "vocab_type": "spm"}))
        return len(DebertaV2Tokenizer.from_pretrained(folder))  # config.json, which names the class, comes after
    # T5's piece ids: <pad> 0, </s> 1, <unk> 2, no BOS; converted once to tokenizer.json, as mT0's repo has it.
    (folder / "spiece.model").write_bytes(sentencepiece_model(pad_id=0, eos_id=1, unk_id=2, bos_id=-1))
    config = {"eos_token": "</s>", "unk_token": "<unk>", "pad_token": "<pad>", "extra_ids": 0}
    (folder / "tokenizer_config.json").write_text(json.dumps({**config, "tokenizer_class": "T5Tokenizer"}))
    tokenizer = AutoTokenizer.from_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return len(tokenizer)


def sentencepiece_model(**special_ids) -> bytes:
    """A unigram SentencePiece model trained on the packaged multilingual sample (a few hundred sentences in
    seven languages and scripts), so every test language tokenizes into real pieces."""
    import sentencepiece

    sample = resources.files("xrobust.data") / "sample"
    lines = [
        text
        for path in sorted(p for p in sample.iterdir() if p.name.endswith(".tsv"))
        for row in path.read_text(encoding="utf-8").splitlines()
        for text in row.split("\t")[:2]
    ]
    model = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(lines),
        model_writer=model,
        model_type="unigram",
        vocab_size=SENTENCEPIECE_VOCAB,
        hard_vocab_limit=False,
        character_coverage=1.0,
        num_threads=1,
        minloglevel=2,
        **special_ids,
    )
    return model.getvalue()
