"""Replay a finished learning-rate grid's per-epoch English dev curves under cheaper selection rules.

Each job of the grid logged its dev accuracy after every epoch (logger=csv: csv/metrics.csv). The full grid picks,
per cell (task, model, noise), the lr scale with the best mean over seeds of each run's best dev accuracy, ties to
the lowest scale (as `xrobust-report --select-on dev-en` does). A cheaper rule sees only part of those curves:

* `halving`: every lr runs `rung` epochs on every seed; only the lr with the best mean dev accuracy so far goes on.
* `halving2`: as `halving` but the best two go on after the first rung, the best one after the second.
* `one_seed`: the first seed runs every lr to the end; the other seeds run only the lr it picked.

A rule agrees with the full grid in a cell when it picks the same lr; its cost is the job-epochs it trains (a
continuing run resumes, so the epochs of a rung are not trained twice). Run it on a grid's sweep folders:

    python -m benchmarks.lr_replay multirun/fair-xnli-heldout/none multirun/fair-xnli-heldout/rs_da
"""

from __future__ import annotations

import argparse
import csv
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf


@dataclass(frozen=True)
class Run:
    cell: tuple[str, str, str]
    lr_scale: float
    seed: int
    curve: tuple[float, ...]  # dev accuracy after each epoch run (early stopping may end it before max_epochs)

    def best_until(self, epochs: int) -> float:
        """The best dev accuracy a run shows within its first `epochs` epochs (all of them when it stopped earlier)."""
        return max(self.curve[:epochs])

    def epochs_run(self) -> int:
        return len(self.curve)


def read_run(job: Path) -> Run | None:
    """A job folder's identity (from .hydra/config.yaml) and dev curve (csv/metrics.csv); None if it has no curve."""
    metrics = job / "csv" / "metrics.csv"
    if not metrics.is_file():
        return None
    cfg = OmegaConf.load(job / ".hydra" / "config.yaml")
    by_epoch: dict[int, float] = {}
    with metrics.open() as handle:
        for row in csv.DictReader(handle):
            if row.get("val/acc"):
                by_epoch[int(row["epoch"])] = float(row["val/acc"])
    if not by_epoch:
        return None
    cell = (str(cfg.task.name), str(cfg.model.name), str(cfg.noise.name))
    curve = tuple(by_epoch[e] for e in sorted(by_epoch))
    return Run(cell=cell, lr_scale=float(cfg.optim.lr_scale), seed=int(cfg.seed), curve=curve)


def best_lr(runs: dict[float, list[Run]], epochs: int | None, lrs: list[float]) -> list[float]:
    """The lrs ordered best first by mean (over seeds) best dev accuracy within `epochs` (None: the whole run);
    ties keep the lower lr first."""
    means = {lr: np.mean([r.best_until(epochs or r.epochs_run()) for r in runs[lr]]) for lr in lrs}
    return sorted(lrs, key=lambda lr: (-means[lr], lr))


def replay_cell(runs: list[Run], rung: int) -> dict[str, tuple[float, int]]:
    """Per rule, the lr it picks in this cell and the job-epochs it costs."""
    by_lr: dict[float, list[Run]] = defaultdict(list)
    for run in runs:
        by_lr[run.lr_scale].append(run)
    lrs = sorted(by_lr)

    def cost(lr_epochs: dict[float, int | None]) -> int:
        """Job-epochs when each lr trains until its given epoch (None: to its own end) on every seed."""
        return sum(min(r.epochs_run(), stop or r.epochs_run()) for lr, stop in lr_epochs.items() for r in by_lr[lr])

    out = {"full grid": (best_lr(by_lr, None, lrs)[0], cost(dict.fromkeys(lrs)))}

    order = best_lr(by_lr, rung, lrs)
    out["halving"] = (best_lr(by_lr, None, order[:1])[0], cost({lr: (None if lr == order[0] else rung) for lr in lrs}))

    kept = order[:2]
    second = best_lr(by_lr, 2 * rung, kept)
    stops = {lr: rung for lr in lrs} | {lr: 2 * rung for lr in kept} | {second[0]: None}
    out["halving2"] = (second[0], cost(stops))

    first_seed = min(r.seed for r in runs)
    seed_runs = {lr: [r for r in by_lr[lr] if r.seed == first_seed] for lr in lrs}
    picked = best_lr(seed_runs, None, lrs)[0]
    spent = sum(r.epochs_run() for lr in lrs for r in seed_runs[lr])
    spent += sum(r.epochs_run() for r in by_lr[picked] if r.seed != first_seed)
    out["one_seed"] = (picked, spent)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweeps", nargs="+", type=Path, help="sweep folders (every job folder below is read)")
    parser.add_argument("--rung", type=int, default=1, help="epochs of the first rung (default 1)")
    args = parser.parse_args(argv)
    cells: dict[tuple[str, str, str], list[Run]] = defaultdict(list)
    for sweep in args.sweeps:
        for config in sorted(sweep.rglob(".hydra/config.yaml")):
            run = read_run(config.parent.parent)
            if run is not None:
                cells[run.cell].append(run)
    rules = ["full grid", "halving", "halving2", "one_seed"]
    print("| task | model | noise | " + " | ".join(f"{rule}: lr, job-epochs" for rule in rules) + " |")
    print("|---|---|---|" + "---|" * len(rules))
    agree, spent = defaultdict(int), defaultdict(int)
    for cell in sorted(cells):
        result = replay_cell(cells[cell], args.rung)
        for rule in rules:
            agree[rule] += result[rule][0] == result["full grid"][0]
            spent[rule] += result[rule][1]
        print("| " + " | ".join(cell) + " | " + " | ".join(f"{result[r][0]:g}, {result[r][1]}" for r in rules) + " |")
    print()
    print("| rule | cells agreeing with the full grid | job-epochs | share of the full grid's |")
    print("|---|---:|---:|---:|")
    for rule in rules:
        print(f"| {rule} | {agree[rule]} / {len(cells)} | {spent[rule]} | {spent[rule] / spent['full grid']:.2f} |")


if __name__ == "__main__":
    main()
