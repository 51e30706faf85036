"""Choosing the learning rate on one seed: the rule hydra/sweeper=one_seed applies (the halving sweeper's `rule`).

Per cell (xrobust/sweep/halving.py: a sweep point less the chosen key and the seed), every value of the key runs its
full schedule on the cell's first seed; the one with the best English dev accuracy (ties: the first in sorted order,
as the report breaks them) runs on the other seeds, and no other value does. The lr replay of docs/report.md
("Stopping losing learning rates early") found it choosing as the full grid does at 0.61 of its job-epochs, where
successive halving's default lost 9 points. The decisions are halving.json's rung 0 entries, marked `rule: one_seed`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from xrobust.sweep.halving import LEDGER_FILE, Ledger, Point, by_cell, override_key, points

HALVING, ONE_SEED = "halving", "one_seed"
RULES = (HALVING, ONE_SEED)
DECISION_RUNG = 0  # the ledger's rung its decisions are recorded under


def seed_of(point: Point, seed_key: str) -> str:
    values = [o.split("=", 1)[1] for o in point.overrides if override_key(o) == seed_key and "=" in o]
    return values[-1] if values else ""


def first_seed(members: list[Point], seed_key: str) -> list[Point]:
    """The cell's jobs on its first seed (in launch order): the ones every value runs."""
    seed = seed_of(members[0], seed_key)
    return [p for p in members if seed_of(p, seed_key) == seed]


def on_other_seeds(members: list[Point], seed_key: str, kept: list[str]) -> list[Point]:
    """The cell's jobs that run once the first seed has chosen `kept`."""
    first = set(first_seed(members, seed_key))
    return [p for p in members if p not in first and p.value in kept]


def unlaunched(sweep_dir: Path, sweeper: Any, jobs: list[list[str]]) -> dict[tuple[str, ...], str]:
    """Per job a one_seed sweep decided never to run (a losing value's other seeds): why, in one line.
    Empty for any other sweeper, and for cells not decided yet; xrobust-status counts these jobs as stopped."""
    if sweeper is None or sweeper.get("rule") != ONE_SEED:
        return {}
    key, seed_key = str(sweeper.get("key", "optim.lr_scale")), str(sweeper.get("seed_key", "seed"))
    ledger = Ledger(Path(sweep_dir) / LEDGER_FILE)
    found = {}
    for members in by_cell(points(jobs, key, seed_key)).values():
        first = first_seed(members, seed_key)
        entry = ledger.rungs.get(str(DECISION_RUNG), {}).get(members[0].cell)
        if not entry or entry.get("rule") != ONE_SEED or not entry.get("kept"):
            continue
        chosen, seed = entry["kept"][0], seed_of(first[0], seed_key)
        why = f"not run: the one_seed rule chose {key}={chosen} on seed {seed}"
        best = entry.get("candidates", {}).get(chosen)
        why += f" (dev-en {100 * best:.1f})" if isinstance(best, int | float) else ""
        for point in members:
            if point not in first and point.value not in entry["kept"]:
                found[point.overrides] = why
    return found
