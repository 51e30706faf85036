"""`noise=rs_da`: randomized smoothing with data augmentation (Huang et al. 2021, section 3.2; Robust-XLT).

Each time a training example is drawn, every word that has neighbours is replaced by a uniform draw from
{word} + neighbours(word) (Robust-XLT's `perturb.py` rule), on the fly through the datamodule's
`train_text_transform`, instead of writing a training file K times larger. Words without neighbours stay.

Neighbour sources (`neighbours.source`):
- `file`: a JSON `{word: [neighbours]}` such as Robust-XLT's `counterfitted_neighbors.json`.
- `embedding` (default): the k nearest whole-word pieces to each training word in the model's own
  input-embedding space (cosine), found once at set-up for the training set's words only (queries in chunks
  against the ~131k whole-word candidates of me5-small, never vocabulary x vocabulary) and cached on disk.
  A whole-word piece is the word-start marker ('▁' SentencePiece, 'Ġ' byte BPE) then >= 2 letters;
  for WordPiece vocabularies (no marker) an alphabetic piece of >= 2 letters that is not a '##' suffix.
  In me5-small's embedding space these neighbours are mostly translations ('house' -> 'casa', 'maison',
  'huis'), so the augmentation doubles as code-switching. Caveat: like any distributional neighbours they can
  include antonyms ('late' -> 'early'), which counter-fitted vectors (the `file` source) were built to avoid.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from xrobust.errors import XrobustError
from xrobust.noise import perturb
from xrobust.noise.base import NoiseMethod, as_int, one_of, require

log = logging.getLogger("xrobust")

SOURCES = ("embedding", "file")
WORD_START_MARKERS = ("\u2581", "\u0120")  # SentencePiece, byte-level BPE (GPT-2, RoBERTa)
NON_TEXT_COLUMNS = ("id", "lang", "label", "labels")
# Bump when the neighbour rule changes, so stale caches are recomputed rather than reused.
CACHE_FORMAT = 1


class SynonymTransform:
    """The datamodule's `train_text_transform`: rewrites the text fields of a batch of raw rows.

    Draws come from its own `random.Random(seed)`; each DataLoader worker process and each distributed rank
    gets its own stream (seed, rank, worker id), so they never repeat each other's draws.
    """

    def __init__(self, neighbours: dict[str, list[str]], text_fields: list[str] | None, seed: int):
        self.neighbours = neighbours
        self.text_fields = list(text_fields) if text_fields else None
        self.seed = seed
        self._rngs: dict[int, random.Random] = {}

    def _rng(self) -> random.Random:
        info = torch.utils.data.get_worker_info()
        worker = -1 if info is None else info.id
        if worker not in self._rngs:
            rank = perturb.process_rank()
            plain = worker < 0 and rank == 0
            self._rngs[worker] = random.Random(self.seed if plain else f"{self.seed}/{rank}/{worker}")
        return self._rngs[worker]

    def state_dict(self) -> dict[int, tuple]:
        """The streams of this process (worker -1); DataLoader worker processes keep theirs out of reach."""
        return {worker: rng.getstate() for worker, rng in self._rngs.items()}

    def load_state_dict(self, state: Mapping[int, tuple]) -> None:
        for worker, rng_state in state.items():
            self._rngs.setdefault(worker, random.Random()).setstate(rng_state)

    def fields(self, batch: Mapping[str, list]) -> list[str]:
        if self.text_fields is not None:
            return self.text_fields
        return [k for k, v in batch.items() if k not in NON_TEXT_COLUMNS and v and isinstance(v[0], str)]

    def __call__(self, batch: Mapping[str, list]) -> dict[str, list]:
        rng = self._rng()
        out = dict(batch)
        for field in self.fields(batch):
            out[field] = [perturb.substitute(text, self.neighbours, rng) for text in batch[field]]
        return out


class DataAugmentation(NoiseMethod):
    name = "rs_da"

    def __init__(
        self,
        name: str = "rs_da",
        neighbours: Mapping[str, Any] | None = None,
        text_fields: Iterable[str] | None = None,
        seed: int = 1,
    ):
        self.name = name
        spec = dict(neighbours or {})
        unknown = sorted(set(spec) - {"source", "path", "k", "cache_dir", "chunk_size"})
        require(not unknown, "neighbours", unknown, "unknown key(s); allowed: source, path, k, cache_dir, chunk_size")
        self.source = one_of("neighbours.source", spec.get("source", "embedding"), SOURCES)
        self.path = spec.get("path")
        self.k = as_int("neighbours.k", spec.get("k", 8))
        require(self.k >= 1, "neighbours.k", self.k, "must be >= 1")
        self.chunk_size = as_int("neighbours.chunk_size", spec.get("chunk_size", 512))
        require(self.chunk_size >= 1, "neighbours.chunk_size", self.chunk_size, "must be >= 1")
        self.cache_dir = spec.get("cache_dir")
        if self.source == "file":
            require(bool(self.path), "neighbours.path", self.path, "required when neighbours.source=file")
            require(Path(str(self.path)).expanduser().is_file(), "neighbours.path", self.path, "no such file")
        self.text_fields = [str(f) for f in text_fields] if text_fields else None
        require(self.text_fields is None or len(self.text_fields) > 0, "text_fields", text_fields, "empty")
        self.seed = as_int("seed", seed)
        self.neighbours: dict[str, list[str]] | None = None
        self.cache_file: str | None = None
        self.transform: SynonymTransform | None = None

    # ------------------------------------------------------------------------------------------ set-up

    def setup(self, model: nn.Module, tokenizer: Any, train_rows: Any = None) -> None:
        if self.source == "file":
            self.neighbours = load_neighbour_file(Path(str(self.path)).expanduser())
            return
        if train_rows is None:
            raise XrobustError("noise=rs_da with neighbours.source=embedding needs the training rows at set-up")
        fields = self.text_fields or [c for c in train_rows.column_names if c not in NON_TEXT_COLUMNS]
        missing = [f for f in fields if f not in train_rows.column_names]
        require(not missing, "text_fields", self.text_fields, f"no such training column(s): {missing}")
        words = training_words(train_rows, fields)
        weight = model.get_input_embeddings().weight
        self.neighbours, self.cache_file = cached_embedding_neighbours(
            weight, tokenizer, words, self.k, self.cache_dir, self.chunk_size
        )
        if not any(self.neighbours.values()):
            raise XrobustError(f"noise=rs_da: no training word has an embedding neighbour ({len(words)} words)")
        log.info("rs_da: embedding neighbours for %d training words (%s)", len(self.neighbours), self.cache_file)

    def text_transform(self) -> SynonymTransform:
        if self.neighbours is None:
            if self.source != "file":
                raise XrobustError("noise=rs_da: setup(model, tokenizer, train_rows) must run before text_transform")
            self.neighbours = load_neighbour_file(Path(str(self.path)).expanduser())
        self.transform = SynonymTransform(self.neighbours, self.text_fields, self.seed)
        return self.transform

    def state_dict(self) -> dict[str, Any]:
        return {"transform": self.transform.state_dict()} if self.transform is not None else {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.transform is not None:
            self.transform.load_state_dict(state.get("transform", {}))

    def params(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "neighbours": {
                "source": self.source,
                "path": str(self.path) if self.path else None,
                "k": self.k,
                "cache_dir": str(self.cache_dir) if self.cache_dir else None,
                "chunk_size": self.chunk_size,
            },
            "text_fields": self.text_fields,
            "seed": self.seed,
            "words_with_neighbours": None if self.neighbours is None else sum(1 for v in self.neighbours.values() if v),
        }


# ---------------------------------------------------------------------------------------- neighbours


def load_neighbour_file(path: Path) -> dict[str, list[str]]:
    """A `{word: [neighbours]}` JSON file, checked for that shape."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise XrobustError(f"invalid noise config: noise.neighbours.path={str(path)!r} ({err})") from None
    if not isinstance(raw, dict) or not all(isinstance(v, list) for v in raw.values()):
        raise XrobustError(f"{path}: expected a JSON object {{word: [neighbours]}}")
    return {str(w): [str(n) for n in ns if str(n) != w] for w, ns in raw.items()}


def training_words(rows: Any, fields: Iterable[str]) -> list[str]:
    """The distinct alphabetic words of the given text columns, sorted."""
    words: set[str] = set()
    for field in fields:
        for text in rows[field]:
            words.update(perturb.words_of(text))
    return sorted(words)


def whole_word_pieces(tokenizer: Any) -> dict[str, int]:
    """Word -> id of every piece that is a whole word of >= 2 letters (see the module docstring)."""
    pieces = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
    for marker in WORD_START_MARKERS:
        if sum(1 for piece in pieces if piece and piece.startswith(marker)) > len(pieces) // 20:
            return {
                piece[1:]: i
                for i, piece in enumerate(pieces)
                if piece.startswith(marker) and len(piece) >= 3 and piece[1:].isalpha()
            }
    # WordPiece: word starts carry no marker, continuations start with '##' (not alphabetic, so excluded).
    found: dict[str, int] = {}
    for i, piece in enumerate(pieces):
        if piece and len(piece) >= 2 and piece.isalpha():
            found.setdefault(piece, i)
    return found


def embedding_neighbours(
    weight: torch.Tensor, candidates: dict[str, int], queries: list[str], k: int, chunk_size: int = 512
) -> dict[str, list[str]]:
    """The k nearest candidate words (cosine of input embeddings) to each query word that is a candidate.

    The query word itself and its case/diacritic variants ('Good', 'góod') are excluded. Queries go in chunks
    of `chunk_size` against all candidates: memory stays at chunk_size x n_candidates scores.
    """
    cand_words = list(candidates)
    position = {w: i for i, w in enumerate(cand_words)}
    queries = [q for q in queries if q in position]
    result: dict[str, list[str]] = {}
    if not queries:
        return result
    cand_folds = [perturb.fold(w) for w in cand_words]
    with torch.no_grad():
        cand_ids = torch.tensor([candidates[w] for w in cand_words], device=weight.device)
        cand = nn.functional.normalize(weight.detach()[cand_ids].float(), dim=-1)
        # Room for the excluded variants of the query (rarely more than a handful).
        extra = min(len(cand_words), k + 16)
        for start in range(0, len(queries), chunk_size):
            chunk = queries[start : start + chunk_size]
            q = cand[torch.tensor([position[w] for w in chunk], device=weight.device)]
            top = (q @ cand.T).topk(extra, dim=-1).indices.cpu().tolist()
            for word, row in zip(chunk, top, strict=True):
                own = perturb.fold(word)
                result[word] = [cand_words[j] for j in row if cand_folds[j] != own][:k]
    return result


def _fingerprint(weight: torch.Tensor, tokenizer: Any, words: list[str], k: int) -> str:
    """What the neighbours depend on: a strided sample and the sum of the embedding matrix, vocabulary, words, k."""
    w = weight.detach()
    total = float(w.sum(dtype=torch.float64))
    digest = hashlib.sha256()
    digest.update(json.dumps([CACHE_FORMAT, list(w.shape), total, len(tokenizer), k]).encode())
    digest.update(w[::257].float().cpu().contiguous().numpy().tobytes())
    digest.update("\n".join(tokenizer.convert_ids_to_tokens(list(range(0, len(tokenizer), 97)))).encode())
    digest.update("\n".join(words).encode())
    return digest.hexdigest()[:20]


def cached_embedding_neighbours(
    weight: torch.Tensor,
    tokenizer: Any,
    words: list[str],
    k: int,
    cache_dir: str | None,
    chunk_size: int = 512,
) -> tuple[dict[str, list[str]], str | None]:
    """Embedding neighbours of the training words, read from or written to `cache_dir` (atomically)."""
    cache_file = None
    if cache_dir:
        cache_file = Path(cache_dir).expanduser() / f"neighbours-{_fingerprint(weight, tokenizer, words, k)}.json"
        if cache_file.is_file():
            try:
                return json.loads(cache_file.read_text(encoding="utf-8"))["neighbours"], str(cache_file)
            except (OSError, ValueError, KeyError):
                log.warning("rs_da: unreadable neighbour cache %s, recomputing", cache_file)
    candidates = whole_word_pieces(tokenizer)
    queries = sorted({form for w in words for form in (w, w.lower()) if form in candidates})
    neighbours = embedding_neighbours(weight, candidates, queries, k, chunk_size)
    if cache_file is not None:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        meta = {"k": k, "n_words": len(words), "n_queries": len(queries), "n_candidates": len(candidates)}
        fd, tmp = tempfile.mkstemp(prefix=".neighbours-", suffix=".json", dir=cache_file.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump({"meta": meta, "neighbours": neighbours}, fh, ensure_ascii=False)
        os.replace(tmp, cache_file)
    return neighbours, None if cache_file is None else str(cache_file)
