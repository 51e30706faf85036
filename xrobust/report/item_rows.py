"""Read predictions.tsv (layout: xrobust.run.predictions) into per-item correctness, per test set.

Three read-outs come from one file: the standard per-language test sets, the generalized setting's mixed pairs
(`A_B`: sentence 1 in A, sentence 2 in B) and, when the run had eval.perturbed, the perturbed read-out (the
fifth column). A file that disagrees with its results.json is refused, naming both.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from xrobust.errors import XrobustError
from xrobust.run.predictions import PERTURBED_COLUMN, PREDICTION_COLUMNS
from xrobust.run.run_result import HEADLINE

# results.json stores float32 accuracies: allow that rounding, never a different count.
ACCURACY_TOLERANCE = 1e-4
ACCURACY, PERTURBED, GENERALIZED = "accuracy", "perturbed", "generalized"


@dataclass(frozen=True)
class Item:
    gold: int
    correct: bool
    perturbed_correct: bool | None


def read_predictions(path: Path) -> tuple[dict[str, dict[int, Item]], bool]:
    """({test set: {item id: Item}}, whether the file has the perturbed column)."""
    if not path.is_file():
        raise XrobustError(f"{path}: predictions file not found (the size comparison pairs test items from it)")
    out: dict[str, dict[int, Item]] = {}
    with open(path, encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle, delimiter="\t")
        header = next(reader, None)
        perturbed = header == [*PREDICTION_COLUMNS, PERTURBED_COLUMN]
        if header != list(PREDICTION_COLUMNS) and not perturbed:
            raise XrobustError(f"{path}: header {header} is not {list(PREDICTION_COLUMNS)} (+ {PERTURBED_COLUMN})")
        for line_no, row in enumerate(reader, start=2):
            if not row:
                continue
            try:
                lang, item, gold, pred = row[0], int(row[1]), int(row[2]), int(row[3])
                noisy = int(row[4]) == gold if perturbed else None
            except (ValueError, IndexError):
                raise XrobustError(f"{path}:{line_no}: malformed row {row!r}") from None
            items = out.setdefault(lang, {})
            if item in items:
                raise XrobustError(f"{path}:{line_no}: item ({lang}, {item}) appears twice")
            items[item] = Item(gold, gold == pred, noisy)
    return out, perturbed


def mixed_pair_names(generalized: dict | None) -> set[str]:
    languages = (generalized or {}).get("languages") or []
    return {f"{a}_{b}" for a in languages for b in languages if a != b}


def check_against_results(
    path: Path,
    rows: dict[str, dict[int, Item]],
    n_examples: dict[str, int],
    metric: str,
    accuracy: dict[str, float],
    key: str,
) -> None:
    """Languages, counts and scores of the standard sets must be results.json's (key: correct or perturbed_correct,
    its share of items checked against `accuracy`, the job's headline `metric` per language). The differences
    pair items by right or wrong, so a metric that is not that share is refused here, by name."""
    if set(rows) != set(accuracy):
        raise XrobustError(f"{path}: languages {sorted(rows)} differ from results.json's {sorted(accuracy)}")
    for lang, items in rows.items():
        if len(items) != n_examples[lang]:
            raise XrobustError(
                f"{path}: {len(items)} {lang} predictions, results.json says n_examples={n_examples[lang]}"
            )
        found = sum(getattr(item, key) for item in items.values()) / len(items)
        if abs(found - accuracy[lang]) > ACCURACY_TOLERANCE:
            what = metric if key == "correct" else f"perturbed {metric}"
            why = (
                ""
                if metric == HEADLINE
                else f" (the differences pair items right or wrong: {metric} is no share of them)"
            )
            raise XrobustError(
                f"{path}: {lang} {what} from predictions {found:.4f} differs from results.json's {accuracy[lang]:.4f}"
                + why
            )


def correctness(rows: dict[str, dict[int, Item]], measure: str) -> dict[str, dict[int, tuple[int, bool]]]:
    """{test set: {item id: (gold, correct)}}, correct under the measure (perturbed: on perturbed input)."""
    key = "perturbed_correct" if measure == PERTURBED else "correct"
    return {name: {i: (item.gold, getattr(item, key)) for i, item in items.items()} for name, items in rows.items()}
