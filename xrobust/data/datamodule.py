"""The LightningDataModule: English train and dev for fitting and model selection, every language for test."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import datasets
import pyarrow as pa
import pyarrow.compute as pc
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from xrobust.data.packing import packing_collator
from xrobust.data.resumable import ResumableLoader
from xrobust.data.sampling import EpochShuffleSampler, LengthGroupedSampler, LengthSortedSampler
from xrobust.data.sources import make_source
from xrobust.data.task import TaskSpec
from xrobust.data.tokenize import MODEL_COLUMNS, tokenize_split
from xrobust.errors import XrobustError
from xrobust.kinds.base import CLASSIFIER
from xrobust.models.hub import load_tokenizer

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
        heldout: bool = False,
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
        with_test_sets: bool = True,
        group_by_length: bool = False,
        length_group_batches: int = 50,
        sort_eval_by_length: bool = False,
        head: str = CLASSIFIER,
        packing: bool = False,
    ):
        super().__init__()
        self.task = task
        self.kind = task.task_kind
        self.tokenizer = load_tokenizer(tokenizer_path, trust_remote_code=trust_remote_code)
        self.local_dir = local_dir
        self.splits = {"train": train_split, "dev": dev_split, "test": test_split}
        self.val_fraction = val_fraction
        # True: select on a held-out val_fraction of train-en even where a dev split exists (kept for testing).
        self.heldout = heldout
        self.max_length = max_length
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.num_workers = num_workers
        self.cache_dir = str(Path(cache_dir) / "tokenized") if cache_dir else None
        # Hub downloads go under paths.cache_dir too, beside the tokenization cache.
        self.datasets_cache_dir = str(Path(cache_dir) / "datasets") if cache_dir else None
        self.seed = seed
        self.train_text_transform = train_text_transform
        # False for an intermediate training stage: it is fitted and selected, never tested.
        self.with_test_sets = with_test_sets
        # The test sets the kind builds beside the per-language ones (a pair task's eval.generalized mixed pairs).
        self.extra_tests = self.kind.extra_test_sets(task, generalized, generalized_languages)
        self.group_by_length = group_by_length
        self.length_group_batches = length_group_batches
        self.sort_eval_by_length = sort_eval_by_length
        # model.head: a classifier's inputs, or the text-to-text head's prompt and candidates (xrobust/kinds/base.py).
        self.head = head
        self.collate = self.kind.collator_for(self.tokenizer, head)
        if packing:  # several examples a row, no padding between them (xrobust/data/packing.py)
            self.collate = packing_collator(self.kind, self.tokenizer, head, max_length)
        self.train_rows: datasets.Dataset | None = None
        self.train_set: datasets.Dataset | None = None
        self.val_set: datasets.Dataset | None = None
        self.test_sets: dict[str, datasets.Dataset] = {}
        self.train_loader: ResumableLoader | None = None
        self.loader_state: dict | None = None  # from a checkpoint, for the next training loader
        self.prepared = False  # prepare_data ran in this process
        self.raw_test_sets: dict[str, datasets.Dataset] = {}
        self.selection_source = ""
        self.source_description = ""
        # Per loaded split ("test-de"): its files or Hub repo and revision, rows and fingerprint (results.json).
        self.data_provenance: dict[str, dict] = {}

    @property
    def test_names(self) -> list[str]:
        """One name per test loader: a language, or an extra test set's (`A_B` for a generalized pair)."""
        return list(self.test_sets)

    def prepare_data(self) -> None:
        """Download every split this run reads (Lightning calls this on one process per node; `setup` on the
        node's first rank too, since the job builds its model from the data before `fit`). Only Hub sources
        download; `setup` then reads their cache on every rank (xrobust/data/hub_source.py)."""
        if self.prepared:
            return
        source = make_source(self.task, self.local_dir, self.datasets_cache_dir)
        prepare = getattr(source, "prepare", None)
        if prepare is not None:
            english = self.task.source_language
            wanted = [(self.splits["train"], english), (self.splits["dev"], english)]
            wanted += [(self.splits["test"], lang) for lang in (self.task.languages if self.with_test_sets else ())]
            for split, lang in wanted:
                if source.has(split, lang):
                    prepare(split, lang)
        self.prepared = True

    def setup(self, stage: str | None = None) -> None:
        """Read and check every split up front, so bad input stops the run before any training."""
        if self.train_set is not None:
            return
        if _local_rank() == 0:
            self.prepare_data()
        source = make_source(self.task, self.local_dir, self.datasets_cache_dir)
        self.source_description = source.describe()
        self.data_provenance = source.provenance
        english = self.task.source_language
        train_rows = source.load(self.splits["train"], english)
        if not self.heldout and source.has(self.splits["dev"], english):
            dev_rows = source.load(self.splits["dev"], english)
            self.selection_source = f"{self.splits['dev']}-{english}"
        else:
            train_rows, dev_rows = split_by_item(train_rows, self.val_fraction, self.seed)
            self.selection_source = f"{self.val_fraction:.0%} of {self.splits['train']}-{english} (seed {self.seed})"
        test_languages = self.task.languages if self.with_test_sets else ()
        self.raw_test_sets = {lang: source.load(self.splits["test"], lang) for lang in test_languages}
        for lang, rows in self.raw_test_sets.items():
            _check_unique_ids(rows, f"{self.splits['test']}-{lang}")
        if self.extra_tests is not None:
            self.raw_test_sets |= self.extra_tests.build(self.raw_test_sets, self.task, self.splits["test"])
        self.train_rows = train_rows
        self.train_set = self._tokenize(train_rows)
        self.val_set = self._tokenize(dev_rows)
        self.test_sets = {lang: self._tokenize(rows) for lang, rows in self.raw_test_sets.items()}

    def _tokenize(self, rows: datasets.Dataset) -> datasets.Dataset:
        tokenized = tokenize_split(rows, self.tokenizer, self.task, self.max_length, self.cache_dir, self.head)
        return tokenized.with_format(columns=self._tensor_columns(tokenized))

    def _augmented_train_set(self, transform: TextTransform) -> datasets.Dataset:
        """Noise that rewrites text (rs_da) must see a fresh draw every time an example is read."""

        def augment_and_encode(batch: dict) -> dict:
            encoded = self.kind.encode_for(self.head)(transform(batch), self.tokenizer, self.task, self.max_length)
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

    def train_dataloader(self) -> ResumableLoader:
        """Batches in an order fixed by (seed, epoch, rank), resumable mid-epoch from a checkpoint."""
        rows, shard = self.train_set, self._data_parallel_shard()
        if self.group_by_length:
            # rs_da rewrites the text on the fly: the clean lengths are close enough to group by
            lengths, group = _lengths(self.train_set), self.length_group_batches
            sampler = LengthGroupedSampler(lengths, self.batch_size, self.seed, mega_batches=group, **shard)
        else:
            sampler = EpochShuffleSampler(len(rows), self.seed, **shard)
        if self.train_text_transform is not None:
            rows = self._augmented_train_set(self.train_text_transform)
        self.train_loader = self._loader(rows, self.batch_size, sampler=sampler, loader=ResumableLoader)
        if self.loader_state is not None:
            self.train_loader.load_state_dict(self.loader_state)
            self.loader_state = None
        if self.trainer is not None:
            self.train_loader.lightning_epoch = lambda: self.trainer.current_epoch
            self.train_loader.lightning_batches = self._batches_into_epoch
        return self.train_loader

    def state_dict(self) -> dict:
        """The training loader's position and order, in every checkpoint (see xrobust/data/resumable.py)."""
        return {"train_loader": self.train_loader.state_dict()} if self.train_loader is not None else {}

    def load_state_dict(self, state: dict) -> None:
        self.loader_state = state.get("train_loader")

    @property
    def resume(self) -> dict | None:
        """Whether the resumed fit took the batches an uninterrupted run would have (None: it did not resume)."""
        return self.train_loader.resume if self.train_loader is not None else None

    def _batches_into_epoch(self) -> int:
        """Batches of the current epoch Lightning counts as done: non-zero only when fit resumes mid-epoch."""
        return self.trainer.fit_loop.epoch_loop.batch_progress.current.ready

    def _data_parallel_shard(self) -> dict[str, int]:
        """This rank's share of the training data (num_replicas, rank), as the strategy gives samplers it."""
        kwargs = self.trainer.distributed_sampler_kwargs if self.trainer is not None else None
        return {"num_replicas": kwargs["num_replicas"], "rank": kwargs["rank"]} if kwargs else {}

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader(self.val_set)

    def test_dataloader(self) -> list[DataLoader]:
        return [self._eval_loader(rows) for rows in self.test_sets.values()]

    def _eval_loader(self, rows: datasets.Dataset) -> DataLoader:
        """Order does not matter to the results: accuracy is order-free and predictions carry their `id`."""
        sampler = LengthSortedSampler(_lengths(rows)) if self.sort_eval_by_length else None
        return self._loader(rows, self.eval_batch_size, sampler=sampler)

    def _loader(self, rows, batch_size: int, sampler=None, loader: type[DataLoader] = DataLoader) -> DataLoader:
        return loader(
            rows,
            batch_size=batch_size,
            sampler=sampler,
            collate_fn=self.collate,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )


def split_by_item(rows: datasets.Dataset, fraction: float, seed: int) -> tuple[datasets.Dataset, datasets.Dataset]:
    """Hold out a seeded `fraction` of the items (ids), with every row of a held-out item.

    Rows sharing an id are renderings of one item (XCOPA's ten English translations of each COPA item): a row
    split would put an item's copies on both sides and select the model on what it trained on.
    """
    items = sorted(set(rows["id"]))
    order = torch.randperm(len(items), generator=torch.Generator().manual_seed(seed)).tolist()
    n_held = max(1, round(fraction * len(items)))
    held = {items[i] for i in order[:n_held]}
    if len(held) == len(items):
        raise XrobustError(f"data.val_fraction={fraction} leaves no training items out of {len(items)}")
    ids = rows["id"]
    keep = [i for i, item in enumerate(ids) if item not in held]
    out = [i for i, item in enumerate(ids) if item in held]
    return rows.select(keep), rows.select(out)


def _local_rank() -> int:
    """This process's rank on its node, from the launcher's environment (Lightning's, torchrun's or SLURM's): set
    before `fit`, when the job reads its data."""
    return int(os.environ.get("LOCAL_RANK", os.environ.get("SLURM_LOCALID", "0")))


def _lengths(rows: datasets.Dataset) -> list[int]:
    """Token count of every row (of its longest choice for multiple choice), read from Arrow."""
    ids = rows.with_format("arrow")["input_ids"]
    if pa.types.is_list(ids.type.value_type):
        return pc.list_value_length(pc.list_flatten(ids)).to_numpy().reshape(len(ids), -1).max(axis=1).tolist()
    return pc.list_value_length(ids).to_pylist()


def _check_unique_ids(rows: datasets.Dataset, name: str) -> None:
    """Test results count each item once by its id (a distributed sampler repeats items), so ids must be unique."""
    repeated = [item for item, count in Counter(rows["id"]).items() if count > 1]
    if repeated:
        raise XrobustError(f"{name}: item id {repeated[0]} appears more than once; each test item needs its own id")


def _count_truncated(rows: datasets.Dataset | None) -> int:
    if rows is None or "truncated" not in rows.column_names:
        return 0
    return int(sum(rows.with_format(None)["truncated"]))
