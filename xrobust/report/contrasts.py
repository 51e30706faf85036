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
from xrobust.report.collect import Job
from xrobust.report.item_rows import GENERALIZED, PERTURBED

# Parallel test sets: each set holds at least this share of the items of the union, and shared items carry the
# same gold label in at least this share (PAWS-X's translations were relabelled in a few items).
PARALLEL_SHARE = 0.9

Setting = tuple[str, ...]


@dataclass(frozen=True)
class Term:
    setting: Setting
    sign: int


def is_parallel(golds: dict[str, dict[int, int]]) -> bool:
    """Whether the sets look like translations of one set of items: mostly the same ids, mostly the same gold
    labels on them. Row-number ids of unrelated sets of equal size fail on the labels."""
    if len(golds) < 2:
        return True
    union = set().union(*golds.values())
    first = next(iter(golds.values()))
    for gold in golds.values():
        shared = gold.keys() & first.keys()
        if len(gold) < PARALLEL_SHARE * len(union) or not shared:
            return False
        if sum(gold[i] == first[i] for i in shared) < PARALLEL_SHARE * len(shared):
            return False
    return True


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
        return names, ids, vectors, is_parallel(ref_gold)

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
