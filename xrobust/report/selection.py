"""Per-size hyper-parameter selection on the source language (`xrobust-report --select-on dev-en`).

A sweep that tries several settings per model (e.g. optim.lr_scale=0.5,1,2) compares sizes fairly only once each
size uses its own best setting. Of the jobs that share task, model, noise and seed (and the compared key, if
--compare names one), the report keeps the one whose selected checkpoint had the best English dev accuracy
(results.json model_selection.best_val_acc, the same number that chose its epoch) and drops the others before any
table is made. Target-language accuracy is never read. Ties go to the first setting in sorted order.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from xrobust.errors import XrobustError
from xrobust.report.collect import Job
from xrobust.report.compare import value_key
from xrobust.report.formatting import markdown_table, pct
from xrobust.report.identity import MODEL, NOISE, setting_text
from xrobust.results import RESULTS_FILE

# What --select-on accepts: the source-language set each job selected its checkpoint on (dev-en, or the held-out
# slice of train-en where a task has no English dev split).
SELECT_ON = ("dev-en",)


@dataclass
class Choice:
    """One (task, model, noise, seed) cell: the setting kept and every candidate's English dev accuracy."""

    task: str
    fixed: dict[str, str]
    seed: int
    chosen: dict[str, str]
    candidates: list[tuple[dict[str, str], float]]

    @property
    def dev_accuracy(self) -> float:
        return dict((setting_text(s), acc) for s, acc in self.candidates)[setting_text(self.chosen)]


def select(jobs: list[Job], keep_apart: str = MODEL) -> tuple[list[Job], list[Choice]]:
    """The jobs with the best English dev accuracy per cell, their setting keys (but keep_apart) dropped, and the
    choices made. keep_apart is the --compare axis: when it is a setting key, its values are not selected over."""
    for job in jobs:
        if job.selection_accuracy is None:
            raise XrobustError(
                f"{job.folder / RESULTS_FILE}: no model_selection.best_val_acc (no English dev set was used), so "
                "--select-on dev-en cannot choose between its settings"
            )
    cells: dict[tuple, list[Job]] = {}
    for job in jobs:
        fixed = {key: value for key, value in job.labels.items() if key in (MODEL, NOISE, keep_apart)}
        cells.setdefault((job.task, tuple(fixed.items()), job.seed), []).append(job)
    kept, choices = [], []
    for (task, fixed, seed), cell in sorted(cells.items(), key=lambda item: item[0]):
        candidates = sorted(cell, key=lambda job: _setting_order(job, keep_apart))
        best = max(candidates, key=lambda job: job.selection_accuracy)  # max keeps the first of equals
        choices.append(
            Choice(
                task=task,
                fixed=dict(fixed),
                seed=seed,
                chosen=_over(best, keep_apart),
                candidates=[(_over(job, keep_apart), job.selection_accuracy) for job in candidates],
            )
        )
        kept.append(replace(best, setting={k: v for k, v in best.setting.items() if k == keep_apart}))
    return sorted(kept, key=lambda job: job.rel_folder), choices


def _over(job: Job, keep_apart: str) -> dict[str, str]:
    return {key: value for key, value in job.setting.items() if key != keep_apart}


def _setting_order(job: Job, keep_apart: str) -> tuple:
    return tuple(value_key(value) for value in _over(job, keep_apart).values())


def selection_markdown(choices: list[Choice], select_on: str) -> str:
    """Which setting each (task, model, noise, seed) used, and the English dev accuracy of every candidate."""
    rows = []
    for choice in choices:
        others = "; ".join(f"{setting_text(s) or '-'}: {pct(acc)}" for s, acc in choice.candidates)
        rows.append(
            [
                choice.task,
                setting_text(choice.fixed),
                str(choice.seed),
                setting_text(choice.chosen) or "-",
                pct(choice.dev_accuracy),
                others,
            ]
        )
    header = ["task", "setting", "seed", "selected", f"{select_on} acc", f"candidates ({select_on} acc)"]
    intro = (
        f"## Settings selected on {select_on}\n\nPer task, model, noise and seed, the setting whose selected "
        f"checkpoint scored best on {select_on} (results.json model_selection.best_val_acc); every other table "
        "uses only these jobs. No target-language accuracy is read to choose.\n\n"
    )
    return intro + markdown_table(header, rows, ["l", "l", "r", "l", "r", "l"]) + "\n"
