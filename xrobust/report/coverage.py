"""Which requested jobs the report has no results for: a sweep where most jobs failed must not read as complete.

In a sweep folder (multirun.yaml) the expected jobs come from xrobust-status; elsewhere, folders holding a
failed.json but no results.json are the failed jobs. A cell is a job's overrides less its seed: seeds are
replicates, so a cell with some seeds finished is reported (the others named), one with none is a gap.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from xrobust.run.results import RESULTS_FILE
from xrobust.status import FAILED_FILE, sweep_status

SEED_KEY = "seed"


@dataclass
class Coverage:
    """One line per job without results, and the requested cells that have no finished job at all."""

    unfinished: list[str] = field(default_factory=list)
    empty_cells: list[str] = field(default_factory=list)


def coverage(root: Path) -> Coverage:
    root = Path(root)
    if not (root / "multirun.yaml").is_file():
        failed = sorted(p.parent for p in root.rglob(FAILED_FILE) if not (p.parent / RESULTS_FILE).is_file())
        return Coverage([f"job {folder} failed (its {FAILED_FILE} says why)" for folder in failed])
    jobs, _ = sweep_status(root)
    found = Coverage()
    cells: dict[str, bool] = {}
    for job in jobs:
        cell = " ".join(o for o in job.overrides if o.split("=", 1)[0].lstrip("+~") != SEED_KEY) or "(no overrides)"
        # A learning rate the halving sweeper stopped is accounted for: selection never takes it (selection.py).
        cells[cell] = cells.get(cell, False) or job.state in ("finished", "stopped")
        if job.state != "finished":
            where = job.folder.name if job.folder is not None else " ".join(job.overrides)
            state = "missing (never started)" if job.folder is None else job.state
            found.unfinished.append(f"job {where} {state}" + (f": {job.detail}" if job.detail else ""))
    found.empty_cells = [cell for cell, finished in cells.items() if not finished]
    return found
