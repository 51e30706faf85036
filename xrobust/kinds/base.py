"""What a task kind decides: how rows become model inputs, how they are batched, which model and head score them,
and which metric selects the model. One subclass per kind, in its own module of this package."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from collections.abc import Callable

    from torch import nn
    from torchmetrics import Metric
    from transformers import PreTrainedTokenizerBase

    from xrobust.data.task import TaskSpec

# model.head: an encoder with a classification head (a fresh one per task), or the whole encoder-decoder trained
# and scored text-to-text (xrobust/models/seq2seq.py).
CLASSIFIER, SEQ2SEQ = "classifier", "seq2seq"
HEADS = (CLASSIFIER, SEQ2SEQ)


class TaskKind(ABC):
    """One task kind; the task config's `kind` names the module whose `KIND` is an instance of it."""

    name: ClassVar[str]
    # The transformers Auto class (a pretrained body plus a fresh task head) for families loaded whole.
    auto_model_class: ClassVar[str]
    # eval.generalized pairs sentence 1 of one language with sentence 2 of another: only meaningful for pairs.
    supports_generalized: ClassVar[bool] = False

    @abstractmethod
    def validate(self, spec: TaskSpec, where: str) -> None:
        """Kind-specific checks of a task config (its text fields, choices), raising XrobustError; `where` names
        the task."""

    @abstractmethod
    def encode(self, batch: dict, tokenizer: PreTrainedTokenizerBase, task: TaskSpec, max_length: int) -> dict:
        """A `datasets.map` batch of rows to token ids, `labels` and a `truncated` flag per row."""

    @abstractmethod
    def collator(self, tokenizer: PreTrainedTokenizerBase) -> Callable[[list[dict]], dict]:
        """Pads a list of encoded rows (with their integer `id`) into a batch of tensors."""

    @abstractmethod
    def encoder_head(self, encoder: nn.Module, labels: dict[str, Any]) -> nn.Module:
        """The task head over an encoder-only body (families whose checkpoint is an encoder-decoder, e.g. mT5).

        `labels` holds num_labels and, when known, id2label and label2id."""

    def auto_model(self) -> Any:
        import transformers

        return getattr(transformers, self.auto_model_class)

    def metric(self, num_labels: int) -> Metric:
        """The model-selection metric over predicted and gold label indices."""
        from torchmetrics.classification import MulticlassAccuracy

        return MulticlassAccuracy(num_classes=num_labels, average="micro")


def tokenize_with_lengths(
    tokenizer: PreTrainedTokenizerBase, firsts: list[str], seconds: list[str], max_length: int
) -> tuple[dict, list[int]]:
    """Text pairs tokenized and truncated to max_length, with each pair's untruncated token count."""
    encoded = tokenizer(firsts, seconds, truncation=True, max_length=max_length)
    full_lengths = [len(ids) for ids in tokenizer(firsts, seconds, truncation=False)["input_ids"]]
    return encoded, full_lengths
