"""How much data a job reads: examples and tokens per example of its training, model-selection and test sets.

Hub tasks take the recorded figures of their `task.sizes` (conf/task/<name>.yaml, each with its source); a job on
local files (`data.local_dir`) or the packaged sample is measured instead: the run's own data module loads and
tokenizes the splits (through the shared tokenization cache) and the run's own samplers batch them, so the
tokens are the padded ones the model will see.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from xrobust.data.task import TaskSpec
from xrobust.errors import XrobustError
from xrobust.kinds.base import CLASSIFIER
from xrobust.plan.options import plan_options
from xrobust.plan.task_sizes import recorded_sizes


@dataclass(frozen=True)
class DataStats:
    """Examples and mean tokens per example (every choice of a multiple-choice item counted) of one job's data."""

    source: str
    train_examples: int
    dev_examples: int  # the English set the run selects its model on
    test_examples: Mapping[str, int]  # per test set
    train_tokens: float  # as batched for training: padding to each batch's longest included
    dev_tokens: float
    test_tokens: Mapping[str, float]

    @property
    def test_total_tokens(self) -> float:
        return sum(self.test_examples[name] * self.test_tokens[name] for name in self.test_examples)


def data_stats(cfg: DictConfig) -> DataStats:
    """Measured from the job's own files when it reads local ones; else the recorded figures of its Hub task."""
    if cfg.data.local_dir or cfg.task.packaged:
        return measured_stats(cfg)
    return recorded_stats(cfg)


def recorded_stats(cfg: DictConfig) -> DataStats:
    """`task.sizes`: sizes of the Hub splits the run reads and mean real tokens per sequence (XLM-R's tokenizer,
    cut at 128), cut again at data.max_length, times the task kind's sequences per example; training tokens times
    plan.padding (of the run's batching)."""
    task = TaskSpec.from_config(cfg.task)
    data = cfg.data
    sizes = recorded_sizes(task)
    choices = task.task_kind.sequences_per_example(task)
    cap = data.max_length
    tokens = sizes.tokens
    test_examples = {lang: int(sizes.test_sizes.get(lang, sizes.test)) for lang in task.languages}
    test_means = tokens.test or {}

    def per_example(mean: float | None) -> float:
        return choices * min(float(mean), cap) if mean is not None else choices * cap  # unknown: at most max_length

    test_tokens = {lang: per_example(test_means.get(lang)) for lang in task.languages}
    if data.generalized:  # sentence 1 in language A, sentence 2 in B: every ordered pair
        mixed = [str(lang) for lang in (data.generalized_languages or task.languages)]
        for first in mixed:
            for second in (lang for lang in mixed if lang != first):
                test_examples[f"{first}_{second}"] = min(test_examples[first], test_examples[second])
                test_tokens[f"{first}_{second}"] = (test_tokens[first] + test_tokens[second]) / 2
    batching = "packed" if packs(cfg) else "length_grouped" if data.group_by_length else "shuffled"
    padding = getattr(plan_options(cfg).padding, batching)
    return DataStats(
        source=f"task.sizes of {task.name} ({sizes.source or 'no source given'})",
        train_examples=sizes.train,
        dev_examples=sizes.dev,
        test_examples=test_examples,
        train_tokens=per_example(tokens.train) * padding,
        dev_tokens=per_example(tokens.dev),
        test_tokens=test_tokens,
    )


def measured_stats(cfg: DictConfig) -> DataStats:
    """Sizes and padded tokens of the job's own local splits, batched as the run batches them."""
    data = cfg.data
    tokenizer, stand_in = tokenizer_for(cfg.model)
    lengths = split_lengths(
        json.dumps(OmegaConf.to_container(cfg.task, resolve=True), sort_keys=True),
        json.dumps(OmegaConf.to_container(data, resolve=True), sort_keys=True, default=str),
        tokenizer,
    )
    train, choices = lengths["train"], lengths["choices"]
    if data.group_by_length:
        from xrobust.data.sampling import LengthGroupedSampler

        order = list(LengthGroupedSampler(train, int(data.batch_size), int(data.seed)))
    else:
        from xrobust.data.sampling import EpochShuffleSampler

        order = list(EpochShuffleSampler(len(train), int(data.seed)))
    batch, eval_batch = (1, 1) if packs(cfg) else (int(data.batch_size), int(data.eval_batch_size))  # 1: unpadded
    return DataStats(
        source=f"measured: {data.local_dir or 'packaged ' + str(cfg.task.name)}"
        + (f" (tokenized with {stand_in})" if stand_in else ""),
        train_examples=len(train),
        dev_examples=len(lengths["dev"]),
        test_examples={name: len(rows) for name, rows in lengths["test"].items()},
        train_tokens=choices * padded_mean(train, order, batch),
        dev_tokens=choices * padded_mean(lengths["dev"], _longest_first(lengths["dev"], data), eval_batch),
        test_tokens={
            name: choices * padded_mean(rows, _longest_first(rows, data), eval_batch)
            for name, rows in lengths["test"].items()
        },
    )


def packs(cfg: DictConfig) -> bool:
    """data.packing=true: examples end to end, unpadded; refused, as training refuses it (xrobust/models/packing.py),
    on a model type that does not declare it or on the text-to-text head."""
    if not cfg.data.packing:
        return False
    from xrobust.models.model_types import model_type_record

    model_type = model_type_of(cfg.model)
    record = model_type_record(model_type) if model_type else None
    if record is None or not record.packing or str(cfg.model.head) != CLASSIFIER:
        raise XrobustError(
            f"data.packing=true: {cfg.model.name} ({model_type}, model.head={cfg.model.head}) does not "
            "support packed batches"
        )
    return True


def model_type_of(model: DictConfig) -> str | None:
    """config.json's model_type: the shipped architecture's, or a local checkpoint's."""
    from xrobust.models.loading import architecture_path

    if model.architecture:
        path = architecture_path(str(model.architecture))
    else:
        path = Path(str(model.pretrained)).expanduser() / "config.json"
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8")).get("model_type")


def padded_mean(lengths: Sequence[int], order: Sequence[int], batch_size: int) -> float:
    """Mean tokens per example when `order` is cut into batches and each is padded to its longest."""
    if not lengths:
        return 0.0
    padded = 0
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        padded += len(chunk) * max(lengths[i] for i in chunk)
    return padded / len(order)


def _longest_first(lengths: Sequence[int], data: DictConfig) -> list[int]:
    if data.sort_eval_by_length:
        return sorted(range(len(lengths)), key=lambda i: -lengths[i])
    return list(range(len(lengths)))


def tokenizer_for(model: DictConfig) -> tuple[str, str | None]:
    """The tokenizer folder to measure with, and what it stands in for (None: the model's own).

    The planner never downloads: a Hub model's tokenizer is used only when `model.pretrained` is a local folder;
    otherwise the embedded encoder's, which is XLM-R's 250k-piece SentencePiece vocabulary.
    """
    from xrobust.models.embedded import embedded_model_dir
    from xrobust.models.loading import resolve_pretrained

    if model.embedded:
        return resolve_pretrained(model), None
    local = Path(str(model.pretrained)).expanduser()
    if (local / "tokenizer_config.json").is_file():
        return str(local), None
    stand_in = embedded_model_dir("me5-small")
    if (stand_in / "tokenizer_config.json").is_file():
        return str(stand_in), f"XLM-R's tokenizer from {stand_in} for {model.name}'s"
    raise XrobustError(f"no local tokenizer for {model.name} to measure the data with (xrobust-plan never downloads)")


@functools.cache
def split_lengths(task_json: str, data_json: str, tokenizer: str) -> dict:
    """Token count of every row of the train, dev and test splits (the longest choice for multiple choice),
    from the run's own data module: loaded and tokenized once per task, data and tokenizer."""
    task = TaskSpec.from_config(json.loads(task_json))
    data = OmegaConf.create(json.loads(data_json))
    module = instantiate(data, _partial_=True)(task=task, tokenizer_path=tokenizer)
    module.setup()

    def lengths(rows) -> tuple[list[int], int]:
        ids = rows.with_format(None)["input_ids"]
        if ids and isinstance(ids[0][0], list):
            return [max(len(choice) for choice in row) for row in ids], len(ids[0])
        return [len(row) for row in ids], 1

    train, choices = lengths(module.train_set)
    return {
        "train": train,
        "choices": choices,
        "dev": lengths(module.val_set)[0],
        "test": {name: lengths(rows)[0] for name, rows in module.test_sets.items()},
    }
