"""One set of seeds per task for every table of a report: results.md, the difference tables and the figures
average the same runs, so a row of one and a contrast of the other never disagree because one setting ran a seed
more.

The seeds kept are those every setting of the task ran (a setting: model, noise and every other label key); the
runs of other seeds are left out, each named in a note. When no seed is common to every setting, nothing is left
out and the note says that each row lists its own seeds.
"""

from __future__ import annotations

from collections import defaultdict

from xrobust.report.collect import Job
from xrobust.report.identity import setting_text


def common_seeds(jobs: list[Job]) -> tuple[list[Job], list[str]]:
    """The jobs of each task's common seeds, and one note per task that loses runs (or has no common seed)."""
    by_task: dict[str, list[Job]] = defaultdict(list)
    for job in jobs:
        by_task[job.task].append(job)
    kept, notes = [], []
    for task in sorted(by_task):
        mine = by_task[task]
        seeds_of: dict[tuple, set[int]] = defaultdict(set)
        for job in mine:
            seeds_of[tuple(job.labels.items())].add(job.seed)
        shared = set.intersection(*seeds_of.values())
        if not shared:
            kept += mine
            notes.append(f"{task}: no seed ran in every setting; each row lists its own seeds")
            continue
        left_out = [job for job in mine if job.seed not in shared]
        kept += [job for job in mine if job.seed in shared]
        if left_out:
            runs = "; ".join(f"{setting_text(job.labels)} seed {job.seed}" for job in left_out)
            notes.append(
                f"{task}: every table uses seeds {','.join(map(str, sorted(shared)))}, the seeds every setting ran; "
                f"left out: {runs}"
            )
    return sorted(kept, key=lambda job: job.rel_folder), notes
