"""Per-size learning-rate selection on the source language (`xrobust-report --select-on dev-en`).

A sweep that tries several learning rates per model (e.g. optim.lr_scale=0.5,1,2) compares sizes fairly only once
each size uses its own best one. The keys selected over are the learning-rate keys that label the sweep's jobs
(optim.lr, optim.lr_scale, ...) and those `--select-over` names; every other key (the model, the noise and its
method keys: noise.variant, noise.eps, noise.distribution, ...) stays a row of the tables, never chosen on dev
accuracy. Per cell (a task and every other key), the candidate with the best mean English dev accuracy over the
seeds every candidate ran (results.json model_selection.best_val_acc, the number that chose each run's epoch) is
kept for all its seeds: one choice per cell, not one per seed. Target-language accuracy is never read. Ties go
to the first candidate in sorted order. A learning rate that hydra/sweeper=halving stopped after its first epochs
(xrobust/sweep/rung_record.py) is never a candidate: each cell names its stopped runs and where they stopped.
The tables name the dev score by the task's headline metric (accuracy, or its kind's first), taken to be the one its
kind selects on.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from xrobust.errors import XrobustError
from xrobust.kinds.base import log_name
from xrobust.report.collect import Job, parse_results, task_metric
from xrobust.report.formatting import markdown_table, pct
from xrobust.report.identity import MISSING, MODEL, NOISE, setting_text
from xrobust.report.pairing import value_key
from xrobust.run.results import RESULTS_FILE
from xrobust.run.run_result import HEADLINE
from xrobust.sweep.rung_record import stopped

# What --select-on accepts: the source-language set each job selected its checkpoint on (dev-en, or the held-out
# slice of train-en where a task has no English dev split).
SELECT_ON = ("dev-en",)
# Label keys selected over by default: the learning rate, however the sweep sets it.
LEARNING_RATE_NAMES = ("lr", "lr_scale")


@dataclass
class Choice:
    """One cell (task and every key not selected over): the candidate kept, the seeds its mean dev accuracy is
    over, and every candidate's mean."""

    task: str
    fixed: dict[str, str]
    seeds: list[int]
    chosen: dict[str, str]
    candidates: list[tuple[dict[str, str], float]]
    # Per candidate the halving sweeper stopped: its setting, the epochs it ran, its runs, its mean dev-en at the rung.
    stopped: list[tuple[dict[str, str], int, int, float | None]] = field(default_factory=list)
    # The task's headline metric, what the dev scores are named by.
    metric: str = HEADLINE

    @property
    def dev_accuracy(self) -> float:
        return dict((setting_text(s), acc) for s, acc in self.candidates)[setting_text(self.chosen)]


def selected_keys(jobs: list[Job], select_over: list[str] | None = None, keep_apart: str = MODEL) -> list[str]:
    """The label keys chosen on dev accuracy: the learning-rate keys and those named (never keep_apart)."""
    labels = list(dict.fromkeys(key for job in jobs for key in job.setting))
    unknown = [key for key in select_over or [] if key not in labels]
    if unknown:
        raise XrobustError(
            f"--select-over {','.join(unknown)}: not a key that tells this sweep's jobs apart "
            f"(those are: {', '.join(labels) or 'none beside model and noise'})"
        )
    learning_rate = [key for key in labels if key.rsplit(".", 1)[-1] in LEARNING_RATE_NAMES]
    named = [key for key in select_over or [] if key not in learning_rate]
    return [key for key in [*learning_rate, *named] if key not in (MODEL, NOISE, keep_apart)]


def select(
    jobs: list[Job], keep_apart: str = MODEL, select_over: list[str] | None = None
) -> tuple[list[Job], list[Choice]]:
    """Per cell, the runs of the candidate with the best mean English dev accuracy, the keys selected over dropped
    from their labels; and the choices made."""
    for job in jobs:
        if job.selection_accuracy is None:
            raise XrobustError(
                f"{job.folder / RESULTS_FILE}: no model_selection.best_val_acc (no English dev set was used), so "
                "--select-on dev-en cannot choose between its settings"
            )
    over = selected_keys(jobs, select_over, keep_apart)
    halted = stopped_runs(jobs)
    cells: dict[tuple, dict[tuple, list[Job]]] = {}
    for job in jobs:
        fixed = tuple((key, value) for key, value in job.labels.items() if key not in over)
        candidate = tuple((key, job.setting[key]) for key in over if key in job.setting)
        cells.setdefault((job.task, fixed), {}).setdefault(candidate, []).append(job)
    kept, choices = [], []
    for (task, fixed), candidates in sorted(cells.items(), key=lambda item: item[0]):
        order = sorted(candidates, key=lambda c: tuple(value_key(value) for _, value in c))
        runs = [candidates[c] for c in order]
        shared = set.intersection(*({job.seed for job in mine} for mine in runs))
        means = [
            float(np.mean([j.selection_accuracy for j in mine if not shared or j.seed in shared])) for mine in runs
        ]
        best = int(np.argmax(means))  # argmax keeps the first of equals
        choices.append(
            Choice(
                task=task,
                fixed=dict(fixed),
                seeds=sorted(shared or {job.seed for mine in runs for job in mine}),
                chosen=dict(order[best]),
                candidates=[(dict(c), mean) for c, mean in zip(order, means, strict=True)],
                stopped=stopped_in_cell(halted, task, dict(fixed), over),
                metric=task_metric([job for mine in runs for job in mine]),
            )
        )
        kept += [replace(job, setting={k: v for k, v in job.setting.items() if k not in over}) for job in runs[best]]
    return sorted(kept, key=lambda job: job.rel_folder), choices


def stopped_runs(jobs: list[Job]) -> list[tuple[Job, dict]]:
    """The runs the halving sweeper stopped below the folder the jobs were collected from, with their rung."""
    roots = {Path(*job.folder.parts[: len(job.folder.parts) - len(Path(job.rel_folder).parts)]) for job in jobs}
    found = []
    for root in sorted(roots):
        for path in sorted(root.rglob(RESULTS_FILE)):
            rung = stopped(path.parent)
            if rung is not None:
                found.append((parse_results(path, root), rung))
    return found


def stopped_in_cell(halted: list[tuple[Job, dict]], task: str, fixed: dict[str, str], over: list[str]) -> list:
    """Per stopped candidate of one cell: its setting, epochs run, number of runs and mean dev-en at its rung."""
    grouped: dict[tuple, list[dict]] = {}
    for job, rung in halted:
        values = {MODEL: job.model, NOISE: job.noise}
        if job.task == task and all(values.get(k, job.flat_config.get(k, MISSING)) == v for k, v in fixed.items()):
            setting = tuple((key, job.flat_config.get(key, MISSING)) for key in over)
            grouped.setdefault((setting, rung["epochs"]), []).append(rung)
    return [(dict(s), epochs, len(r), r[0].get("mean_dev_acc")) for (s, epochs), r in sorted(grouped.items())]


def selection_markdown(choices: list[Choice], select_on: str) -> str:
    """Which candidate each cell used, and the mean English dev score of every candidate (named by the metric; by
    "score" where the tasks' metrics differ, each task's beside its name)."""
    metrics = list(dict.fromkeys(choice.metric for choice in choices)) or [HEADLINE]
    what = metrics[0] if len(metrics) == 1 else "score"
    short = log_name(metrics[0]) if len(metrics) == 1 else what
    rows = []
    for choice in choices:
        others = "; ".join(f"{setting_text(s) or '-'}: {pct(acc)}" for s, acc in choice.candidates)
        for setting, epochs, runs, mean in choice.stopped:
            at = f", {pct(mean)} then" if mean is not None else ""
            others += f"; {setting_text(setting)}: stopped after epoch {epochs} ({runs} runs{at})"
        rows.append(
            [
                choice.task if len(metrics) == 1 else f"{choice.task} ({choice.metric})",
                setting_text(choice.fixed),
                ",".join(map(str, choice.seeds)),
                setting_text(choice.chosen) or "-",
                pct(choice.dev_accuracy),
                others,
            ]
        )
    header = [
        "task",
        "setting",
        "seeds",
        "selected",
        f"mean {select_on} {short}",
        f"candidates (mean {select_on} {short})",
    ]
    intro = (
        f"## Learning rates selected on {select_on}\n\nPer task and setting (model, noise and every method key), "
        f"the learning rate (and any key --select-over names) whose selected checkpoints scored best on {select_on} "
        "on average over the seeds listed (results.json model_selection.best_val_acc), one choice for all seeds; "
        f"every other table uses only these runs. No target-language {what} is read to choose.\n\n"
    )
    halted = [(epochs, runs) for choice in choices for _, epochs, runs, _ in choice.stopped]
    if halted:
        where = ", ".join(
            f"{sum(r for e, r in halted if e == epochs)} after epoch {epochs}"
            for epochs in sorted(set(e for e, _ in halted))
        )
        intro += (
            f"The halving sweeper (hydra/sweeper=halving) stopped {sum(r for _, r in halted)} runs ({where}): never "
            f"candidates, each listed after its cell's candidates with its mean dev {what} at that epoch.\n\n"
        )
    return intro + markdown_table(header, rows, ["l", "l", "r", "l", "r", "l"]) + "\n"
