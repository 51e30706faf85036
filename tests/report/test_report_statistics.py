"""The report's statistics with known answers: interval coverage in simulations where translations share an item
effect (and seeds differ), Holm and Benjamini-Hochberg on textbook p-values, bootstrap and permutation p-values."""

from __future__ import annotations

import numpy as np
import pytest

from xrobust.report.bootstrap import (
    TARGET_MEAN,
    SetContrast,
    bootstrap_p,
    estimate,
    paired_bootstrap,
    percentile_interval,
    sign_flip_p,
    two_stage_draws,
)
from xrobust.report.corrections import adjust, benjamini_hochberg, holm

LANGS = ["en", "de", "fr", "es", "ru", "zh"]
# Per item, larger-minus-smaller correctness: -1, 0, +1 with these probabilities; the true difference is 0.10.
VALUES, PROBS = np.array([-1.0, 0.0, 1.0]), [0.15, 0.60, 0.25]
TRUE_DIFFERENCE = 0.10


def parallel_contrasts(rng: np.random.Generator, n_items: int, share: float = 0.8) -> dict[str, np.ndarray]:
    """Translations share the item effect: each language keeps the item's own contrast with probability
    `share`, else draws afresh (same marginal, so every language's expected difference is TRUE_DIFFERENCE)."""
    shared = rng.choice(VALUES, size=n_items, p=PROBS)
    return {
        lang: np.where(rng.random(n_items) < share, shared, rng.choice(VALUES, size=n_items, p=PROBS)) for lang in LANGS
    }


def covers(estimate_) -> bool:
    return estimate_.low <= TRUE_DIFFERENCE <= estimate_.high


def test_joint_item_resampling_covers_the_target_mean_where_per_language_resampling_does_not():
    """200 items x 6 languages, 200 repetitions: resampling item ids jointly across languages gives ~95%
    coverage of the true target-mean difference; resampling within each language (the old interval) ~69%."""
    rng = np.random.default_rng(2024)
    reps, old, new, widths = 200, 0, 0, []
    for rep in range(reps):
        contrasts = parallel_contrasts(rng, 200)
        within = paired_bootstrap(contrasts, LANGS[1:], n_boot=1000, seed=rep, joint=False)[TARGET_MEAN]
        joint = paired_bootstrap(contrasts, LANGS[1:], n_boot=1000, seed=rep, joint=True)[TARGET_MEAN]
        old += covers(within)
        new += covers(joint)
        widths.append((within.high - within.low) / (joint.high - joint.low))
    assert 0.90 <= new / reps <= 0.99, new / reps
    assert old / reps < 0.80, old / reps
    # Independent resampling treats 5 correlated languages as 5x the information: about half the width here.
    assert 0.4 < np.mean(widths) < 0.65


def test_two_stage_bootstrap_puts_seed_variance_inside_the_interval():
    """8 seeds, each shifting the difference (training randomness) by N(0, 0.15): the two-stage interval
    (seeds, then items, both jointly across languages) covers the expected difference ~92% of the time (a little
    under 95%: 8 seeds estimate their spread roughly); items alone on seed-averaged correctness ~70%."""
    rng = np.random.default_rng(7)
    reps, seeds, old, new = 200, 8, 0, 0
    ids = np.arange(200)
    for rep in range(reps):
        contrasts = parallel_contrasts(rng, len(ids))
        shifts = rng.normal(0.0, 0.15, size=seeds)
        sets = {lang: SetContrast.of(ids, c[None, :] + shifts[:, None]) for lang, c in contrasts.items()}
        estimates, _ = estimate(sets, {TARGET_MEAN: LANGS[1:]}, n_boot=1000, seed=rep, joint=True)
        averaged = {lang: s.values.mean(axis=0) for lang, s in sets.items()}
        old += covers(paired_bootstrap(averaged, LANGS[1:], n_boot=1000, seed=rep, joint=True)[TARGET_MEAN])
        new += covers(estimates[TARGET_MEAN])
    assert new / reps >= 0.87, new / reps
    assert old / reps < 0.80, old / reps


def test_three_seeds_get_an_interval_that_covers_where_resampling_the_seeds_does_not():
    """3 seeds whose training shifts the difference by N(0, 0.15), larger than the item noise: resampling the 3
    seeds (the earlier seed stage) covers the truth ~75% of the time; the t(2) seed part >= 90%."""
    rng = np.random.default_rng(11)
    reps, seeds, old, new = 150, 3, 0, 0
    ids = np.arange(200)
    for rep in range(reps):
        contrasts = parallel_contrasts(rng, len(ids))
        shifts = rng.normal(0.0, 0.15, size=seeds)
        sets = {lang: SetContrast.of(ids, c[None, :] + shifts[:, None]) for lang, c in contrasts.items()}
        estimates, _ = estimate(sets, {TARGET_MEAN: LANGS[1:]}, n_boot=500, seed=rep, joint=True)
        draws = two_stage_draws(sets, 500, rep, joint=True, resample_seeds=True)
        low, high = percentile_interval(np.mean([draws[lang] for lang in LANGS[1:]], axis=0))
        old += low <= TRUE_DIFFERENCE <= high
        new += covers(estimates[TARGET_MEAN])
    assert new / reps >= 0.90, new / reps
    assert old / reps < 0.85, old / reps


def test_one_seed_two_stage_equals_items_only():
    rng = np.random.default_rng(0)
    contrasts = parallel_contrasts(rng, 100)
    sets = {lang: SetContrast.of(np.arange(100), c) for lang, c in contrasts.items()}
    estimates, _ = estimate(sets, {TARGET_MEAN: LANGS[1:]}, n_boot=300, seed=5, joint=True)
    assert estimates == paired_bootstrap(contrasts, LANGS[1:], n_boot=300, seed=5, joint=True)


def test_holm_and_benjamini_hochberg_on_known_p_values():
    p = [0.01, 0.04, 0.03, 0.005]
    # Holm: sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 = 0.02, 0.03, 0.06, 0.04 -> monotone 0.06.
    assert holm(p) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    # BH: times 4/1, 4/2, 4/3, 4/4 = 0.02, 0.02, 0.04, 0.04, made monotone from the top.
    assert benjamini_hochberg(p) == pytest.approx([0.02, 0.04, 0.04, 0.02])
    # Capped at 1, order kept for ties, a single p-value unchanged.
    assert holm([0.5, 0.5, 0.9]) == pytest.approx([1.0, 1.0, 1.0])
    assert benjamini_hochberg([0.2]) == pytest.approx([0.2]) and holm([0.2]) == pytest.approx([0.2])
    # The textbook example of Benjamini & Hochberg (1995): 15 p-values, 4 rejected at FDR 0.05 (Holm: 3).
    bh_paper = [0.0001, 0.0004, 0.0019, 0.0095, 0.0201, 0.0278, 0.0298, 0.0344]
    bh_paper += [0.0459, 0.3240, 0.4262, 0.5719, 0.6528, 0.7590, 1.0000]
    assert int(np.sum(benjamini_hochberg(bh_paper) < 0.05)) == 4
    assert int(np.sum(holm(bh_paper) < 0.05)) == 3
    assert adjust({"de": 0.01, "fr": 0.04}, "none") == {"de": 0.01, "fr": 0.04}
    with pytest.raises(ValueError, match="unknown correction"):
        adjust({"de": 0.01}, "bonferroni-ish")


def test_bootstrap_p_value_agrees_with_the_percentile_interval():
    assert bootstrap_p(np.zeros(999)) == 1.0
    assert bootstrap_p(np.full(999, 0.1)) == pytest.approx(2 / 1000)
    draws = np.random.default_rng(0).normal(0.05, 0.02, size=4000)
    p = bootstrap_p(draws)
    assert p == pytest.approx(2 * np.mean(draws <= 0), abs=1e-3)
    assert (p < 0.05) == (np.quantile(draws, 0.025) > 0)


def test_sign_flip_permutation_p_values():
    ids = np.arange(300)
    clear = {"de": SetContrast.of(ids, np.where(ids < 60, 1.0, 0.0))}  # larger right on 60 more items
    null = {"de": SetContrast.of(ids, np.where(ids % 2 == 0, 1.0, -1.0))}  # as many wins as losses
    assert sign_flip_p(clear, {}, 999, seed=0, joint=True)["de"] == pytest.approx(1 / 1000)
    assert sign_flip_p(null, {}, 999, seed=0, joint=True)["de"] > 0.9
