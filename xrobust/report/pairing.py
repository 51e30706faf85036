"""Pair the settings of each task along one axis and estimate every contrast (see contrast_estimate.py).

The axis (`--compare`) is `model` (default), `noise` or any key that labels the sweep's jobs (identity.py).
A row of a table holds one setting of the other keys, e.g. noise=rs_rp with noise.eps=0.5. Along `model`, pairs
are larger:smaller within a family by default, and a model against its model.base_model (mt0-xxl:mt5-xxl, the
same architecture trained further: sizes.py); each row is such a gap, and each row under a noise other
than the baseline also gets the change of that gap against the baseline noise's row with the same other keys.
Along `noise`, each noise is contrasted with the baseline noise; along another key, each value with the first
(in sorted order). `--pairs FIRST:SECOND,...` names the pairs instead (model names, noise names or key values).
Only seeds that every setting of a contrast ran are used.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from collections.abc import Sequence

from xrobust.errors import XrobustError
from xrobust.report.collect import Job
from xrobust.report.contrast_estimate import CONTRAST, NOISE_CHANGE, SIZE, Comparison, Options, estimate_contrast
from xrobust.report.identity import MODEL, NOISE, setting_text
from xrobust.report.item_contrasts import Grid, Setting, Term
from xrobust.report.item_rows import ACCURACY
from xrobust.report.sizes import default_pairs, model_sizes

__all__ = ["CONTRAST", "NOISE_CHANGE", "SIZE", "Comparison", "compare", "noise_order", "sort_values"]


def noise_order(noises: Sequence[str], baseline: str) -> list[str]:
    """The baseline first, then the others alphabetically."""
    return sorted(set(noises), key=lambda name: (name != baseline, name))


def value_key(value: str) -> tuple:
    """Sort key of a config value's text: numbers in numeric order before text in alphabetical order."""
    try:
        return (0, float(value), value)
    except ValueError:
        return (1, 0.0, value)


def sort_values(values) -> list[str]:
    """Distinct values, numbers in numeric order before text in alphabetical order."""
    return sorted(set(values), key=value_key)


def axis_keys(keys: list[str], axis: str) -> list[str]:
    if axis == NOISE:
        return [key for key in keys if key == NOISE or key.startswith(NOISE + ".")]
    if axis not in keys:
        raise XrobustError(
            f"--compare {axis}: not a key that tells this sweep's jobs apart (those are: {', '.join(keys)})"
        )
    return [axis]


class _Task:
    """One task's grid split into the compared axis and the conditions (the other keys)."""

    def __init__(self, grid: Grid, axis: str, baseline: str):
        self.grid, self.axis, self.baseline = grid, axis, baseline
        self.axis_keys = axis_keys(grid.keys, axis)
        self.condition_keys = [key for key in grid.keys if key not in self.axis_keys]
        by_condition: dict[tuple, list[Setting]] = defaultdict(list)
        for setting in grid.settings:
            by_condition[self.condition_of(setting)].append(setting)
        noise_at = self.condition_keys.index(NOISE) if NOISE in self.condition_keys else None
        self.conditions = sorted(
            by_condition,
            key=lambda c: (c[noise_at] != baseline, *c) if noise_at is not None else c,
        )
        self.by_condition = by_condition

    def condition_of(self, setting: Setting) -> tuple:
        labels = self.grid.labels(setting)
        return tuple(labels[key] for key in self.condition_keys)

    def value_of(self, setting: Setting) -> str:
        """The setting's position on the axis: a model or key value, or a noise with its parameters."""
        labels = self.grid.labels(setting)
        return setting_text(labels, self.axis_keys) if self.axis == NOISE else labels[self.axis]

    def condition_labels(self, condition: tuple) -> dict[str, str]:
        return dict(zip(self.condition_keys, condition, strict=True))

    def setting(self, condition: tuple, value: str) -> Setting | None:
        return next((s for s in self.by_condition[condition] if self.matches(s, value)), None)

    def matches(self, setting: Setting, name: str) -> bool:
        labels = self.grid.labels(setting)
        return name in (self.value_of(setting), labels[self.axis_keys[0]])

    def baseline_condition(self, condition: tuple) -> tuple | None:
        """The condition with the baseline noise and the same non-noise keys (model axis)."""
        labels = self.condition_labels(condition)
        if labels.get(NOISE) == self.baseline:
            return None
        plain = {k: v for k, v in labels.items() if not (k == NOISE or k.startswith(NOISE + "."))}
        for other in self.conditions:
            found = self.condition_labels(other)
            if found.get(NOISE) == self.baseline and all(found[k] == v for k, v in plain.items()):
                return other
        return None


def _value_pairs(task: _Task, condition: tuple, chosen) -> list[tuple[str, str]]:
    """Pairs of axis values (first, second) within one condition, for the noise and key axes."""
    settings = task.by_condition[condition]
    if chosen is not None:
        return [(a, b) for a, b in chosen if task.setting(condition, a) and task.setting(condition, b)]
    if task.axis == NOISE:
        is_base = [task.grid.labels(s)[NOISE] == task.baseline for s in settings]
        base = [task.value_of(s) for s, b in zip(settings, is_base, strict=True) if b]
        others = sort_values(task.value_of(s) for s, b in zip(settings, is_base, strict=True) if not b)
        return [(value, b) for value in others for b in base]
    ordered = sort_values(task.value_of(s) for s in settings)
    return [(value, ordered[0]) for value in ordered[1:]]


def compare(
    jobs: list[Job],
    n_boot: int = 2000,
    seed: int = 0,
    baseline: str = "none",
    level: float = 0.95,
    axis: str = MODEL,
    pairs: list[tuple[str, str]] | None = None,
    measure: str = ACCURACY,
    options: Options | None = None,
) -> tuple[list[Comparison], list[str]]:
    """Every contrast the jobs allow along `axis`, and notes on what could not be compared."""
    options = options or Options(n_boot=n_boot, seed=seed, level=level)
    by_task: dict[str, list[Job]] = defaultdict(list)
    for job in jobs:
        by_task[job.task].append(job)
    comparisons: list[Comparison] = []
    notes: list[str] = []
    for name in sorted(by_task):
        task = _Task(Grid(name, by_task[name]), axis, baseline)
        if axis == MODEL:
            _model_axis(task, by_task[name], pairs, measure, options, comparisons, notes)
        else:
            for condition in task.conditions:
                for first, second in _value_pairs(task, condition, pairs):
                    _add(task, condition, first, second, CONTRAST, measure, options, comparisons, notes)
        notes += task.grid.notes
    notes = list(dict.fromkeys(notes))
    for note in notes:
        print(f"xrobust-report: note: {note}", file=sys.stderr)
    return comparisons, notes


def _model_axis(task: _Task, jobs: list[Job], chosen, measure: str, options: Options, comparisons, notes) -> None:
    sizes = {size.name: size for size in model_sizes(jobs)}
    if chosen is None:
        if len(sizes) < 2:
            notes.append(f"{task.grid.task}: only one model ({next(iter(sizes))}), no size comparison")
            return
        found, same_size = default_pairs(list(sizes.values()))
        notes += [f"{task.grid.task}: {note}" for note in same_size]
        model_pairs = [(a.name, b.name) for a, b in found]
    else:
        unknown = sorted({n for pair in chosen for n in pair} - set(sizes))
        if unknown:
            notes.append(f"{task.grid.task}: --pairs names {', '.join(unknown)}, not a model of this task")
        model_pairs = [(a, b) for a, b in chosen if a in sizes and b in sizes]
    if NOISE in task.condition_keys and not any(
        task.condition_labels(c).get(NOISE) == task.baseline for c in task.conditions
    ):
        notes.append(f"{task.grid.task}: no {task.baseline!r} runs, so no change of the size gap relative to it")
    for first, second in model_pairs:
        extra = {"first_size": sizes[first], "second_size": sizes[second]}
        for condition in task.conditions:
            _add(task, condition, first, second, SIZE, measure, options, comparisons, notes, **extra)
        for condition in task.conditions:
            base = task.baseline_condition(condition)
            if base is not None:
                _add(task, condition, first, second, NOISE_CHANGE, measure, options, comparisons, notes, base, **extra)


def _add(task, condition, first, second, kind, measure, options, comparisons, notes, base=None, **extra) -> None:
    """Estimate first minus second in `condition` (minus the same in `base`), or note why it cannot be."""
    here = setting_text(task.condition_labels(condition)) or "all"
    where = f"{task.grid.task}/{here}"
    terms = [Term(task.setting(condition, first), 1), Term(task.setting(condition, second), -1)]
    if base is not None:
        terms += [Term(task.setting(base, first), -1), Term(task.setting(base, second), 1)]
    settings = [term.setting for term in terms]
    if all(setting is None for setting in settings[:2]) or (base is not None and None in settings):
        return
    seeds = task.grid.seeds(settings) if None not in settings else []
    base_text = setting_text(task.condition_labels(base)) if base is not None else None
    if not seeds:
        what = ", no size comparison" if kind == SIZE else ""
        notes.append(
            f"{where}: no seed ran both {first} and {second}{what}"
            if base is None
            else f"{where}: no seed ran {first} and {second} under both {here} and {base_text}"
        )
        return
    reason = task.grid.missing(settings, measure)
    if reason is not None:
        if reason:
            notes.append(f"{where}: {reason}")
        return
    comparisons.append(
        estimate_contrast(
            task.grid,
            terms,
            seeds,
            measure,
            options,
            kind=kind,
            axis=task.axis,
            first=first,
            second=second,
            condition=task.condition_labels(condition),
            baseline=base_text,
            **extra,
        )
    )
