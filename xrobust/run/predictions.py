"""Per-item test predictions from every rank, each item counted once: a distributed sampler gives each rank a
share of every test set, padded with repeated items, so results are computed from the gathered unique rows.
Also the predictions.tsv layout, written by the run and read by xrobust-report; the task kind decides the
columns of a row (`TaskKind.prediction_columns`) and the metrics computed from them (`TaskKind.score`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from xrobust.kinds.base import LABEL_ROW

if TYPE_CHECKING:
    from xrobust.kinds.base import TaskKind

# One test item in its kind's prediction_columns: its id first, the gold value second, then the prediction(s).
Row = tuple
# predictions.tsv of a kind whose rows are LABEL_ROW: one row per test item of every test set (languages, and `A_B`
# pairs of eval.generalized); with eval.perturbed a fifth column holds the prediction on the perturbed input.
PREDICTION_COLUMNS = ("lang", *LABEL_ROW)
PERTURBED_PREFIX = "perturbed_"
PERTURBED_COLUMN = PERTURBED_PREFIX + LABEL_ROW[-1]


def gather_from_ranks(local: dict[str, list[Row]]) -> list[dict[str, list[Row]]]:
    """Every rank's rows, one entry per rank (just these rows in a single process)."""
    import torch.distributed as dist  # here, so that reading predictions (xrobust-report) never imports torch

    if not (dist.is_available() and dist.is_initialized()):
        return [local]
    gathered: list = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, local)
    return gathered


def unique_by_id(shards: list[dict[str, list[Row]]]) -> dict[str, list[Row]]:
    """One row per (test set, item id), sorted by id; a repeat from the sampler's padding is dropped."""
    merged: dict[str, dict[int, Row]] = {}
    for shard in shards:
        for name, rows in shard.items():
            by_id = merged.setdefault(name, {})
            for row in rows:
                by_id.setdefault(row[0], row)
    return {name: sorted(by_id.values()) for name, by_id in merged.items()}


def scored_test_sets(
    kind: TaskKind,
    names: Sequence[str],
    predictions: dict[str, list[Row]],
    perturbed: dict[str, list[Row]] | None = None,
) -> dict[str, dict[str, Any]]:
    """Per test set: the kind's metrics, its item count `n`, and with `perturbed` rows each metric again on the
    perturbed input as `perturbed_<metric>`."""
    results = {}
    for name in names:
        rows = predictions.get(name, [])
        result = {**kind.score(rows), "n": len(rows)}
        if perturbed is not None:
            noisy = kind.score(perturbed.get(name, []))
            result |= {PERTURBED_PREFIX + metric: value for metric, value in noisy.items()}
        results[name] = result
    return results


def predictions_tsv(
    predictions: dict[str, list[Row]],
    perturbed: dict[str, list[Row]] | None = None,
    columns: Sequence[str] = LABEL_ROW,
) -> str:
    """The text of predictions.tsv: a header (`lang`, then the kind's prediction `columns`), then per test set its
    items by id; with `perturbed` (the same items, predicted on perturbed input) each predicted column again."""
    header = ["lang", *columns]
    if perturbed is not None:  # the columns after the id and the gold value
        header += [PERTURBED_PREFIX + column for column in columns[2:]]
    lines = ["\t".join(header)]
    for name, rows in predictions.items():
        noisy = None if perturbed is None else {row[0]: row[2:] for row in perturbed.get(name, [])}
        for row in sorted(rows):
            if len(row) != len(columns):
                raise ValueError(f"test set {name}: item {row[0]} has {len(row)} cells, the columns are {columns}")
            cells = [name, *map(str, row)]
            if noisy is not None:
                if row[0] not in noisy:
                    raise ValueError(f"test set {name}: item {row[0]} has no perturbed prediction")
                cells += map(str, noisy[row[0]])
            lines.append("\t".join(cells))
    return "\n".join(lines) + "\n"
