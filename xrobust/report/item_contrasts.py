"""Item-level contrasts between settings of one task: signed sums of 0/1 correctness, item by item.

A contrast is a list of terms (setting, sign): larger minus smaller is [(larger, +1), (smaller, -1)]; the change of
that gap under noise adds the baseline noise's two settings with the opposite signs. Every job in a contrast must
hold the same test items with the same gold labels; otherwise the pairing means nothing and the report refuses,
naming the two prediction files.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from xrobust.errors import XrobustError
from xrobust.report.bootstrap import SetContrast
from xrobust.report.collect import Job, task_metric
from xrobust.report.item_rows import GENERALIZED, PERTURBED

# Parallel test sets: each set holds at least this share of the items of the union, and shared items carry the
# same gold label in at least this share (PAWS-X's translations were relabelled in a few items).
PARALLEL_SHARE = 0.9

Setting = tuple[str, ...]


@dataclass(frozen=True)
class Term:
    setting: Setting
    sign: int


def parallel_check(golds: dict[str, dict[int, int]]) -> tuple[bool, list[str]]:
    """Whether the sets look like translations of one set of items, and what the report must say about it.

    Parallel: on the ids each set shares with the first, the gold labels agree in at least PARALLEL_SHARE of the
    items (row-number ids of unrelated or shifted sets fail on the labels). A parallel set that lacks some items
    of the others is still drawn jointly, on the ids it holds, and named; sets that fail are drawn within each
    set, and the reason is given: never a silent fallback."""
    if len(golds) < 2:
        return True, []
    union = set().union(*golds.values())
    name, first = next(iter(golds.items()))
    notes = []
    for other, gold in golds.items():
        shared = gold.keys() & first.keys()
        agree = sum(gold[i] == first[i] for i in shared)
        if not shared or agree < PARALLEL_SHARE * len(shared):
            share = f"{100 * agree / len(shared):.0f}%" if shared else "no ids"
            return False, [
                f"test sets not parallel: {other} and {name} share {len(shared)} item ids whose gold labels agree "
                f"on {share} (translations agree on >= {100 * PARALLEL_SHARE:.0f}%), so items are drawn within "
                "each language and the target-mean interval ignores the correlation between them"
            ]
        if len(gold) < len(union):
            notes.append(
                f"{other} holds {len(gold)} of the {len(union)} parallel items: drawn jointly on the ids it holds"
            )
    return True, notes


class Grid:
    """The jobs of one task, indexed by (setting, seed); a setting is the job's label values in key order."""

    def __init__(self, task: str, jobs: list[Job]):
        self.task = task
        first = jobs[0]
        self.keys = list(first.labels)
        self.jobs = {(self.setting_of(job), job.seed): job for job in jobs}
        self.source = first.source_language
        self.languages = first.languages
        for job in jobs:
            if job.languages != self.languages or job.source_language != self.source:
                raise XrobustError(
                    f"{job.folder}: languages {job.languages} (source {job.source_language}) differ from "
                    f"{first.folder}'s {self.languages} (source {self.source}) for task {task}"
                )
        self.targets = [lang for lang in self.languages if lang != self.source]
        self.metric = task_metric(jobs)  # one headline metric, or refused: a difference never mixes two
        # What the item resampling had to say (sets not parallel, or missing items), for the report's notes.
        self.notes: list[str] = []
        self.settings = list(dict.fromkeys(setting for setting, _ in self.jobs))

    def setting_of(self, job: Job) -> Setting:
        labels = job.labels
        return tuple(labels[key] for key in self.keys)

    def labels(self, setting: Setting) -> dict[str, str]:
        return dict(zip(self.keys, setting, strict=True))

    def seeds(self, settings: Sequence[Setting]) -> list[int]:
        """Seeds for which every setting ran."""
        found = [{seed for (s, seed) in self.jobs if s == setting} for setting in settings]
        return sorted(set.intersection(*found)) if found else []

    def missing(self, settings: Sequence[Setting], measure: str) -> str | None:
        """None when every job of these settings holds the read-out's per-item predictions; else why not ('' when
        no job announces the read-out: nothing to say)."""
        jobs = [job for (s, _), job in self.jobs.items() if s in settings]
        announced = [job.has(measure) for job in jobs]
        if not any(announced):
            return ""
        if not all(announced):
            return f"not every run has the {measure} read-out, no interval for it"
        if measure == PERTURBED and not all(job.has_perturbed_column() for job in jobs):
            return "predictions.tsv has no perturbed column (runs before it was saved), no interval for it"
        if measure == GENERALIZED and not set.intersection(*(set(job.sets(measure)) for job in jobs)):
            return "predictions.tsv holds no mixed-pair items (runs before they were saved), no interval for it"
        return None

    def correct(self, settings: Sequence[Setting], seeds: list[int], measure: str):
        """(set names, {set: item ids}, {(setting, seed): {set: 0/1 vector}}, parallel): every job on the same
        items. The generalized read-out's sets are the mixed pairs every job holds."""
        keys = [(setting, seed) for setting in settings for seed in seeds]
        jobs = [self.jobs[key] for key in keys]
        reference = jobs[0]
        ref_sets = reference.sets(measure)
        if measure == GENERALIZED:
            shared = set.intersection(*(set(job.sets(measure)) for job in jobs))
            names = [name for name in ref_sets if name in shared]
        else:
            names = list(self.languages)
        ref_gold = {name: {item: value[0] for item, value in ref_sets[name].items()} for name in names}
        ids = {name: np.array(sorted(ref_gold[name])) for name in names}
        vectors = {}
        for key, job in zip(keys, jobs, strict=True):
            sets = job.sets(measure)
            per_set = {}
            for name in names:
                items = sets.get(name, {})
                if {item: value[0] for item, value in items.items()} != ref_gold[name]:
                    raise XrobustError(
                        f"{job.predictions_path}: the {name} test items (ids or gold labels) differ from "
                        f"{reference.predictions_path}; paired comparison needs the same test set"
                    )
                per_set[name] = np.array([items[item][1] for item in ids[name]], dtype=np.float64)
            vectors[key] = per_set
        parallel, notes = parallel_check(ref_gold)
        self.notes += [f"{self.task}: {note}" for note in notes if f"{self.task}: {note}" not in self.notes]
        return names, ids, vectors, parallel

    def contrast(self, terms: list[Term], seeds: list[int], measure: str):
        """({set: SetContrast}, {setting: {set: accuracy averaged over seeds}}, parallel)."""
        settings = list(dict.fromkeys(term.setting for term in terms))
        names, ids, correct, parallel = self.correct(settings, seeds, measure)
        sets = {
            name: SetContrast.of(
                ids[name],
                np.stack([sum(t.sign * correct[(t.setting, seed)][name] for t in terms) for seed in seeds]),
            )
            for name in names
        }
        accuracy = {
            setting: {name: float(np.mean([correct[(setting, s)][name].mean() for s in seeds])) for name in names}
            for setting in settings
        }
        return sets, accuracy, parallel
