"""The LightningDataModule: English train and dev for fitting and model selection, every language for test."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import datasets
import pyarrow.compute as pc
import pytorch_lightning as pl
from torch.utils.data import DataLoader
from transformers import AutoTokenizer, DataCollatorWithPadding

from xrobust.data.sampling import EpochShuffleSampler, LengthGroupedSampler, LengthSortedSampler
from xrobust.data.sources import make_source
from xrobust.data.task import TaskSpec
from xrobust.data.tokenize import MODEL_COLUMNS, encode_pairs, tokenize_split
from xrobust.errors import XrobustError

TextTransform = Callable[[dict], dict]


class TransferDataModule(pl.LightningDataModule):
    """Zero-shot transfer data: only the source language is ever trained on or used for model selection."""

    def __init__(
        self,
        task: TaskSpec,
        tokenizer_path: str,
        local_dir: str | None = None,
        train_split: str = "train",
        dev_split: str = "dev",
        test_split: str = "test",
        val_fraction: float = 0.1,
        max_length: int = 128,
        batch_size: int = 32,
        eval_batch_size: int = 64,
        num_workers: int = 0,
        cache_dir: str | None = None,
        seed: int = 1,
        train_text_transform: TextTransform | None = None,
        trust_remote_code: bool = False,
        generalized: bool = False,
        generalized_languages: list[str] | None = None,
        group_by_length: bool = False,
        sort_eval_by_length: bool = False,
    ):
        super().__init__()
        self.task = task
        self.tokenizer = AutoTokenizer.from_pretrained(tokenizer_path, trust_remote_code=trust_remote_code)
        self.local_dir = local_dir
        self.splits = {"train": train_split, "dev": dev_split, "test": test_split}
        self.val_fraction = val_fraction
        self.max_length = max_length
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.num_workers = num_workers
        self.cache_dir = str(Path(cache_dir) / "tokenized") if cache_dir else None
        self.seed = seed
        self.train_text_transform = train_text_transform
        self.generalized_languages = list(generalized_languages or task.languages) if generalized else []
        self.group_by_length = group_by_length
        self.sort_eval_by_length = sort_eval_by_length
        self.collate = DataCollatorWithPadding(self.tokenizer)
        self.train_rows: datasets.Dataset | None = None
        self.train_set: datasets.Dataset | None = None
        self.val_set: datasets.Dataset | None = None
        self.test_sets: dict[str, datasets.Dataset] = {}
        self.raw_test_sets: dict[str, datasets.Dataset] = {}
        self.selection_source = ""
        self.source_description = ""

    @property
    def test_names(self) -> list[str]:
        """One name per test loader: a language, or `A_B` for a generalized pair (sentence 1 in A, 2 in B)."""
        return list(self.test_sets)

    def setup(self, stage: str | None = None) -> None:
        """Read and check every split up front, so bad input stops the run before any training."""
        if self.train_set is not None:
            return
        source = make_source(self.task, self.local_dir)
        self.source_description = source.describe()
        english = self.task.source_language
        train_rows = source.load(self.splits["train"], english)
        if source.has(self.splits["dev"], english):
            dev_rows = source.load(self.splits["dev"], english)
            self.selection_source = f"{self.splits['dev']}-{english}"
        else:
            if not 0.0 < self.val_fraction < 1.0:
                raise XrobustError(f"data.val_fraction={self.val_fraction} must lie in (0, 1)")
            held_out = train_rows.train_test_split(test_size=self.val_fraction, seed=self.seed)
            train_rows, dev_rows = held_out["train"], held_out["test"]
            self.selection_source = f"{self.val_fraction:.0%} of {self.splits['train']}-{english} (seed {self.seed})"
        self.raw_test_sets = {lang: source.load(self.splits["test"], lang) for lang in self.task.languages}
        for first in self.generalized_languages:
            for second in self.generalized_languages:
                if first != second:
                    self.raw_test_sets[f"{first}_{second}"] = self._mixed_pairs(first, second)
        self.train_rows = train_rows
        self.train_set = self._tokenize(train_rows)
        self.val_set = self._tokenize(dev_rows)
        self.test_sets = {lang: self._tokenize(rows) for lang, rows in self.raw_test_sets.items()}

    def _mixed_pairs(self, first: str, second: str) -> datasets.Dataset:
        """Line i of test-first paired with line i of test-second: only meaningful for parallel sets."""
        for lang in (first, second):
            self.task.check_language(lang)
        a, b = self.raw_test_sets[first], self.raw_test_sets[second]
        if a["id"] != b["id"] or a["label"] != b["label"]:
            raise XrobustError(
                f"eval.generalized needs parallel test sets, but {self.splits['test']}-{first} and "
                f"{self.splits['test']}-{second} differ in their items or labels"
            )
        text_a, text_b = self.task.text_fields
        return datasets.Dataset.from_dict(
            {
                "id": a["id"],
                text_a: a[text_a],
                text_b: b[text_b],
                "label": a["label"],
                "lang": [f"{first}_{second}"] * len(a),
            }
        )

    def _tokenize(self, rows: datasets.Dataset) -> datasets.Dataset:
        tokenized = tokenize_split(rows, self.tokenizer, self.task, self.max_length, self.cache_dir)
        return tokenized.with_format(columns=self._tensor_columns(tokenized))

    def _augmented_train_set(self, transform: TextTransform) -> datasets.Dataset:
        """Noise that rewrites text (rs_da) must see a fresh draw every time an example is read."""

        def augment_and_encode(batch: dict) -> dict:
            encoded = encode_pairs(transform(batch), self.tokenizer, self.task, self.max_length)
            return {k: v for k, v in encoded.items() if k in (*MODEL_COLUMNS, "labels")} | {"id": batch["id"]}

        return self.train_rows.with_transform(augment_and_encode)

    @staticmethod
    def _tensor_columns(rows: datasets.Dataset) -> list[str]:
        return [c for c in rows.column_names if c in (*MODEL_COLUMNS, "labels", "id")]

    def truncation_counts(self) -> dict[str, int]:
        """How many examples of each evaluated set lost tokens to max_length (reported, never hidden)."""
        counts = {"dev-" + self.task.source_language: _count_truncated(self.val_set)}
        counts |= {f"test-{lang}": _count_truncated(rows) for lang, rows in self.test_sets.items()}
        return counts

    def train_dataloader(self) -> DataLoader:
        rows = self.train_set
        if self.group_by_length:
            # rs_da rewrites the text on the fly: the clean lengths are close enough to group by
            sampler = LengthGroupedSampler(_lengths(self.train_set), self.batch_size, self.seed)
        else:
            sampler = EpochShuffleSampler(len(rows), self.seed)
        if self.train_text_transform is not None:
            rows = self._augmented_train_set(self.train_text_transform)
        return self._loader(rows, self.batch_size, sampler=sampler)

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader(self.val_set)

    def test_dataloader(self) -> list[DataLoader]:
        return [self._eval_loader(rows) for rows in self.test_sets.values()]

    def _eval_loader(self, rows: datasets.Dataset) -> DataLoader:
        """Order does not matter to the results: accuracy is order-free and predictions carry their `id`."""
        sampler = LengthSortedSampler(_lengths(rows)) if self.sort_eval_by_length else None
        return self._loader(rows, self.eval_batch_size, sampler=sampler)

    def _loader(self, rows, batch_size: int, sampler=None) -> DataLoader:
        return DataLoader(
            rows,
            batch_size=batch_size,
            sampler=sampler,
            collate_fn=self.collate,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )


def _lengths(rows: datasets.Dataset) -> list[int]:
    """Token count of every row, read from Arrow without decoding the ids."""
    return pc.list_value_length(rows.with_format("arrow")["input_ids"]).to_pylist()


def _count_truncated(rows: datasets.Dataset | None) -> int:
    if rows is None or "truncated" not in rows.column_names:
        return 0
    return int(sum(rows.with_format(None)["truncated"]))
