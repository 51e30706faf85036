"""Replay a finished learning-rate grid's per-epoch English dev curves under cheaper selection rules.

Each job of the grid logged its dev accuracy after every epoch (logger=csv: csv/metrics.csv). The full grid picks,
per cell (task, model, noise), the lr scale with the best mean over seeds of each run's best dev accuracy, ties to
the lowest scale (as `xrobust-report --select-on dev-en` does). A cheaper rule sees only part of those curves:

* `halving`: hydra/sweeper=halving as it ships (rung_epochs=1, eta=3): every lr runs one epoch on every seed; only
  the lr with the best mean dev accuracy so far goes on.
* `halving2`: keep-two (eta=2): the best two go on after the first rung, the best one after the second.
* `halving, rung 2` and `halving2, rung 2`: the same with a longer first rung (rung_epochs=2).
* `one_seed`: the first seed runs every lr to the end; the other seeds run only the lr it picked.

A rule agrees with the full grid in a cell when it picks the same lr. Per seed (cells x seeds, a larger sample than
the cells): a halving rule run on one seed's curves alone against the full grid on that seed's; `one_seed` choosing
on each seed in turn against the full grid on all seeds. Its regret is what the cell loses: the held-out English
accuracy (results.json's english_accuracy under data.heldout=true, a set that chose nothing) of the full grid's lr
minus that of the rule's, each the mean over seeds of runs trained to their end. Its cost is the job-epochs it
trains (a continuing run resumes, so a rung's epochs are not trained twice; a kept run that early stopping had ended
inside a rung resumes for one more epoch, counted, its accuracy taken as no better). Run it on a grid's sweep folders:

    python -m benchmarks.lr_replay multirun/fair-xnli-heldout/none multirun/fair-xnli-heldout/rs_da
"""

from __future__ import annotations

import argparse
import csv
import json
import math
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf

Cell = tuple[str, str, str]


@dataclass(frozen=True)
class Run:
    cell: Cell
    lr_scale: float
    seed: int
    curve: tuple[float, ...]  # dev accuracy after each epoch run (early stopping may end it before max_epochs)
    heldout: float | None = None  # accuracy on the untouched English set (data.heldout=true), None without one
    max_epochs: int | None = None

    def best_until(self, epochs: int) -> float:
        """The best dev accuracy a run shows within its first `epochs` epochs (all of them when it stopped earlier)."""
        return max(self.curve[:epochs])

    def epochs_run(self) -> int:
        return len(self.curve)

    def ended_by(self, epochs: int) -> bool:
        """Whether early stopping had ended the run within its first `epochs` epochs."""
        return self.epochs_run() <= epochs and (self.max_epochs is None or self.epochs_run() < self.max_epochs)


ByLr = dict[float, list[Run]]
Rule = Callable[[ByLr], tuple[float, int]]


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
    max_epochs = OmegaConf.select(cfg, "trainer.max_epochs")
    return Run(
        cell=cell,
        lr_scale=float(cfg.optim.lr_scale),
        seed=int(cfg.seed),
        curve=curve,
        heldout=heldout_accuracy(job) if OmegaConf.select(cfg, "data.heldout") else None,
        max_epochs=None if max_epochs in (None, -1) else int(max_epochs),
    )


def heldout_accuracy(job: Path) -> float | None:
    results = job / "results.json"
    if not results.is_file():
        return None
    return json.loads(results.read_text(encoding="utf-8")).get("english_accuracy")


def group_by_lr(runs: list[Run]) -> ByLr:
    by_lr: ByLr = defaultdict(list)
    for run in runs:
        by_lr[run.lr_scale].append(run)
    return dict(by_lr)


def best_lr(runs: ByLr, epochs: int | None, lrs: list[float]) -> list[float]:
    """The lrs ordered best first by mean (over seeds) best dev accuracy within `epochs` (None: the whole run);
    ties keep the lower lr first."""
    means = {lr: np.mean([r.best_until(epochs or r.epochs_run()) for r in runs[lr]]) for lr in lrs}
    return sorted(lrs, key=lambda lr: (-means[lr], lr))


def full_grid(by_lr: ByLr) -> tuple[float, int]:
    return best_lr(by_lr, None, sorted(by_lr))[0], sum(r.epochs_run() for runs in by_lr.values() for r in runs)


@dataclass(frozen=True)
class Halving:
    """hydra/sweeper=halving's rule (xrobust/sweep/halving.py) replayed: rung k ends after rung_epochs x eta^k
    epochs while more than one lr is left and the rung ends before trainer.max_epochs; the best ceil(n / eta) go on.
    `resumes`: count the epoch a kept run that early stopping had ended trains when it resumes."""

    rung_epochs: int
    eta: int
    resumes: bool = True

    def __call__(self, by_lr: ByLr) -> tuple[float, int]:
        alive, epochs, spent = sorted(by_lr), self.rung_epochs, 0
        limit = next(iter(by_lr.values()))[0].max_epochs
        while len(alive) > 1 and (limit is None or epochs < limit):
            kept = best_lr(by_lr, epochs, alive)[: math.ceil(len(alive) / self.eta)]
            spent += sum(min(r.epochs_run(), epochs) for lr in alive if lr not in kept for r in by_lr[lr])
            if self.resumes:
                spent += sum(r.ended_by(epochs) for lr in kept for r in by_lr[lr])
            alive, epochs = kept, epochs * self.eta
        spent += sum(r.epochs_run() for lr in alive for r in by_lr[lr])
        return best_lr(by_lr, None, alive)[0], spent

    def resumed_epochs(self, by_lr: ByLr) -> int:
        """The job-epochs of kept runs that early stopping had ended, resumed for one more epoch."""
        return self(by_lr)[1] - replace(self, resumes=False)(by_lr)[1]


def one_seed(by_lr: ByLr, seed: int | None = None) -> tuple[float, int]:
    """`seed` (default the first) runs every lr to the end; the other seeds run only the lr it picked."""
    chooser = min(r.seed for runs in by_lr.values() for r in runs) if seed is None else seed
    picked = full_grid(only_seed(by_lr, chooser))[0]
    spent = sum(r.epochs_run() for runs in by_lr.values() for r in runs if r.seed == chooser)
    return picked, spent + sum(r.epochs_run() for r in by_lr[picked] if r.seed != chooser)


def only_seed(by_lr: ByLr, seed: int) -> ByLr:
    return {lr: [r for r in runs if r.seed == seed] for lr, runs in by_lr.items()}


def rules(rungs: list[int]) -> dict[str, Rule]:
    """Every rule replayed, the full grid first; a first rung other than one epoch named."""
    named: dict[str, Rule] = {"full grid": full_grid}
    for rung in rungs:
        suffix = "" if rung == 1 else f", rung {rung}"
        named[f"halving{suffix}"] = Halving(rung, 3)
        named[f"halving2{suffix}"] = Halving(rung, 2)
    named["one_seed"] = one_seed
    return named


def replay_cell(runs: list[Run], rung: int) -> dict[str, tuple[float, int]]:
    """Per rule (first rung `rung` epochs), the lr it picks in this cell and the job-epochs it costs."""
    by_lr = group_by_lr(runs)
    named = {"full grid": full_grid, "halving": Halving(rung, 3), "halving2": Halving(rung, 2), "one_seed": one_seed}
    return {name: rule(by_lr) for name, rule in named.items()}


def seed_agreement(rule: Rule, by_lr: ByLr) -> tuple[int, int]:
    """(seeds agreeing, seeds): the rule on one seed's curves against the full grid on the same seed's;
    `one_seed` choosing on each seed against the full grid on all of them."""
    seeds = sorted({r.seed for runs in by_lr.values() for r in runs})
    if rule is one_seed:
        agree = [one_seed(by_lr, seed)[0] == full_grid(by_lr)[0] for seed in seeds]
    else:
        agree = [rule(only_seed(by_lr, s))[0] == full_grid(only_seed(by_lr, s))[0] for s in seeds]
    return sum(agree), len(seeds)


def heldout_mean(by_lr: ByLr, lr: float) -> float | None:
    """The mean over seeds of the lr's held-out English accuracy, in points; None if a run has none."""
    scores = [r.heldout for r in by_lr[lr]]
    return None if None in scores else 100 * float(np.mean(scores))


def points(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.1f}"


@dataclass(frozen=True)
class Outcome:
    """One rule in one cell: its lr and job-epochs, those spent resuming ended runs, seeds agreeing, regret."""

    lr: float
    cost: int
    resumed: int
    seeds: tuple[int, int] | None  # (agreeing, of); None for the full grid itself
    heldout: float | None
    regret: float | None


def replay(by_lr: ByLr, named: dict[str, Rule]) -> dict[str, Outcome]:
    """Every rule's outcome in one cell."""
    picks = {name: rule(by_lr) for name, rule in named.items()}
    reference = heldout_mean(by_lr, picks["full grid"][0])
    outcomes = {}
    for name, (lr, cost) in picks.items():
        rule, held = named[name], heldout_mean(by_lr, lr)
        outcomes[name] = Outcome(
            lr=lr,
            cost=cost,
            resumed=rule.resumed_epochs(by_lr) if isinstance(rule, Halving) else 0,
            seeds=None if rule is full_grid else seed_agreement(rule, by_lr),
            heldout=held,
            regret=None if held is None or reference is None else reference - held,
        )
    return outcomes


def read_cells(sweeps: list[Path]) -> dict[Cell, list[Run]]:
    cells: dict[Cell, list[Run]] = defaultdict(list)
    for sweep in sweeps:
        for config in sorted(sweep.rglob(".hydra/config.yaml")):
            run = read_run(config.parent.parent)
            if run is not None:
                cells[run.cell].append(run)
    return dict(cells)


def print_cells(results: dict[Cell, dict[str, Outcome]]) -> None:
    print("| task | model | noise | rule | lr | job-epochs | seeds agreeing | held-out en at its lr | regret |")
    print("|---|---|---|---|---:|---:|---:|---:|---:|")
    for cell, outcomes in results.items():
        for name, o in outcomes.items():
            seeds = "—" if o.seeds is None else f"{o.seeds[0]} / {o.seeds[1]}"
            held = "n/a" if o.heldout is None else f"{o.heldout:.1f}"
            print(f"| {' | '.join(cell)} | {name} | {o.lr:g} | {o.cost} | {seeds} | {held} | {points(o.regret)} |")


def print_summary(results: dict[Cell, dict[str, Outcome]]) -> None:
    print(
        "| rule | cells agreeing with the full grid | job-epochs | share of the full grid's "
        "| cells x seeds agreeing | mean regret | worst regret | job-epochs resuming ended runs |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    full = [outcomes["full grid"] for outcomes in results.values()]
    for name in next(iter(results.values()), {}):
        cells = [outcomes[name] for outcomes in results.values()]
        agree = sum(o.lr == f.lr for o, f in zip(cells, full, strict=True))
        cost, regrets = sum(o.cost for o in cells), [o.regret for o in cells]
        mean, worst = (None, None) if None in regrets else (float(np.mean(regrets)), max(regrets))
        seeds = [o.seeds for o in cells if o.seeds is not None]
        by_seed = f"{sum(s[0] for s in seeds)} / {sum(s[1] for s in seeds)}" if seeds else "—"
        print(
            f"| {name} | {agree} / {len(cells)} | {cost} | {cost / sum(f.cost for f in full):.2f} | {by_seed} "
            f"| {points(mean)} | {points(worst)} | {sum(o.resumed for o in cells)} |"
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweeps", nargs="+", type=Path, help="sweep folders (every job folder below is read)")
    parser.add_argument("--rung", type=int, nargs="+", default=[1, 2], help="first-rung epochs to replay (1 2)")
    args = parser.parse_args(argv)
    cells = read_cells(args.sweeps)
    named = rules(args.rung)
    results = {cell: replay(group_by_lr(cells[cell]), named) for cell in sorted(cells)}
    print_cells(results)
    print()
    print_summary(results)


if __name__ == "__main__":
    main()
