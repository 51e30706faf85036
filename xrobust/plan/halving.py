"""hydra/sweeper=halving planned: which jobs of each cell the rule stops, and after how many epochs.

The rule is xrobust/sweep/halving.py's: rung k runs every value still in a cell, on every seed, for rung_epochs x
eta^k epochs, and the best ceil(n / eta) values go on, while more than one is left and the rung ends before
trainer.max_epochs. Which values go on only the run can tell, but every value of a cell costs the same (the
learning rate changes no step's work), so the plan stops the last values in sorted order: its cost is the run's.
A stopped job trains, validates and tests its rung's epochs; a kept job costs its full run (its rungs are
prefixes of it, resumed from last.ckpt; their extra test passes are left out). Under `rule: one_seed`
(hydra/sweeper=one_seed, xrobust/sweep/one_seed.py) nothing stops early: every value runs to the end on each
cell's first seed, and only one value (the first in sorted order, at the same cost) on the others.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from hydra.utils import get_class
from omegaconf import DictConfig

from xrobust.errors import XrobustError
from xrobust.plan.options import argument
from xrobust.sweep.halving import by_cell, check_rule, override_key, points, rung_epochs, value_key
from xrobust.sweep.one_seed import ONE_SEED, first_seed, on_other_seeds

BASIC, HALVING = "BasicSweeper", "HalvingSweeper"


@dataclass(frozen=True)
class HalvingRule:
    key: str
    seed_key: str
    rung_epochs: int
    eta: int
    rule: str = "halving"


def halving_rule(sweeper: DictConfig) -> HalvingRule | None:
    """The halving sweeper's rule (None: Hydra's basic sweeper); one error line for any other sweeper."""
    target = str(sweeper._target_)
    if target.endswith(BASIC):
        return None
    if not target.endswith(HALVING):
        raise XrobustError(f"xrobust-plan -m plans Hydra's basic sweeper and hydra/sweeper=halving, not {target}")
    names, sweeper_class = ("key", "seed_key", "rung_epochs", "eta", "rule"), get_class(target)
    given = {name: sweeper[name] for name in names if name in sweeper}  # what the HalvingSweeper is called with
    key, seed_key, rung_epochs, eta, rule = (argument(given, name, sweeper_class) for name in names)
    check_rule(rung_epochs, eta, rule)
    return HalvingRule(str(key), str(seed_key), int(rung_epochs), int(eta), str(rule))


def launched_jobs(rule: HalvingRule, jobs: list[list[str]]) -> list[list[str]]:
    """The jobs the rule launches, in the grid's order: all of them under halving; under one_seed each cell's
    first seed, and on its other seeds the first value in sorted order (which one the run decides)."""
    if rule.rule != ONE_SEED:
        return jobs
    launched: set[tuple[str, ...]] = set()
    for members in by_cell(points(jobs, rule.key, rule.seed_key)).values():
        planned = [min((p.value for p in members), key=value_key)]
        launched |= {
            p.overrides for p in [*first_seed(members, rule.seed_key), *on_other_seeds(members, rule.seed_key, planned)]
        }
    return [job for job in jobs if tuple(job) in launched]


def planned_stops(rule: HalvingRule, jobs: list[list[str]], max_epochs: int | None) -> list[int | None]:
    """Per job, the epochs after which the rule stops it (None: it runs to the end). `max_epochs`: the sweep's
    trainer.max_epochs, unless a job's own override sets it."""
    stops: list[int | None] = [None] * len(jobs)
    if rule.rule == ONE_SEED:
        return stops
    index = {tuple(job): i for i, job in enumerate(jobs)}
    for members in by_cell(points(jobs, rule.key, rule.seed_key)).values():
        limit = _own_max_epochs(members[0].overrides, max_epochs)
        alive = sorted({p.value for p in members}, key=value_key)
        rung = 0
        while len(alive) > 1 and (limit is None or rung_epochs(rung, rule.rung_epochs, rule.eta) < limit):
            epochs = rung_epochs(rung, rule.rung_epochs, rule.eta)
            kept = alive[: math.ceil(len(alive) / rule.eta)]
            for point in members:
                if point.value in alive and point.value not in kept:
                    stops[index[point.overrides]] = epochs
            alive, rung = kept, rung + 1
    return stops


def _own_max_epochs(overrides: tuple[str, ...], default: int | None) -> int | None:
    for override in reversed(overrides):
        if override_key(override) == "trainer.max_epochs" and "=" in override:
            value = override.split("=", 1)[1]
            return None if value in ("null", "-1") else int(value)
    return default
