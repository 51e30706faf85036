"""Task-group scores, as XTREME-R scores a category: the mean over the group's tasks of each task's mean
headline metric (accuracy, or its kind's first, named in the table), per model, noise and seed, twice: over every
language with the source (the XTREME / XTREME-R convention, comparable with the literature) and over the target
languages only (zero-shot transfer).

`GroupScoreCallback` is a Hydra callback (conf/task_group/*.yaml) that writes group_scores.json in the sweep
folder when the multirun ends; `xrobust-report` prints the same table for any sweep with grouped jobs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback

from xrobust.errors import XrobustError
from xrobust.report.collect import Job, collect
from xrobust.report.formatting import markdown_table
from xrobust.report.identity import setting_text
from xrobust.run.run_result import HEADLINE

GROUP_SCORES_FILE = "group_scores.json"


def target_mean(job: Job) -> float:
    targets = [acc for lang, acc in job.accuracy.items() if lang != job.source_language]
    if not targets:
        raise XrobustError(f"{job.folder}: no target-language accuracy to score")
    return sum(targets) / len(targets)


def all_language_mean(job: Job) -> float:
    return sum(job.accuracy.values()) / len(job.accuracy)


def group_scores(jobs: list[Job]) -> list[dict[str, Any]]:
    """One row per (group, model, noise, other settings, seed); a setting that misses a task of its group says which."""
    settings: dict[tuple, dict[str, Job]] = {}
    members: dict[str, list[str]] = {}
    for job in jobs:
        if job.task_group is None:
            continue
        name = job.task_group["name"]
        members.setdefault(name, job.task_group["tasks"])
        key = (name, job.model, job.noise, setting_text(job.setting), job.seed)
        settings.setdefault(key, {})[job.task] = job
    rows = []
    for (name, model, noise, setting, seed), by_task in sorted(settings.items()):
        tasks = members[name]
        means = {task: target_mean(by_task[task]) for task in tasks if task in by_task}
        all_means = {task: all_language_mean(by_task[task]) for task in tasks if task in by_task}
        missing = [task for task in tasks if task not in by_task]
        rows.append(
            {
                "group": name,
                "model": model,
                "noise": noise,
                "setting": setting,
                "seed": seed,
                "tasks": means,
                "tasks_all_languages": all_means,
                "missing": missing,
                "score": sum(means.values()) / len(means) if not missing else None,
                "score_all_languages": sum(all_means.values()) / len(all_means) if not missing else None,
            }
        )
    return rows


def group_markdown(rows: list[dict[str, Any]], metrics: dict[str, str] | None = None) -> str:
    """Rows model x noise x seed, columns each task's target mean and the group score; `metrics` names each task's
    headline metric (accuracy where it names none)."""
    out = []
    for group in sorted({row["group"] for row in rows}):
        mine = [row for row in rows if row["group"] == group]
        tasks = sorted({task for row in mine for task in row["tasks"]} | {t for row in mine for t in row["missing"]})
        header = ["model", "noise", "seed"]
        header += [f"{task} {what}" for what in ("all", "targets") for task in tasks]
        header += ["group score (all languages)", "group score (targets)"]
        body = []
        for row in mine:
            cells = [
                f"{100 * row[field][t]:.1f}" if t in row[field] else "missing"
                for field in ("tasks_all_languages", "tasks")
                for t in tasks
            ]
            scores = [
                f"{100 * row[field]:.1f}" if row[field] is not None else "incomplete"
                for field in ("score_all_languages", "score")
            ]
            noise = ", ".join(part for part in (row["noise"], row["setting"]) if part)
            body.append([row["model"], noise, str(row["seed"]), *cells, *scores])
        named = {task: (metrics or {}).get(task, HEADLINE) for task in tasks}
        unit = (
            f"{named[tasks[0]]} %"
            if len(set(named.values())) == 1
            else "% of " + ", ".join(f"{task} {metric}" for task, metric in named.items())
        )
        out.append(
            f"Task group {group} ({unit}): each task's mean over all its languages, source included (the "
            "XTREME / XTREME-R convention), and over its target languages only; the group scores average them:\n"
        )
        out.append(markdown_table(header, body, ["l", "l", "r", *["r"] * (2 * len(tasks) + 2)]))
    return "\n".join(out)


def write_group_scores(sweep: Path) -> Path | None:
    """group_scores.json (and its table on stdout) for the grouped jobs below `sweep`; None when there are none."""
    jobs = collect(sweep)
    rows = group_scores(jobs)
    if not rows:
        return None
    path = Path(sweep) / GROUP_SCORES_FILE
    path.write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    print(group_markdown(rows, {job.task: job.metric for job in jobs}))
    print(f"group scores: {path}")
    return path


class GroupScoreCallback(Callback):
    """Score the group once every job of the multirun has finished."""

    def on_multirun_end(self, config, **kwargs: Any) -> None:
        write_group_scores(Path(config.hydra.sweep.dir))
