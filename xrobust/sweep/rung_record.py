"""What a halving sweep (hydra/sweeper=halving) leaves in a job folder, and how the report and xrobust-status read it.

A rung job runs with the overrides `rung_overrides` adds: the RungStop callback (xrobust/sweep/rung.py) under
callbacks.rung_stop, so its results.json config says which epoch it stopped after, and every checkpoint kept, so a
job the sweeper keeps resumes from its last.ckpt. After each rung the sweeper writes its decision into the folder's
rung.json: "continued" (the job runs on, its results.json is replaced by the longer run's) or "stopped" (the job's
results are those of its first epochs: never a finished run, never a candidate of `--select-on dev-en`).
Under `rule: one_seed` (xrobust/sweep/one_seed.py) the first seed's jobs run to the end without a rung stop, so
rung.json ("rule": "one_seed"; "stopped": no other seed runs at this value) only records the choice: their results
are finished runs, and the report, choosing on the seeds every candidate ran, chooses on that seed too.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from xrobust.atomic import atomic_write_text

RUNG_FILE = "rung.json"
RESULTS_FILE = "results.json"  # xrobust.run.results.RESULTS_FILE, named here to keep this module light for Hydra
RUNG_KEY = "callbacks.rung_stop"
RUNG_TARGET = "xrobust.sweep.rung.RungStop"
STOPPED, CONTINUED = "stopped", "continued"


def rung_overrides(epochs: int) -> list[str]:
    """What the sweeper appends to a job's overrides to stop it after `epochs` epochs, resumable."""
    return [f"+{RUNG_KEY}._target_={RUNG_TARGET}", f"+{RUNG_KEY}.epochs={epochs}", "checkpoint.keep_after_success=all"]


def point_overrides(overrides: list[str]) -> list[str]:
    """A job's overrides less the rung's: the sweep point it belongs to, as a plain multirun would name it."""
    added = len(rung_overrides(1))
    if len(overrides) >= added and overrides[-added].startswith(f"+{RUNG_KEY}._target_="):
        return list(overrides[:-added])
    return list(overrides)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None


def rung_of(folder: Path) -> dict[str, Any] | None:
    """None when the folder's results.json (if any) is a run to its end; else the rung it stopped at: `epochs`, and
    the sweeper's decision and scores from rung.json once it has decided (`decision` None before)."""
    results = _read_json(Path(folder) / RESULTS_FILE)
    config = results.get("config") if isinstance(results, dict) else None
    callbacks = config.get("callbacks") if isinstance(config, dict) else None
    stop = callbacks.get("rung_stop") if isinstance(callbacks, dict) else None
    if not isinstance(stop, dict):
        return None
    record = _read_json(Path(folder) / RUNG_FILE)
    record = record if isinstance(record, dict) and record.get("epochs") == stop.get("epochs") else {}
    return {"decision": None, **record, "epochs": stop.get("epochs")}


def without_rung_keys(flat: dict[str, str]) -> dict[str, str]:
    """A flattened config less the rung stop's keys: what a rung's run shares with the same run to its end."""
    return {key: value for key, value in flat.items() if not key.startswith(RUNG_KEY + ".")}


def stopped(folder: Path) -> dict[str, Any] | None:
    """The rung record of a job the sweeper stopped for good, else None."""
    rung = rung_of(folder)
    return rung if rung is not None and rung["decision"] == STOPPED else None


def describe(rung: dict[str, Any]) -> str:
    """One line: where the sweeper stopped a job and on what scores."""
    text = f"by the halving sweeper after epoch {rung['epochs']} (rung {rung.get('rung', '?')})"
    mean, kept = rung.get("mean_dev_acc"), rung.get("kept")
    if mean is not None and kept:
        best = rung.get("candidates", {}).get(kept[0])
        text += f": {rung.get('key')}={rung.get('value')} mean dev-en {100 * mean:.1f}"
        text += f", kept {', '.join(kept)}" + (f" ({100 * best:.1f})" if best is not None else "")
    return text


def write_decision(folder: Path, record: dict[str, Any]) -> None:
    atomic_write_text(Path(folder) / RUNG_FILE, json.dumps(record, indent=2) + "\n")
