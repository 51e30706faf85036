"""What a task kind decides: how rows become model inputs, how they are batched, which model and head score them,
which metric selects the model, which metrics its test sets report and what predictions.tsv holds per item, which
test sets it adds beside the per-language ones (eval.generalized's mixed pairs), and what the planner needs of it
(sequences per example). One subclass per kind, in its own module of this package.

Under the text-to-text head (`model.head=seq2seq`) every kind encodes alike: the task's prompt template makes
one input string per row, and the strings to rank (`candidates`: the labels' verbalizer, or a multiple-choice
row's own choices) travel with the row as token ids."""

from __future__ import annotations

from abc import ABC, abstractmethod
from itertools import accumulate, pairwise
from typing import TYPE_CHECKING, Any, ClassVar

from xrobust.errors import XrobustError

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from datasets import Dataset
    from torch import nn
    from torchmetrics import Metric
    from transformers import PreTrainedTokenizerBase

    from xrobust.data.task_fields import TaskFields

# model.head: an encoder with a classification head (a fresh one per task), or the whole encoder-decoder trained
# and scored text-to-text (xrobust/models/seq2seq.py).
CLASSIFIER, SEQ2SEQ = "classifier", "seq2seq"
HEADS = (CLASSIFIER, SEQ2SEQ)
# One test item's prediction row of a kind that predicts a label index: its id (each item is counted once by it),
# the gold label index, the predicted one.
LABEL_ROW = ("id", "gold", "pred")
# Metric names as the logger abbreviates them (test/acc/<set>); a metric not here is logged under its own name.
LOG_NAMES = {"accuracy": "acc"}


class TaskKind(ABC):
    """One task kind; the task config's `kind` names the module whose `KIND` is an instance of it."""

    name: ClassVar[str]
    # The transformers Auto class (a pretrained body plus a fresh task head) for families loaded whole.
    auto_model_class: ClassVar[str]
    # What `score` computes from a test set's prediction rows, by name; the first is the headline number
    # (results.json `accuracy`, which the report tables), the others are written under results.json `metrics`.
    metrics: ClassVar[tuple[str, ...]] = ("accuracy",)
    # predictions.tsv's columns of one item, after its test set: the id first, the gold value second, then what
    # the model predicted (the perturbed read-out adds each of these as `perturbed_<column>`).
    prediction_columns: ClassVar[tuple[str, ...]] = LABEL_ROW
    # The text-to-text head ranks each item's own choices (True) or the task's label strings (False).
    ranks_own_choices: ClassVar[bool] = False

    @abstractmethod
    def validate(self, spec: TaskFields, where: str) -> None:
        """Kind-specific checks of a task config (its text fields, choices), raising XrobustError; `where` names
        the task."""

    @abstractmethod
    def encode(self, batch: dict, tokenizer: PreTrainedTokenizerBase, task: TaskFields, max_length: int) -> dict:
        """A `datasets.map` batch of rows to token ids, `labels` and a `truncated` flag per row."""

    @abstractmethod
    def collator(self, tokenizer: PreTrainedTokenizerBase) -> Callable[[list[dict]], dict]:
        """Pads a list of encoded rows (with their integer `id`) into a batch of tensors."""

    @abstractmethod
    def encoder_head(self, encoder: nn.Module, labels: dict[str, Any]) -> nn.Module:
        """The task head over an encoder-only body (families whose checkpoint is an encoder-decoder, e.g. mT5).

        `labels` holds num_labels and, when known, id2label and label2id."""

    def extra_test_sets(
        self, task: TaskFields, generalized: bool, languages: Sequence[str] | None
    ) -> ExtraTestSets | None:
        """The test sets this kind adds beside the per-language ones for the eval options (eval.generalized over
        `languages`, None: the task's); None when they ask for none. A kind without them refuses the option."""
        if generalized:
            raise XrobustError(f"eval.generalized needs a pair task; task '{task.name}' is of kind {self.name}")
        return None

    def candidates(self, batch: dict, task: TaskFields) -> list[list[str]]:
        """The strings the text-to-text head ranks for each row of a batch: the labels' strings, or the row's own
        choices (`ranks_own_choices`)."""
        if self.ranks_own_choices:
            return [[batch[field][i] for field in task.choice_fields] for i in range(len(batch["label"]))]
        strings = list(task.label_strings())
        return [strings for _ in batch["label"]]

    def sequences_per_example(self, task: TaskFields) -> int:
        """Sequences the classifier head reads per example (the planner scales memory and FLOPs by it); the
        text-to-text head's encoder reads an example once whatever the kind."""
        return 1

    def prediction_rows(self, ids: Sequence[int], gold: Sequence[Any], predicted: Sequence[Any]) -> list[tuple]:
        """One row per test item, in `prediction_columns` order."""
        return list(zip(ids, gold, predicted, strict=True))

    def score(self, rows: Sequence[tuple]) -> dict[str, float]:
        """Each of `metrics` over one test set's prediction rows (each item once)."""
        return {"accuracy": accuracy(rows)}

    def encode_text_to_text(
        self, batch: dict, tokenizer: PreTrainedTokenizerBase, task: TaskFields, max_length: int
    ) -> dict:
        """Each row formatted by the task's template into one input, its candidates tokenized as targets
        (`choice_ids`, each ending in EOS), the label index as `labels`; both sides truncated to max_length."""
        template = task.prompt_template()
        size = len(batch["label"])
        inputs = [template.render({name: batch[name][i] for name in template.fields}) for i in range(size)]
        encoded = tokenizer(inputs, truncation=True, max_length=max_length)
        full_lengths = [len(ids) for ids in tokenizer(inputs, truncation=False)["input_ids"]]
        candidates = self.candidates(batch, task)
        flat = [text for row in candidates for text in row]
        too_long = [len(ids) > max_length for ids in tokenizer(text_target=flat, truncation=False)["input_ids"]]
        targets = tokenizer(text_target=flat, truncation=True, max_length=max_length)["input_ids"]
        rows = list(pairwise([0, *accumulate(len(row) for row in candidates)]))  # each row's slice of `flat`
        encoded["choice_ids"] = [targets[a:b] for a, b in rows]
        encoded["truncated"] = [
            n > max_length or any(too_long[a:b]) for n, (a, b) in zip(full_lengths, rows, strict=True)
        ]
        encoded["labels"] = batch["label"]
        return encoded

    def encode_for(self, head: str) -> Callable[..., dict]:
        """The `datasets.map` function that encodes rows for `head` (model.head)."""
        return self.encode_text_to_text if head == SEQ2SEQ else self.encode

    def collator_for(self, tokenizer: PreTrainedTokenizerBase, head: str) -> Callable[[list[dict]], dict]:
        return CandidateCollator(tokenizer) if head == SEQ2SEQ else self.collator(tokenizer)

    def auto_model(self) -> Any:
        import transformers

        return getattr(transformers, self.auto_model_class)

    def metric(self, num_labels: int) -> Metric:
        """The model-selection metric over predicted and gold label indices."""
        from torchmetrics.classification import MulticlassAccuracy

        return MulticlassAccuracy(num_classes=num_labels, average="micro")


class ExtraTestSets(ABC):
    """Test sets a kind builds out of the per-language ones (a pair kind's mixed-language pairs): their names and
    rows, tested like the rest, then summarised under one results.json field rather than per language."""

    # The RunResult field that holds `summary`.
    result_field: ClassVar[str]

    @abstractmethod
    def build(self, tests: Mapping[str, Dataset], task: TaskFields, split: str) -> dict[str, Dataset]:
        """The extra test sets by name, from the per-language test rows (`split` names their files in messages)."""

    @abstractmethod
    def summary(self, results: Mapping[str, Mapping[str, Any]], metric: str) -> dict[str, Any]:
        """The `result_field` entry: `metric` over the extra sets, from every test set's results by name."""


def accuracy(rows: Sequence[tuple]) -> float:
    """The share of label rows (id, gold, pred) predicted right; 0 for an empty test set."""
    return sum(gold == predicted for _, gold, predicted in rows) / len(rows) if rows else 0.0


def log_name(metric: str) -> str:
    """The metric's name in logged keys (test/acc/de for accuracy)."""
    return LOG_NAMES.get(metric, metric)


def tokenize_with_lengths(
    tokenizer: PreTrainedTokenizerBase, firsts: list[str], seconds: list[str], max_length: int
) -> tuple[dict, list[int]]:
    """Text pairs tokenized and truncated to max_length, with each pair's untruncated token count."""
    encoded = tokenizer(firsts, seconds, truncation=True, max_length=max_length)
    full_lengths = [len(ids) for ids in tokenizer(firsts, seconds, truncation=False)["input_ids"]]
    return encoded, full_lengths


class CandidateCollator:
    """Pads the inputs as `DataCollatorWithPadding` does, and each row's candidates into `choice_ids`
    (batch, candidates, length) with `choice_mask` (1 on real tokens)."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase):
        from transformers import DataCollatorWithPadding

        self.pad = DataCollatorWithPadding(tokenizer)
        self.pad_id = tokenizer.pad_token_id

    def __call__(self, features: list[dict]) -> dict:
        import torch

        candidates = [[list(ids) for ids in feature["choice_ids"]] for feature in features]
        batch = self.pad([{k: v for k, v in feature.items() if k != "choice_ids"} for feature in features])
        length = max(len(ids) for row in candidates for ids in row)
        batch["choice_ids"] = torch.tensor(
            [[ids + [self.pad_id] * (length - len(ids)) for ids in row] for row in candidates]
        )
        batch["choice_mask"] = torch.tensor(
            [[[1] * len(ids) + [0] * (length - len(ids)) for ids in row] for row in candidates]
        )
        return batch
