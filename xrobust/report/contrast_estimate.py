"""One contrast of one task, estimated: per test set and on the mean over sets, the difference with its interval
and its raw and row-adjusted p-values.

Statistics (see bootstrap.py): over the seeds every setting ran, a t(k - 1) seed part beside a bootstrap of the
test items, drawn jointly across parallel test sets; percentile intervals; p-values adjusted across the cells
of the row (its sets and their means) by Holm (default) or Benjamini-Hochberg; optionally a paired sign-flip
permutation p-value per cell, adjusted the same way. Below MIN_SEEDS seeds a row has no p-values and no bold:
one seed says nothing about training randomness, two say too little.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from xrobust.report.bootstrap import ALL_MEAN, MIN_SEEDS, TARGET_MEAN, Estimate, estimate, sign_flip_p
from xrobust.report.corrections import HOLM, adjust
from xrobust.report.identity import NOISE
from xrobust.report.item_contrasts import Grid, Term
from xrobust.report.item_rows import GENERALIZED
from xrobust.report.sizes import ModelSize
from xrobust.run.run_result import HEADLINE

SIZE = "size"
NOISE_CHANGE = "noise_change"
CONTRAST = "contrast"
MIXED_MEAN = "mixed_mean"
JOINT, INDEPENDENT = "joint", "independent"


@dataclass(frozen=True)
class Options:
    n_boot: int = 2000
    seed: int = 0
    level: float = 0.95
    correction: str = HOLM
    # Resamples of the sign-flip permutation test; 0 = no permutation test.
    permutations: int = 0

    @property
    def alpha(self) -> float:
        return 1 - self.level


@dataclass
class Comparison:
    """`size`: first minus second model (larger minus smaller by default) in one setting of the other keys;
    `noise_change`: that gap in the setting minus the gap under the baseline noise; `contrast`: first minus
    second value of another axis (a noise, or a swept key). Dict keys: the test sets, then the mean column."""

    task: str
    measure: str
    kind: str
    axis: str
    first: str
    second: str
    condition: dict[str, str]
    baseline: str | None
    source_language: str
    languages: list[str]
    columns: list[str]
    seeds: list[int]
    n_items: dict[str, int]
    estimates: dict[str, Estimate]
    seed_std: dict[str, float | None]
    # None per cell below MIN_SEEDS seeds: significance not assessed.
    p: dict[str, float | None]
    p_adjusted: dict[str, float | None]
    resampling: str
    correction: str
    alpha: float
    p_perm: dict[str, float] | None = None
    p_perm_adjusted: dict[str, float] | None = None
    first_size: ModelSize | None = None
    second_size: ModelSize | None = None
    first_accuracy: dict[str, float] = field(default_factory=dict)
    second_accuracy: dict[str, float] = field(default_factory=dict)
    # The task's headline metric (Job.metric): what first_accuracy, second_accuracy and the differences are of.
    metric: str = HEADLINE

    @property
    def noise(self) -> str:
        return self.condition.get(NOISE, self.first)

    @property
    def larger(self) -> str:
        return self.first

    @property
    def smaller(self) -> str:
        return self.second

    @property
    def larger_params(self) -> int | None:
        return self.first_size.total if self.first_size else None

    @property
    def smaller_params(self) -> int | None:
        return self.second_size.total if self.second_size else None

    @property
    def larger_accuracy(self) -> dict[str, float]:
        return self.first_accuracy

    @property
    def smaller_accuracy(self) -> dict[str, float]:
        return self.second_accuracy

    @property
    def assessed(self) -> bool:
        """Whether the row has enough seeds for significance (MIN_SEEDS)."""
        return len(self.seeds) >= MIN_SEEDS

    def significant(self, column: str) -> bool:
        """Bold: enough seeds, and the row-adjusted p-value is below 1 - level."""
        adjusted = self.p_adjusted[column]
        return adjusted is not None and adjusted < self.alpha

    def n_items_of(self, column: str) -> int:
        if column == TARGET_MEAN:
            return sum(self.n_items[s] for s in self.languages if s != self.source_language)
        if column in (MIXED_MEAN, ALL_MEAN):
            return sum(self.n_items.values())
        return self.n_items[column]


def _with_means(values: dict[str, float], means: dict[str, list[str]]) -> dict[str, float]:
    return {**values, **{col: float(np.mean([values[s] for s in members])) for col, members in means.items()}}


def estimate_contrast(grid: Grid, terms: list[Term], seeds: list[int], measure: str, options: Options, **fields):
    """The Comparison of `terms` over `seeds` (fields: task-independent descriptors: kind, axis, first, ...)."""
    sets, accuracy, parallel = grid.contrast(terms, seeds, measure)
    if measure == GENERALIZED:
        means = {MIXED_MEAN: list(sets)}
        columns = [MIXED_MEAN]
    else:
        means = {TARGET_MEAN: [lang for lang in grid.targets if lang in sets], ALL_MEAN: list(sets)}
        columns = [*sets, TARGET_MEAN, ALL_MEAN]
    estimates, p = estimate(sets, means, options.n_boot, options.seed, options.level, joint=parallel)
    assessed = len(seeds) >= MIN_SEEDS
    p = {col: p[col] if assessed else None for col in columns}
    per_seed = [_with_means({n: float(c.values[i].mean()) for n, c in sets.items()}, means) for i in range(len(seeds))]
    seed_std = {
        col: float(np.std([row[col] for row in per_seed], ddof=1)) if len(seeds) > 1 else None
        for col in [*sets, *means]
    }
    perm = perm_adjusted = None
    if options.permutations:
        found = sign_flip_p(sets, means, options.permutations, options.seed, joint=parallel)
        perm = {col: found[col] for col in columns}
        perm_adjusted = adjust(perm, options.correction)
    first_accuracy = second_accuracy = {}
    if len(terms) == 2:
        first_accuracy = _with_means(accuracy[terms[0].setting], means)
        second_accuracy = _with_means(accuracy[terms[1].setting], means)
    return Comparison(
        task=grid.task,
        measure=measure,
        source_language=grid.source,
        languages=list(sets),
        columns=columns,
        seeds=seeds,
        n_items={name: len(c.ids) for name, c in sets.items()},
        estimates=estimates,
        seed_std=seed_std,
        p=p,
        p_adjusted=adjust(p, options.correction) if assessed else p,
        resampling=JOINT if parallel and len(sets) > 1 else INDEPENDENT,
        correction=options.correction,
        alpha=options.alpha,
        p_perm=perm,
        p_perm_adjusted=perm_adjusted,
        first_accuracy=first_accuracy,
        second_accuracy=second_accuracy,
        metric=grid.metric,
        **fields,
    )
