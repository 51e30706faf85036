"""Resampling statistics for paired accuracy contrasts: an interval over test items and seeds, and a paired
sign-flip permutation test.

A contrast on one test set is a (seeds x items) array: per seed and item, a signed sum of 0/1 correctness
(larger-model correct minus smaller-model correct: -1, 0 or 1). Its statistic is the mean over seeds and items,
which is exactly the accuracy difference averaged over seeds. A mean column (the target mean) is the mean of
its sets' statistics, so every language keeps its weight.

Each replicate (estimate) is the sum of two independent parts. Items: the seed-averaged contrast with its items
drawn with replacement (multinomial counts), jointly across the sets of one block: parallel test sets
(translations sharing item ids) are one block, so an item and its translations stay together and the correlation
between languages is kept. Seeds: a multivariate t with k - 1 degrees of freedom scaled by the covariance of the
k per-seed differences over k, so a few seeds give the wide interval they warrant. Resampling the k seeds
instead (two_stage_draws with resample_seeds, the earlier method) shrinks their variance by (k - 1) / k and never
reaches past their min-max: 86-87% coverage at 2-3 seeds in benchmarks/report_coverage.py, 96-98% with the t part.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Weights held at once per set (bounded memory for XNLI-sized sets: 5010 items x 2000 resamples).
CHUNK_ELEMENTS = 2_000_000
TARGET_MEAN = "target_mean"
ALL_MEAN = "all_mean"
# Fewer seeds than this: no significance (the seed variance is not estimable, or at 2 seeds barely).
MIN_SEEDS = 3


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its percentile bootstrap interval."""

    value: float
    low: float
    high: float

    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0


@dataclass(frozen=True)
class SetContrast:
    """One test set's contrast: item ids (sorted, unique) and a (seeds x items) array of signed correctness."""

    ids: np.ndarray
    values: np.ndarray

    @classmethod
    def of(cls, ids, values) -> SetContrast:
        values = np.atleast_2d(np.asarray(values, dtype=np.float64))
        ids = np.asarray(ids)
        if values.shape[1] != len(ids) or len(ids) == 0:
            raise ValueError(f"{values.shape[1]} contrast values for {len(ids)} item ids")
        return cls(ids, values)

    @property
    def value(self) -> float:
        return float(self.values.mean())


def percentile_interval(draws: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    tail = (1 - level) / 2
    low, high = np.quantile(draws, [tail, 1 - tail])
    return float(low), float(high)


def bootstrap_p(draws: np.ndarray) -> float:
    """Two-sided percentile-bootstrap p-value for 'the statistic is 0': twice the smaller share of replicates on
    either side of 0 (ties count on both), with the +1 of a Monte Carlo p. It is about the smallest alpha at which
    the (1 - alpha) percentile interval excludes 0, so a p below alpha agrees with that interval."""
    below, above = int(np.sum(draws <= 0)), int(np.sum(draws >= 0))
    return min(1.0, 2 * (min(below, above) + 1) / (len(draws) + 1))


def resample_counts(rng: np.random.Generator, rows: int, size: int) -> np.ndarray:
    """(rows x size) counts: how often each of `size` units is drawn in each of `rows` draws with replacement."""
    picks = rng.integers(0, size, size=(rows, size)) + size * np.arange(rows)[:, None]
    return np.bincount(picks.ravel(), minlength=rows * size).reshape(rows, size).astype(np.float64)


def _blocks(sets: dict[str, SetContrast], joint: bool) -> list[tuple[np.ndarray, dict[str, np.ndarray]]]:
    """(universe of item ids, {set: positions of its items in the universe}) per block of jointly drawn sets."""
    if not joint:
        return [(c.ids, {name: np.arange(len(c.ids))}) for name, c in sets.items()]
    universe = np.unique(np.concatenate([c.ids for c in sets.values()]))
    return [(universe, {name: np.searchsorted(universe, c.ids) for name, c in sets.items()})]


def two_stage_draws(
    sets: dict[str, SetContrast], n_boot: int, seed: int, joint: bool, resample_seeds: bool = True
) -> dict[str, np.ndarray]:
    """n_boot replicates of every set's statistic; each replicate reweights seeds and items (see module doc).

    A function of its arguments alone: one generator seeded with `seed`, blocks and sets drawn in order.
    """
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    n_seeds = {c.values.shape[0] for c in sets.values()}
    if len(n_seeds) != 1:
        raise ValueError(f"every set needs the same seeds, found {sorted(n_seeds)}")
    (n_seeds,) = n_seeds
    rng = np.random.default_rng(seed)
    if resample_seeds and n_seeds > 1:
        seed_weights = resample_counts(rng, n_boot, n_seeds) / n_seeds
    else:
        seed_weights = np.full((n_boot, n_seeds), 1 / n_seeds)
    draws = {name: np.empty(n_boot) for name in sets}
    for universe, positions in _blocks(sets, joint):
        size = len(universe)
        step = max(1, CHUNK_ELEMENTS // size)
        for start in range(0, n_boot, step):
            stop = min(n_boot, start + step)
            item_weights = resample_counts(rng, stop - start, size)
            for name, pos in positions.items():
                values = sets[name].values
                weights = item_weights if len(pos) == size else item_weights[:, pos]
                total = weights.sum(axis=1)
                # Sum over seeds s and items i of seed weight x item weight x contrast, as one product.
                weighted = ((weights @ values.T) * seed_weights[start:stop]).sum(axis=1)
                fallback = seed_weights[start:stop] @ values.mean(axis=1)  # no item of this set drawn
                draws[name][start:stop] = np.where(total > 0, weighted / np.where(total > 0, total, 1.0), fallback)
    return draws


def sign_flip_p(sets: dict[str, SetContrast], means: dict[str, list[str]], n_perm: int, seed: int, joint: bool):
    """Paired permutation test per set and mean column: under 'the two sides are exchangeable on every item',
    each item's seed-averaged contrast keeps or flips its sign (jointly across parallel sets). Two-sided p with
    the +1 of a Monte Carlo p. It conditions on the trained models: seed variance is not in it."""
    rng = np.random.default_rng(seed)
    per_item = {name: c.values.mean(axis=0) for name, c in sets.items()}
    stats: dict[str, np.ndarray] = {}
    for universe, positions in _blocks(sets, joint):
        signs = rng.choice(np.array([-1.0, 1.0]), size=(n_perm, len(universe)))
        for name, pos in positions.items():
            stats[name] = (signs[:, pos] * per_item[name]).mean(axis=1)
    observed = {name: float(values.mean()) for name, values in per_item.items()}
    for column, members in means.items():
        stats[column] = np.mean([stats[name] for name in members], axis=0)
        observed[column] = float(np.mean([observed[name] for name in members]))
    tolerance = 1e-12
    return {
        column: (1 + int(np.sum(np.abs(stats[column]) >= abs(observed[column]) - tolerance))) / (n_perm + 1)
        for column in stats
    }


def seed_shifts(sets: dict[str, SetContrast], n_boot: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """n_boot draws of the seed part per set: a multivariate t(k - 1) with scale matrix the sample covariance of
    the k per-seed differences over k (zero with one seed: no seed variance to estimate)."""
    per_seed = np.stack([c.values.mean(axis=1) for c in sets.values()], axis=1)  # seeds x sets
    k = per_seed.shape[0]
    if k < 2:
        return {name: np.zeros(n_boot) for name in sets}
    centered = per_seed - per_seed.mean(axis=0)
    normal = rng.standard_normal((n_boot, k)) @ centered / np.sqrt(k * (k - 1))  # N(0, covariance / k)
    shifts = normal * np.sqrt((k - 1) / rng.chisquare(k - 1, size=n_boot))[:, None]
    return {name: shifts[:, i] for i, name in enumerate(sets)}


def estimate(
    sets: dict[str, SetContrast],
    means: dict[str, list[str]],
    n_boot: int = 2000,
    seed: int = 0,
    level: float = 0.95,
    joint: bool = True,
) -> tuple[dict[str, Estimate], dict[str, float]]:
    """Per set and per mean column (name -> member sets): the point estimate with its percentile interval, and
    the p-value of 'the difference is 0' (see bootstrap_p); replicates as the module doc says."""
    draws = two_stage_draws(sets, n_boot, seed, joint, resample_seeds=False)
    shifts = seed_shifts(sets, n_boot, np.random.default_rng([seed, 1]))
    draws = {name: draws[name] + shifts[name] for name in sets}
    values = {name: c.value for name, c in sets.items()}
    for column, members in means.items():
        draws[column] = np.mean([draws[name] for name in members], axis=0)
        values[column] = float(np.mean([values[name] for name in members]))
    estimates = {name: Estimate(values[name], *percentile_interval(draws[name], level)) for name in draws}
    return estimates, {name: bootstrap_p(d) for name, d in draws.items()}


def paired_bootstrap(
    contrasts: dict[str, np.ndarray],
    target_languages: list[str],
    n_boot: int = 2000,
    seed: int = 0,
    level: float = 0.95,
    joint: bool = False,
) -> dict[str, Estimate]:
    """One contrast per item and language (already averaged over seeds): per language and TARGET_MEAN, the mean
    and its interval. joint=False resamples each language on its own (right for unrelated test sets, too narrow
    for translations); joint=True keeps an item and its translations together (item i of every language)."""
    sets = {lang: SetContrast.of(np.arange(len(values)), values) for lang, values in contrasts.items()}
    targets = [lang for lang in target_languages if lang in contrasts]
    estimates, _ = estimate(sets, {TARGET_MEAN: targets} if targets else {}, n_boot, seed, level, joint)
    return estimates
