"""`xrobust-status SWEEP`: where a sweep stands, one line per job, without opening 40 folders.

The expected jobs come from the sweep's multirun.yaml, expanded as Hydra's basic sweeper expands them; a job's
folder is the one whose .hydra/overrides.yaml lists the same overrides. Exit status 0 only when every job finished.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

from hydra._internal.config_loader_impl import ConfigLoaderImpl
from hydra._internal.utils import create_config_search_path
from hydra.core.override_parser.types import Quote, QuotedString
from omegaconf import OmegaConf

from xrobust.config.checks import CONF_DIR
from xrobust.errors import XrobustError
from xrobust.lightning.checkpoint_io import checkpoint_step, is_torn
from xrobust.run.results import RESULTS_FILE, completed_results
from xrobust.sweep.expand import sweep_jobs
from xrobust.sweep.one_seed import unlaunched
from xrobust.sweep.rung_record import STOPPED, describe, point_overrides, rung_of

FAILED_FILE = "failed.json"
# "corrupt": a results.json that does not parse (a disk filled up, a copy cut short); the job runs again. One that
# parses but is of a schema version this xrobust cannot read, or lacks a field, stops the status with one line.
# "stopped": a job hydra/sweeper=halving stopped after its first epochs for good (xrobust/sweep/rung_record.py), or
# one hydra/sweeper=one_seed never ran (a losing value's other seeds: xrobust/sweep/one_seed.py).
STATES = ("finished", "stopped", "resumable", "failed", "corrupt", "not started")
# Hydra overrides the completing command sets itself (the sweep folder, multirun mode).
OWN_HYDRA_KEYS = ("hydra.sweep.dir=", "hydra.mode=")
# A value Hydra's override grammar reads unquoted as the same string.
PLAIN_VALUE = re.compile(r"[A-Za-z0-9_./:+-]+")


@dataclass
class JobStatus:
    overrides: list[str]
    folder: Path | None
    state: str
    detail: str = ""


def expected_jobs(sweep_cfg) -> list[list[str]]:
    """Every job's overrides, in launch order: the sweeper's params, then the command line's (which win)."""
    given = OmegaConf.to_container(sweep_cfg.hydra.overrides.task, resolve=False)
    loader = ConfigLoaderImpl(config_search_path=create_config_search_path(f"file://{CONF_DIR}"))
    return sweep_jobs(sweep_cfg.hydra.sweeper.get("params"), given, loader)


def resume_point(path: Path) -> str:
    """The global step a checkpoint resumes at, read without running code from the file (a sweep folder may be
    writable by others): a checkpoint holding anything but tensors and plain values is named, not opened."""
    try:
        return f"step {checkpoint_step(path)}"
    except XrobustError as err:
        return f"a checkpoint that is not plain data: {err}"


def resume_checkpoint(folder: Path) -> Path | None:
    """The newest whole checkpoint `ckpt_path=last` would pick up, the job's own or its intermediate stage's."""
    for pattern in ("checkpoints", "stages/*/checkpoints"):
        found = [
            p
            for d in folder.glob(pattern)
            for p in d.glob("*.ckpt")
            if (p.name.startswith("last") or p.name == "on_exception.ckpt") and not is_torn(p)
        ]
        if found:
            return max(found, key=lambda p: p.stat().st_mtime)
    return None


def job_status(overrides: list[str], folder: Path | None) -> JobStatus:
    if folder is None:
        return JobStatus(overrides, None, "not started")
    rung = rung_of(folder)  # results.json of a halving rung: stopped for good, or the job goes on from its last.ckpt
    if rung is not None and rung["decision"] == STOPPED:
        return JobStatus(overrides, folder, "stopped", describe(rung))
    if rung is None and completed_results(folder) is not None:
        return JobStatus(overrides, folder, "finished")
    results = folder / RESULTS_FILE
    if rung is None and results.is_file():
        return JobStatus(overrides, folder, "corrupt", f"{results} is not a readable results file; the job runs again")
    failed = folder / FAILED_FILE
    if failed.is_file():
        try:
            record = json.loads(failed.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            return JobStatus(overrides, folder, "failed", f"{failed} is not readable: the job's log says why")
        step = f" at step {record['step']}" if record.get("step") is not None else ""
        return JobStatus(overrides, folder, "failed", f"exit {record.get('exit_status')}{step}: {record.get('error')}")
    checkpoint = resume_checkpoint(folder)
    if checkpoint is not None:
        return JobStatus(overrides, folder, "resumable", f"from {resume_point(checkpoint)} ({checkpoint.name})")
    return JobStatus(overrides, folder, "not started", "interrupted before its first checkpoint")


def sweep_status(sweep: Path) -> tuple[list[JobStatus], str]:
    """Every expected job's status, and the command that completes the sweep (finished jobs are skipped, interrupted
    ones resume, failed and missing ones run)."""
    config_file = sweep / "multirun.yaml"
    if not config_file.is_file():
        raise XrobustError(f"{sweep} is not a sweep folder: it has no multirun.yaml")
    cfg = OmegaConf.load(config_file)
    folders = {}
    for overrides_file in sweep.glob("*/.hydra/overrides.yaml"):
        overrides = point_overrides(OmegaConf.to_container(OmegaConf.load(overrides_file)))
        folders[tuple(overrides)] = overrides_file.parent.parent
    expected = expected_jobs(cfg)
    skipped = unlaunched(sweep, cfg.hydra.sweeper, expected)
    jobs = [
        JobStatus(o, None, "stopped", skipped[tuple(o)])
        if tuple(o) in skipped and tuple(o) not in folders
        else job_status(o, folders.get(tuple(o)))
        for o in expected
    ]
    given = OmegaConf.to_container(cfg.hydra.overrides, resolve=False)  # as typed: ${...} stays unresolved
    hydra_args = [o for o in given["hydra"] if not o.startswith(OWN_HYDRA_KEYS)]
    args = ["python", "-m", "xrobust.train", "-m", f"hydra.sweep.dir={hydra_value(str(sweep.resolve()))}", *hydra_args]
    return jobs, shlex.join([*args, *given["task"]])


def hydra_value(text: str) -> str:
    """`text` as a value of Hydra's override grammar: as is when plain, else quoted (spaces, non-ASCII letters and
    quotes included); shlex then quotes the whole override for the shell."""
    if PLAIN_VALUE.fullmatch(text):
        return text
    return QuotedString(text=text, quote=Quote.single).with_quotes()


def report(sweep: Path) -> tuple[str, bool]:
    """The printed status and whether every job finished."""
    jobs, command = sweep_status(sweep)
    lines = []
    for job in jobs:
        where = job.folder.name if job.folder is not None else " ".join(job.overrides)
        lines.append(f"{job.state:<12} {where}" + (f"  {job.detail}" if job.detail else ""))
    counts = {state: sum(job.state == state for job in jobs) for state in STATES}
    shown = {state: n for state, n in counts.items() if n or state not in ("corrupt", "stopped")}
    lines.append(f"{len(jobs)} jobs: " + ", ".join(f"{n} {state}" for state, n in shown.items()))
    done = counts["finished"] + counts["stopped"] == len(jobs)
    if not done:
        if counts["failed"]:
            lines.append("fix the cause of each failure first (its failed.json), then complete the sweep with:")
        else:
            lines.append("complete the sweep with:")
        lines.append(f"  {command}")
    return "\n".join(lines), done


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="xrobust-status", description=__doc__.splitlines()[0])
    parser.add_argument("sweep", type=Path, help="a sweep folder (multirun/<date>/<time>)")
    args = parser.parse_args(argv)
    try:
        text, done = report(args.sweep)
    except XrobustError as err:
        print(f"xrobust-status: error: {err}", file=sys.stderr)
        return 2
    print(text)
    return 0 if done else 1


if __name__ == "__main__":
    sys.exit(main())
