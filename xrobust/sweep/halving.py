"""Successive halving over one swept key (the learning rate) per cell: the rule hydra/sweeper=halving applies.

A cell is a sweep point less the halved key and the seed (task, model, noise, ...): the unit
`xrobust-report --select-on dev-en` chooses a learning rate for. Rung k runs every value still in the cell, on
every seed, for first x eta^k epochs of the full run; the values are ranked by the mean over seeds of each run's
best English dev accuracy so far (ties: the first in sorted order, as the report breaks them), and the best
ceil(n / eta) go on. Rungs end when one value is left or the next rung would reach trainer.max_epochs; the values
left then run to the end. Each decision is kept in the sweep folder's halving.json, so running the sweep again
reads finished rungs back instead of running them.
"""

from __future__ import annotations

import json
import logging
import math
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xrobust.atomic import atomic_write_text
from xrobust.errors import XrobustError

LEDGER_FILE = "halving.json"
log = logging.getLogger("xrobust")


@dataclass(frozen=True)
class Point:
    """One job of the grid: its overrides, its cell (the overrides less the halved key and the seed), its value."""

    overrides: tuple[str, ...]
    cell: str
    value: str


def override_key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def points(jobs: list[list[str]], key: str, seed_key: str) -> list[Point]:
    """The grid's jobs as points; a job that does not set `key` is a cell of its own value ("")."""
    found = []
    for job in jobs:
        values = [o.split("=", 1)[1] for o in job if override_key(o) == key and "=" in o]
        cell = [o for o in job if override_key(o) not in (key, seed_key)]
        found.append(Point(tuple(job), " ".join(cell) or "(no overrides)", values[-1] if values else ""))
    return found


def by_cell(grid: list[Point]) -> dict[str, list[Point]]:
    cells: dict[str, list[Point]] = defaultdict(list)
    for point in grid:
        cells[point.cell].append(point)
    return dict(cells)


def value_key(value: str) -> tuple:
    """Numbers in numeric order before text (xrobust.report.pairing.value_key: the report's tie order)."""
    try:
        return (0, float(value), value)
    except ValueError:
        return (1, 0.0, value)


def rung_epochs(rung: int, first: int, eta: int) -> int:
    return first * eta**rung


def check_rule(rung_epochs_first: Any, eta: Any, rule: Any = "halving") -> None:
    """One line naming the sweeper key that is out of range."""
    if rule not in ("halving", "one_seed"):
        raise XrobustError(f"invalid config: hydra.sweeper.rule={rule!r}: must be one of halving, one_seed")
    for name, value, least in (("rung_epochs", rung_epochs_first, 1), ("eta", eta, 2)):
        if not isinstance(value, int) or isinstance(value, bool) or value < least:
            raise XrobustError(f"invalid config: hydra.sweeper.{name}={value!r}: must be an integer >= {least}")


def decide(scores: dict[Point, float], eta: int) -> dict[str, Any]:
    """The rung's decision for one cell: each value's mean score over its seeds, and the values kept."""
    runs: dict[str, list[float]] = defaultdict(list)
    for point, score in scores.items():
        runs[point.value].append(score)
    means = {value: sum(s) / len(s) for value, s in runs.items()}
    order = sorted(means, key=lambda value: (-means[value], value_key(value)))
    return {"candidates": means, "kept": order[: math.ceil(len(order) / eta)]}


class Ledger:
    """halving.json: per rung and cell, the epochs, the jobs it ranked, their means and the values kept."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            data = {}
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise XrobustError(f"{path}: not readable ({err}); move it away to run every rung again") from None
        self.rungs: dict[str, dict[str, Any]] = data.get("rungs", {}) if isinstance(data, dict) else {}

    @staticmethod
    def _members(cell: list[Point]) -> list[list[str]]:
        return sorted(list(p.overrides) for p in cell)

    def kept(
        self, rung: int, cell: list[Point], epochs: int | None, eta: int | None, rule: str = "halving"
    ) -> list[str] | None:
        """The values a finished rung kept in this cell, if it ranked these same jobs under the same rule
        (`rule`: halving, or one_seed's choice on the first seed, xrobust/sweep/one_seed.py)."""
        entry = self.rungs.get(str(rung), {}).get(cell[0].cell)
        if not entry or (entry.get("rule", "halving"), entry.get("epochs"), entry.get("eta"), entry.get("jobs")) != (
            rule,
            epochs,
            eta,
            self._members(cell),
        ):
            return None
        return list(entry["kept"])

    def record(
        self,
        rung: int,
        cell: list[Point],
        epochs: int | None,
        eta: int | None,
        decision: dict[str, Any],
        rule: str = "halving",
    ) -> None:
        entry = {"epochs": epochs, "eta": eta, "jobs": self._members(cell), **decision}
        entry = {"rule": rule, **entry} if rule != "halving" else entry
        self.rungs.setdefault(str(rung), {})[cell[0].cell] = entry

    def save(self) -> None:
        atomic_write_text(self.path, json.dumps({"rungs": self.rungs}, indent=2) + "\n")


def cut_checkpoints(folder: Path, keep: str) -> None:
    """A stopped job's checkpoints, kept whole while it might go on, cut down to its own
    checkpoint.keep_after_success (the selected weights by default), as a finished job cuts its own."""
    from xrobust.lightning.checkpoint_io import keep_after_success, read_checkpoint

    checkpoints = Path(folder) / "checkpoints"
    last = checkpoints / "last.ckpt"
    if keep == "all" or not last.exists():
        return
    try:
        states = read_checkpoint(last).get("callbacks") or {}
    except XrobustError as err:  # a checkpoint holding more than plain data: left whole, said in one line
        log.warning("%s: checkpoints not cut down (%s)", checkpoints, err)
        return
    best = next(
        (s["best_model_path"] for s in states.values() if isinstance(s, dict) and s.get("best_model_path")), None
    )
    if best is not None:
        keep_after_success(checkpoints, best, keep)
