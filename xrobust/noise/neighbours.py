"""Word neighbours for `noise=rs_da`: read from a `{word: [neighbours]}` JSON file, or found in the model's own
input-embedding space.

The embedding source takes the k nearest whole-word pieces to each training word (cosine), found once at set-up
for the training set's words only (queries in chunks against the ~131k whole-word candidates of me5-small, never
vocabulary x vocabulary) and cached on disk. A whole-word piece is the word-start marker ('▁' SentencePiece,
'Ġ' byte BPE) then >= 2 letters; for WordPiece vocabularies (no marker) an alphabetic piece of >= 2 letters
that is not a '##' suffix. In me5-small's embedding space these neighbours are mostly translations ('house' ->
'casa', 'maison', 'huis'), so the augmentation doubles as code-switching. Caveat: like any distributional
neighbours they can include antonyms ('late' -> 'early'), which counter-fitted vectors (the file source) were
built to avoid.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from xrobust.atomic import atomic_write_text
from xrobust.errors import XrobustError
from xrobust.noise import perturb

log = logging.getLogger("xrobust")

WORD_START_MARKERS = ("\u2581", "\u0120")  # SentencePiece, byte-level BPE (GPT-2, RoBERTa)
# Bump when the neighbour rule changes, so stale caches are recomputed rather than reused.
CACHE_FORMAT = 1


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
        meta = {"k": k, "n_words": len(words), "n_queries": len(queries), "n_candidates": len(candidates)}
        atomic_write_text(cache_file, json.dumps({"meta": meta, "neighbours": neighbours}, ensure_ascii=False))
    return neighbours, None if cache_file is None else str(cache_file)
