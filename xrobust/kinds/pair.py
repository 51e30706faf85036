"""Pair classification (XNLI, PAWS-X, AmericasNLI): two text fields in, one label out of task.label_names; with
eval.generalized, the mixed-language pairs (sentence 1 in language A, sentence 2 in B) as test sets of their own."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from xrobust.data.parallel import parallel_mismatch
from xrobust.errors import XrobustError
from xrobust.kinds.base import ExtraTestSets, TaskKind, tokenize_with_lengths

if TYPE_CHECKING:
    from datasets import Dataset

    from xrobust.data.task_fields import TaskFields

log = logging.getLogger(__name__)


class PairKind(TaskKind):
    name = "pair"
    auto_model_class = "AutoModelForSequenceClassification"

    def validate(self, spec, where: str) -> None:
        if len(spec.text_fields) != 2:
            raise XrobustError(f"{where}: a pair task needs exactly two task.text_fields, got {list(spec.text_fields)}")

    def encode(self, batch: dict, tokenizer, task, max_length: int) -> dict:
        """Tokenize a batch of text pairs, truncated to max_length, and flag which ones had to be truncated."""
        first, second = (batch[name] for name in task.text_fields)
        encoded, full_lengths = tokenize_with_lengths(tokenizer, first, second, max_length)
        encoded["truncated"] = [n > max_length for n in full_lengths]
        encoded["labels"] = batch["label"]
        return encoded

    def collator(self, tokenizer):
        from transformers import DataCollatorWithPadding

        return DataCollatorWithPadding(tokenizer)

    def extra_test_sets(self, task, generalized: bool, languages: Sequence[str] | None) -> MixedPairs | None:
        return MixedPairs(languages or task.languages) if generalized else None

    def encoder_head(self, encoder, labels: dict[str, Any]):
        from xrobust.models.heads import EncoderClassifier

        for key in ("id2label", "label2id"):
            if key in labels:
                setattr(encoder.config, key, labels[key])
        return EncoderClassifier(encoder, num_labels=labels["num_labels"])


class MixedPairs(ExtraTestSets):
    """eval.generalized: line i of test-A paired with line i of test-B for every ordered pair of `languages`, named
    `A_B`; summarised as the A x B matrix whose diagonal is the standard setting. Only meaningful for parallel sets.

    PAWS-X's translations were labelled again, so a few items carry another label in another language; such an
    item has no single gold label as a mixed pair, so it is left out of that pair, counted in `excluded`
    (results.json) and logged."""

    result_field = "generalized"

    def __init__(self, languages: Sequence[str]):
        self.languages = list(languages)
        self.excluded: dict[str, int] = {}  # mixed pair -> items left out because A and B label them differently

    def build(self, tests: Mapping[str, Dataset], task: TaskFields, split: str) -> dict[str, Dataset]:
        return {
            f"{first}_{second}": self._pair(tests, task, split, first, second)
            for first in self.languages
            for second in self.languages
            if first != second
        }

    def _pair(self, tests: Mapping[str, Dataset], task: TaskFields, split: str, first: str, second: str) -> Dataset:
        import datasets

        for lang in (first, second):
            task.check_language(lang)
        a, b = tests[first], tests[second]
        text_a, text_b = task.text_fields
        mismatch = (
            "different item ids"
            if a["id"] != b["id"]
            else parallel_mismatch(
                a["label"],
                b["label"],
                [f"{x} {y}" for x, y in zip(a[text_a], a[text_b], strict=True)],
                [f"{x} {y}" for x, y in zip(b[text_a], b[text_b], strict=True)],
            )
        )
        if mismatch:
            raise XrobustError(
                f"eval.generalized needs parallel test sets (line i of every file a translation of one item), but "
                f"{split}-{first} and {split}-{second} hold different items: {mismatch}"
            )
        agree = [i for i, (x, y) in enumerate(zip(a["label"], b["label"], strict=True)) if x == y]
        if len(agree) < len(a):
            excluded = len(a) - len(agree)
            self.excluded[f"{first}_{second}"] = excluded
            log.warning(
                "eval.generalized: %s-%s and %s-%s give %d of %d items different labels; pair %s_%s leaves them out",
                split,
                first,
                split,
                second,
                excluded,
                len(a),
                first,
                second,
            )
            a, b = a.select(agree), b.select(agree)
        return datasets.Dataset.from_dict(
            {
                "id": a["id"],
                text_a: a[text_a],
                text_b: b[text_b],
                "label": a["label"],
                "lang": [f"{first}_{second}"] * len(a),
            }
        )

    def summary(self, results: Mapping[str, Mapping[str, Any]], metric: str) -> dict[str, Any]:
        """The A x B matrix of `metric` (sentence 1 in A, sentence 2 in B; the diagonal is the standard setting),
        and per mixed pair the items left out because A and B label them differently."""
        languages = self.languages
        matrix = {a: {b: results[a if a == b else f"{a}_{b}"][metric] for b in languages} for a in languages}
        cells = [acc for row in matrix.values() for acc in row.values()]
        mixed = [matrix[a][b] for a in languages for b in languages if a != b]
        return {
            "languages": languages,
            "matrix": matrix,
            "mean": sum(cells) / len(cells),
            "mixed_pairs_mean": sum(mixed) / len(mixed) if mixed else None,
            "excluded_items": dict(self.excluded),
        }


KIND = PairKind()
