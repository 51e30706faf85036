"""One sweep point per run folder: a multirun job refuses a folder that another point of the sweep already uses.

Two jobs of a sweep share a folder when they differ only in a key that hydra.sweep.subdir does not name (a swept
optim.lr_scale, say); without this check the second would resume from the first's last.ckpt or overwrite its
results.json. Each job records its command-line overrides in OVERRIDES_FILE; a later job in the same folder that
sets one of those keys to another value is a different point, and the whole sweep stops (SweepError: its subdir
pattern is wrong for every point). Relaunching the same point (to complete a sweep, or with an added override
such as a longer budget) is allowed, as is anything in a single run.
"""

from __future__ import annotations

import json
from pathlib import Path

from xrobust.atomic import atomic_write_text
from xrobust.errors import SweepError
from xrobust.run.hashing import NOT_HASHED
from xrobust.run.results import RESULTS_FILE
from xrobust.sweep.rung_record import RUNG_KEY

OVERRIDES_FILE = "overrides.json"


def as_dict(overrides: list[str]) -> dict[str, str]:
    """{key: value} of Hydra override strings such as `optim.lr_scale=0.5` or `+foo=1`."""
    pairs = (item.split("=", 1) for item in overrides if "=" in item)
    return {key.lstrip("+~"): value for key, value in pairs}


def same_point(key: str) -> bool:
    """Keys whose value never makes another sweep point: what config_hash leaves out (checkpoint.*, logger, ...),
    and the rung a halving sweep stops a job at (its kept jobs relaunch without it, or with a later rung)."""
    return any(key == root or key.startswith(root + ".") for root in (*NOT_HASHED, RUNG_KEY))


def holds_a_run(run_dir: Path) -> bool:
    return (run_dir / RESULTS_FILE).is_file() or any(run_dir.glob("checkpoints/*"))


def claim(run_dir: Path, overrides: list[str], write: bool) -> None:
    """Refuse run_dir if a different sweep point ran there; otherwise record this one (rank 0 writes)."""
    mine = as_dict(overrides)
    marker = run_dir / OVERRIDES_FILE
    if marker.is_file() and holds_a_run(run_dir):
        theirs = as_dict(json.loads(marker.read_text(encoding="utf-8")))
        clash = sorted(key for key in mine.keys() & theirs.keys() if mine[key] != theirs[key] and not same_point(key))
        if clash:
            differ = ", ".join(f"{key}={theirs[key]} there, {mine[key]} here" for key in clash)
            raise SweepError(
                f"{run_dir} holds another point of the sweep ({differ}): two jobs map to one folder; name the "
                f"key(s) in hydra.sweep.subdir (e.g. ..._lr${{optim.lr_scale}}_...), or move the folder away"
            )
    if write:
        atomic_write_text(marker, json.dumps(sorted(overrides)) + "\n")
