"""Per-item test predictions from every rank, each item counted once: a distributed sampler gives each rank a
share of every test set, padded with repeated items, so results are computed from the gathered unique rows.
Also the predictions.tsv layout, written by the run and read by xrobust-report."""

from __future__ import annotations

# One test item: its id, the gold label index, the predicted label index.
Row = tuple[int, int, int]
# predictions.tsv: one row per test item of every test set (languages, and `A_B` pairs of eval.generalized);
# with eval.perturbed a fifth column holds the prediction on the perturbed input (the perturbed read-out).
PREDICTION_COLUMNS = ("lang", "id", "gold", "pred")
PERTURBED_COLUMN = "perturbed_pred"


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


def accuracy(rows: list[Row]) -> float:
    return sum(gold == predicted for _, gold, predicted in rows) / len(rows) if rows else 0.0


def predictions_tsv(predictions: dict[str, list[Row]], perturbed: dict[str, list[Row]] | None = None) -> str:
    """The text of predictions.tsv: a header, then per test set its items by id; with `perturbed` (the same
    items, predicted on perturbed input) a fifth column."""
    header = [*PREDICTION_COLUMNS, *([PERTURBED_COLUMN] if perturbed is not None else [])]
    lines = ["\t".join(header)]
    for name, rows in predictions.items():
        noisy = None if perturbed is None else {item: pred for item, _, pred in perturbed.get(name, [])}
        for item, gold, pred in sorted(rows):
            cells = [name, str(item), str(gold), str(pred)]
            if noisy is not None:
                if item not in noisy:
                    raise ValueError(f"test set {name}: item {item} has no perturbed prediction")
                cells.append(str(noisy[item]))
            lines.append("\t".join(cells))
    return "\n".join(lines) + "\n"
