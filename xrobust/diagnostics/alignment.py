"""Cross-lingual alignment of the encoder, English vs each target language on the parallel test sets (the same
ids in every language): (a) parallel retrieval accuracy, (b) mean cosine of translation pairs vs random pairs,
(c) linear CKA (Kornblith et al. 2019), per layer, of mean-pooled representations (representations.py)."""

from __future__ import annotations

import logging
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from xrobust.diagnostics.readout import Readout
from xrobust.diagnostics.representations import pooled_states, rows_by_id
from xrobust.errors import XrobustError

if TYPE_CHECKING:
    from xrobust.data.datamodule import TransferDataModule
    from xrobust.lightning.module import TransferModule

log = logging.getLogger("xrobust")


def linear_cka(x: torch.Tensor, y: torch.Tensor) -> float:
    """Linear CKA of two representation matrices of the same items (rows): ||Y'X||_F^2 / (||X'X||_F ||Y'Y||_F)
    after centring each column; 1 for X against itself, unchanged by an orthogonal map or isotropic scale of
    either."""
    x = x.double() - x.double().mean(dim=0)
    y = y.double() - y.double().mean(dim=0)
    cross = torch.linalg.matrix_norm(y.T @ x) ** 2
    norms = torch.linalg.matrix_norm(x.T @ x) * torch.linalg.matrix_norm(y.T @ y)
    return float(cross / norms) if norms > 0 else float("nan")


def cosine_matrix(target: torch.Tensor, english: torch.Tensor) -> torch.Tensor:
    """Cosine of every target row against every English row."""
    t = torch.nn.functional.normalize(target.double(), dim=1)
    e = torch.nn.functional.normalize(english.double(), dim=1)
    return t @ e.T


def retrieved(cosines: torch.Tensor) -> torch.Tensor:
    """For each target item, the English row nearest by cosine (a hit when it is the item's own row)."""
    return cosines.argmax(dim=1)


def derangement(n: int, seed: int) -> np.ndarray:
    """A seeded permutation with no fixed point (Sattolo's algorithm: one n-cycle), so every random pair pairs an
    item with another item's translation."""
    rng = np.random.default_rng(seed)
    order = np.arange(n)
    for i in range(n - 1, 0, -1):
        j = int(rng.integers(0, i))
        order[i], order[j] = order[j], order[i]
    return order


def scores(target: torch.Tensor, english: torch.Tensor, seed: int) -> tuple[dict[str, float | None], torch.Tensor]:
    """One language at one layer: retrieval accuracy (%), mean cosine of translation pairs and of random pairs,
    linear CKA; and the English row each target item retrieved."""
    cosines = cosine_matrix(target, english)
    found = retrieved(cosines)
    n = len(target)
    own = torch.arange(n)
    random_pairs = cosines[own, torch.from_numpy(derangement(n, seed))].mean() if n > 1 else None
    summary = {
        "retrieval": round(100.0 * float((found == own).double().mean()), 4),
        "cosine_pairs": round(float(cosines[own, own].mean()), 6),
        "cosine_random": None if random_pairs is None else round(float(random_pairs), 6),
        "cka": round(linear_cka(target, english), 6),
    }
    return summary, found


def read_out(module: TransferModule, datamodule: TransferDataModule, settings: dict[str, Any], stage: str) -> Readout:
    """Every target language against the source language, on the first `items` English ids that the target set
    also holds, at `settings["layers"]` (null: representations.default_layers)."""

    task = datamodule.task
    source = task.source_language
    if source not in datamodule.test_sets:
        raise XrobustError(f"invalid config: eval.alignment.enabled=True (no {source} test set to align with)")
    targets = [name for name in datamodule.test_names if name != source and name in task.languages]
    collate = datamodule.kind.collator_for(datamodule.tokenizer, datamodule.head)
    batch_size = settings.get("batch_size") or datamodule.eval_batch_size
    english_rows = datamodule.test_sets[source]
    ids = english_rows["id"][: settings.get("items") or len(english_rows)]
    encode = partial(pooled_states, module.model, collate=collate, batch_size=batch_size, device=module.device)
    layers, english = encode(english_rows.select(range(len(ids))), layers=settings.get("layers"))
    summary: dict[str, Any] = {"layers": layers, "items": {}, stage: {}}
    rows = []
    for lang in targets:
        where = rows_by_id(datamodule.test_sets[lang])
        shared = [i for i, item in enumerate(ids) if item in where]
        if len(shared) < 2:
            raise XrobustError(
                f"invalid config: eval.alignment.enabled=True (test-{lang} shares {len(shared)} item ids with "
                f"test-{source}: alignment needs parallel test sets)"
            )
        _, target = encode(datamodule.test_sets[lang].select([where[ids[i]] for i in shared]), layers=layers)
        summary["items"][lang] = len(shared)
        summary[stage][lang] = {}
        for layer in layers:
            found_scores, found = scores(target[layer], english[layer][shared], settings.get("seed", 0))
            summary[stage][lang][str(layer)] = found_scores
            rows += [
                {
                    "stage": stage,
                    "layer": layer,
                    "language": lang,
                    "id": ids[shared[row]],
                    "retrieved_id": ids[shared[int(hit)]],
                    "hit": int(int(hit) == row),
                }
                for row, hit in enumerate(found.tolist())
            ]
    log.info("alignment (%s): %d languages x %d layers", stage, len(targets), len(layers))
    return Readout(summary, rows)
