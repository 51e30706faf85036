"""The coverage simulation behind the report's intervals (docs/report-statistics.md): how often the 95% interval
of the target-mean difference covers the truth, and how often a row shows a bold cell when no cell differs,
for 1, 2, 3, 5 and 8 seeds, with the earlier seed stage (resampling the k seeds) against the current one
(a t(k - 1) seed part beside the item bootstrap).

A row is 8 parallel languages (English and 7 targets) x 3,000 items, true difference 0: the larger model is
right where the smaller is wrong on 10% of the items and the reverse on 10%; translations share an item's
contrast (each language keeps it with probability 0.8); each seed redraws 15% of a language's item contrasts
(runs of two seeds disagree on items) and shifts the difference by a part common to all languages (s.d. 1
point) and one per language (s.d. 0.5 points). Bold: Holm over the row's 9
cells (8 languages and the target mean), adjusted p < 0.05; the current report shows no bold below MIN_SEEDS.

    python -m benchmarks.report_coverage --reps 200 --n-boot 1000
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from xrobust.report.bootstrap import (
    MIN_SEEDS,
    TARGET_MEAN,
    SetContrast,
    bootstrap_p,
    estimate,
    percentile_interval,
    two_stage_draws,
)
from xrobust.report.corrections import holm

LANGS = ["en", "de", "fr", "es", "ru", "zh", "ar", "hi"]
VALUES, PROBS = np.array([-1.0, 0.0, 1.0]), [0.1, 0.8, 0.1]  # mean 0: no true difference
ITEMS, SHARE, REDRAWN, SEED_SD, LANG_SEED_SD = 3000, 0.8, 0.15, 0.01, 0.005


def simulated_row(rng: np.random.Generator, seeds: int) -> dict[str, SetContrast]:
    """One size contrast: per language, a (seeds x items) array of signed correctness plus each seed's shift."""
    shared = rng.choice(VALUES, size=ITEMS, p=PROBS)
    common = rng.normal(0.0, SEED_SD, size=seeds)
    ids = np.arange(ITEMS)
    sets = {}
    for lang in LANGS:
        items = np.where(rng.random(ITEMS) < SHARE, shared, rng.choice(VALUES, size=ITEMS, p=PROBS))
        per_seed = np.where(
            rng.random((seeds, ITEMS)) < REDRAWN, rng.choice(VALUES, size=(seeds, ITEMS), p=PROBS), items
        )
        shifts = common + rng.normal(0.0, LANG_SEED_SD, size=seeds)
        sets[lang] = SetContrast.of(ids, per_seed + shifts[:, None])
    return sets


def earlier(sets: dict[str, SetContrast], n_boot: int, seed: int) -> tuple[tuple[float, float], dict[str, float]]:
    """The earlier interval: seeds resampled with replacement, then items (jointly across languages)."""
    draws = two_stage_draws(sets, n_boot, seed, joint=True, resample_seeds=True)
    draws[TARGET_MEAN] = np.mean([draws[lang] for lang in LANGS[1:]], axis=0)
    return percentile_interval(draws[TARGET_MEAN]), {name: bootstrap_p(d) for name, d in draws.items()}


def any_bold(p: dict[str, float]) -> bool:
    return bool(np.any(holm(list(p.values())) < 0.05))


def simulate(seeds: int, reps: int, n_boot: int) -> dict[str, float]:
    rng = np.random.default_rng(1000 + seeds)
    old_cover = new_cover = old_bold = new_bold = new_bold_raw = 0
    for rep in range(reps):
        sets = simulated_row(rng, seeds)
        (low, high), old_p = earlier(sets, n_boot, rep)
        estimates, new_p = estimate(sets, {TARGET_MEAN: LANGS[1:]}, n_boot, rep, joint=True)
        new = estimates[TARGET_MEAN]
        old_cover += low <= 0 <= high
        new_cover += new.low <= 0 <= new.high
        old_bold += any_bold(old_p)
        new_bold_raw += any_bold(new_p)
        new_bold += seeds >= MIN_SEEDS and any_bold(new_p)
    return {
        "old coverage": old_cover / reps,
        "new coverage": new_cover / reps,
        "old bold": old_bold / reps,
        "new bold (as shown)": new_bold / reps,
        "new bold (if shown at any k)": new_bold_raw / reps,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=200)
    parser.add_argument("--n-boot", type=int, default=1000)
    parser.add_argument("--seeds", default="1,2,3,5,8")
    args = parser.parse_args()
    start = time.perf_counter()
    rows = {int(k): simulate(int(k), args.reps, args.n_boot) for k in args.seeds.split(",")}
    columns = list(next(iter(rows.values())))
    print(f"{args.reps} rows per seed count, {args.n_boot} resamples, {time.perf_counter() - start:.0f} s\n")
    print("| seeds | " + " | ".join(columns) + " |")
    print("|---:|" + "---:|" * len(columns))
    for k, row in rows.items():
        print(f"| {k} | " + " | ".join(f"{100 * row[c]:.0f}%" for c in columns) + " |")


if __name__ == "__main__":
    main()
