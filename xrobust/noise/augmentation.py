"""`noise=rs_da` (Huang et al. 2021, section 3.2; Robust-XLT) and `noise=code_switch`: substitution of words by
their neighbours.

Each time a training example is drawn, every word that has neighbours is replaced by a uniform draw from
{word} + neighbours(word), on the fly through the datamodule's `train_text_transform`, instead of writing a
training file K times larger. Words without neighbours stay. Where the neighbours come from
(`neighbours.source`) decides the method:

- `file` (`noise=rs_da`): RS-DA as published, Robust-XLT's counter-fitted synonym file (`neighbours.path`, or the
  pinned upstream file downloaded once into the cache: xrobust/noise/synonyms.py) with its rule: tokens split on
  spaces and looked up verbatim (`perturb.substitute_verbatim`). Every model gets the same augmentation.
- `embedding` (`noise=code_switch`): code-switching substitution (cf. CoSDA-ML), each model's own nearest whole
  words (xrobust/noise/neighbours.py), mostly translations; words are looked up by their alphabetic core
  (`perturb.substitute`, punctuation kept, lower-case fallback). The two models of a size pair get different
  neighbours, so a size difference under it includes that.
"""

from __future__ import annotations

import dataclasses
import logging
import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from xrobust.errors import XrobustError
from xrobust.noise import perturb
from xrobust.noise.base import NoiseMethod, require
from xrobust.noise.neighbours import cached_embedding_neighbours, load_neighbour_file, training_words
from xrobust.noise.perturbation import EmbeddingScale
from xrobust.noise.step_cost import StepMemory
from xrobust.noise.synonyms import synonym_file

log = logging.getLogger("xrobust")

NON_TEXT_COLUMNS = ("id", "lang", "label", "labels")


class SynonymTransform:
    """The datamodule's `train_text_transform`: rewrites the text fields of a batch of raw rows.

    Draws come from its own `random.Random(seed)`; each DataLoader worker process and each distributed rank
    gets its own stream (seed, rank, worker id), so they never repeat each other's draws.
    """

    def __init__(
        self, neighbours: dict[str, list[str]], text_fields: list[str] | None, seed: int, verbatim: bool = False
    ):
        self.neighbours = neighbours
        self.text_fields = list(text_fields) if text_fields else None
        self.seed = seed
        # True: Robust-XLT's verbatim token rule; False: the alphabetic-core word rule (see the module docstring).
        self.substitute = perturb.substitute_verbatim if verbatim else perturb.substitute
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
            out[field] = [self.substitute(text, self.neighbours, rng) for text in batch[field]]
        return out


@dataclasses.dataclass
class NeighbourSpec:
    """`noise.neighbours`: where each word's neighbours come from (see the module docstring)."""

    source: Literal["file", "embedding"] = "file"
    path: str | None = None  # the `file` source's JSON; None: Robust-XLT's file, downloaded once into cache_dir
    k: int = 8  # neighbours per word of the `embedding` source
    cache_dir: str | None = None  # where the `embedding` source's neighbours (and the downloaded file) are cached
    chunk_size: int = 512  # training words per similarity matmul

    def __post_init__(self) -> None:
        # A Path given in Python is recorded in results.json as the string a YAML config gives.
        self.path = str(self.path) if self.path else None
        self.cache_dir = str(self.cache_dir) if self.cache_dir else None


@dataclasses.dataclass(kw_only=True, eq=False)
class DataAugmentation(NoiseMethod):
    neighbours: NeighbourSpec = dataclasses.field(default_factory=NeighbourSpec)
    text_fields: list[str] | None = None  # the text columns rewritten; None: every text column
    seed: int = 1

    def __post_init__(self) -> None:
        super().__post_init__()
        spec = self.neighbours
        require(spec.k >= 1, "neighbours.k", spec.k, "must be >= 1")
        require(spec.chunk_size >= 1, "neighbours.chunk_size", spec.chunk_size, "must be >= 1")
        if spec.source == "file" and spec.path:
            require(Path(spec.path).expanduser().is_file(), "neighbours.path", spec.path, "no such file")
        self.text_fields = [str(f) for f in self.text_fields] if self.text_fields else None
        # A path with the embedding source would be silently unused: the user meant noise=rs_da.
        require(spec.source == "file" or not spec.path, "neighbours.path", spec.path, "read only with source=file")
        self.word_neighbours: dict[str, list[str]] | None = None
        self.cache_file: str | None = None
        self.transform: SynonymTransform | None = None

    def setup(
        self, model: nn.Module, tokenizer: Any, train_rows: Any = None, scale: EmbeddingScale | None = None
    ) -> None:
        spec = self.neighbours
        if spec.source == "file":
            self.word_neighbours = self.file_neighbours()
            return
        if train_rows is None:
            raise XrobustError(f"noise={self.name} (neighbours.source=embedding) needs the training rows at set-up")
        fields = self.text_fields or [c for c in train_rows.column_names if c not in NON_TEXT_COLUMNS]
        missing = [f for f in fields if f not in train_rows.column_names]
        require(not missing, "text_fields", self.text_fields, f"no such training column(s): {missing}")
        words = training_words(train_rows, fields)
        log.info(
            "%s: embedding neighbours, i.e. code-switching substitution (RS-DA as published: noise=rs_da)", self.name
        )
        weight = model.get_input_embeddings().weight
        self.word_neighbours, self.cache_file = cached_embedding_neighbours(
            weight, tokenizer, words, spec.k, spec.cache_dir, spec.chunk_size
        )
        if not any(self.word_neighbours.values()):
            raise XrobustError(f"noise={self.name}: no training word has an embedding neighbour ({len(words)} words)")
        found = len(self.word_neighbours)
        log.info("%s: embedding neighbours for %d training words (%s)", self.name, found, self.cache_file)

    def file_neighbours(self) -> dict[str, list[str]]:
        """The `file` source's table: neighbours.path, or Robust-XLT's file from the cache (downloaded once)."""
        path = synonym_file(self.neighbours.path, self.neighbours.cache_dir)
        log.info("%s: synonyms from %s (Robust-XLT's rule)", self.name, path)
        return load_neighbour_file(path)

    def text_transform(self) -> SynonymTransform:
        if self.word_neighbours is None:
            if self.neighbours.source != "file":
                raise XrobustError(
                    f"noise={self.name}: setup(model, tokenizer, train_rows) must run before text_transform"
                )
            self.word_neighbours = self.file_neighbours()
        verbatim = self.neighbours.source == "file"
        self.transform = SynonymTransform(self.word_neighbours, self.text_fields, self.seed, verbatim=verbatim)
        return self.transform

    def state_dict(self) -> dict[str, Any]:
        return {"transform": self.transform.state_dict()} if self.transform is not None else {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.transform is not None:
            self.transform.load_state_dict(state.get("transform", {}))

    def params(self) -> dict[str, Any]:
        found = self.word_neighbours
        return super().params() | {
            "words_with_neighbours": None if found is None else sum(1 for v in found.values() if v),
            "word_rule": "robust_xlt_verbatim" if self.neighbours.source == "file" else "alphabetic_core",
        }

    def step_memory(self) -> StepMemory:
        """None beside plain fine-tuning: the text is rewritten before tokenizing, the step is the plain one (the
        neighbour table lives in host memory, found once in `setup`). Passes: the base's, one forward+backward."""
        return StepMemory()
