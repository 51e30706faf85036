"""Transfer gap against alignment (issue #32): one point per target language and setting (English accuracy minus
the language's, against its parallel retrieval accuracy, both means over seeds), and their Pearson and Spearman
correlation across the points with a bootstrap interval over test items.

Each resample draws item ids with replacement (report/bootstrap.py's resample_counts) once for the whole task:
the test sets are parallel, so an item keeps its translations and is drawn alike for every model. Per resample,
every language's accuracy (predictions.tsv) and retrieval (alignment.tsv `hit`) are recomputed on the drawn items
with the seeds held fixed, then the correlation. The point estimate is the correlation of the per-language means
(results.json), which the resamples reproduce when no item is redrawn.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from xrobust.errors import XrobustError
from xrobust.report.bootstrap import CHUNK_ELEMENTS, Estimate, percentile_interval, resample_counts
from xrobust.report.diagnostics_read import ALIGNMENT, ALIGNMENT_FILE, Diagnosed
from xrobust.report.diagnostics_tables import groups, languages_of, transfer_gaps
from xrobust.report.identity import setting_text

# Retrieval from alignment.tsv may differ from results.json's by rounding, never by a count.
RETRIEVAL_TOLERANCE = 0.05
MIN_POINTS = 3


@dataclass(frozen=True)
class GapPoint:
    """One language of one setting: gap in accuracy points (English minus it) and retrieval accuracy in %."""

    setting: dict[str, str]
    language: str
    gap: float
    retrieval: float


@dataclass(frozen=True)
class Correlation:
    """A task's points and their correlations (None: too few points); note says why an interval is missing."""

    task: str
    stage: str
    layers: dict[str, int]
    points: list[GapPoint]
    pearson: Estimate | None
    spearman: Estimate | None
    note: str = ""


def pearson_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson's r of each row pair (NaN where a row is constant)."""
    xc, yc = x - x.mean(axis=1, keepdims=True), y - y.mean(axis=1, keepdims=True)
    scale = np.sqrt((xc**2).sum(axis=1) * (yc**2).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(scale > 0, (xc * yc).sum(axis=1) / np.where(scale > 0, scale, 1.0), np.nan)


def average_ranks(values: np.ndarray) -> np.ndarray:
    """Ranks 1..n of a vector, ties given their average rank (as Spearman's rho takes them)."""
    order = np.argsort(values, kind="stable")
    ranks = np.empty(len(values))
    ranks[order] = np.arange(1, len(values) + 1)
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    return (np.bincount(inverse, weights=ranks) / counts)[inverse]


def spearman_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Spearman's rho of each row pair; values equal to 1e-6 points tie (two gaps of one item count, computed
    from different accuracies, differ in their last bits)."""
    rank = lambda rows: np.apply_along_axis(average_ranks, 1, np.round(rows, 6))  # noqa: E731
    return pearson_rows(rank(x), rank(y))


def _seed_mean(per_seed: list[dict[int, float]]) -> tuple[np.ndarray, np.ndarray]:
    """(ids every seed has, sorted; the seeds' mean value per id)."""
    ids = sorted(set.intersection(*(set(values) for values in per_seed)))
    return np.array(ids, dtype=np.int64), np.array([np.mean([values[i] for values in per_seed]) for i in ids])


def _point(runs: list[Diagnosed], stage: str, layer: int | None, lang: str) -> GapPoint:
    retrieval = [float(run.alignment(stage, run.layer(layer), lang)["retrieval"]) for run in runs]
    return GapPoint(runs[0].job.labels, lang, transfer_gaps(runs, [lang])[lang], float(np.mean(retrieval)))


def _item_vectors(runs: list[Diagnosed], stage: str, layer: int | None, langs: list[str]):
    """{("acc", lang) and ("hit", lang): (ids, seed-mean in %)}, English accuracy included; None: a run has no
    alignment.tsv. Refuses retrieval from alignment.tsv that disagrees with results.json."""
    hits = [run.hits(stage, run.layer(layer)) for run in runs]
    if any(found is None for found in hits):
        return None
    predictions = [run.job.predictions() for run in runs]
    vectors = {}
    for lang in [runs[0].job.source_language, *langs]:
        vectors[("acc", lang)] = _seed_mean([{i: 100.0 * c for i, (_, c) in p[lang].items()} for p in predictions])
    for lang in langs:
        for run, found in zip(runs, hits, strict=True):
            if not found.get(lang):
                raise XrobustError(f"{run.job.folder / ALIGNMENT_FILE}: no {stage} rows for {lang}")
            mean = 100 * np.mean(list(found[lang].values()))
            recorded = float(run.alignment(stage, run.layer(layer), lang)["retrieval"])
            if abs(mean - recorded) > RETRIEVAL_TOLERANCE:
                raise XrobustError(
                    f"{run.job.folder / ALIGNMENT_FILE}: {stage} {lang} retrieval {mean:.2f}% differs from "
                    f"results.json's {recorded:.2f}%"
                )
        vectors[("hit", lang)] = _seed_mean([{i: 100.0 * h for i, h in found[lang].items()} for found in hits])
    return vectors


def _draws(components: list[dict], n_boot: int, seed: int) -> list[dict[tuple, np.ndarray]]:
    """Per setting, n_boot replicates of each component's mean, items drawn jointly across all settings."""
    universe = np.unique(np.concatenate([ids for vectors in components for ids, _ in vectors.values()]))
    rng = np.random.default_rng(seed)
    out = [{key: np.empty(n_boot) for key in vectors} for vectors in components]
    step = max(1, CHUNK_ELEMENTS // len(universe))
    for start in range(0, n_boot, step):
        stop = min(n_boot, start + step)
        weights = resample_counts(rng, stop - start, len(universe))
        for vectors, draws in zip(components, out, strict=True):
            for key, (ids, values) in vectors.items():
                picked = weights[:, np.searchsorted(universe, ids)]
                total = picked.sum(axis=1)
                mean = (picked @ values) / np.where(total > 0, total, 1.0)
                draws[key][start:stop] = np.where(total > 0, mean, values.mean())
    return out


def correlations(
    found: list[Diagnosed],
    stage: str,
    layer: int | None,
    n_boot: int,
    seed: int,
    level: float,
    baseline: str = "none",
    per_setting: bool = False,
) -> list[Correlation]:
    """Per task: the gap-vs-retrieval points of every setting with an alignment read-out, and the correlations.
    per_setting: one correlation per setting (its languages only) instead, so that a difference between two models
    (one aligns and transfers better on every language) does not make the correlation across languages."""
    by_task: dict[str, list[tuple[dict, list[Diagnosed]]]] = {}
    for task, setting, runs in groups(found, ALIGNMENT, baseline):
        key = f"{task}: {setting_text(setting)}" if per_setting else task
        by_task.setdefault(key, []).append((setting, runs))
    out = []
    for task, settings in by_task.items():
        points, components, langs_of = [], [], []
        for _, runs in settings:
            langs = languages_of(runs, lambda run, lang: lang in run.value(ALIGNMENT, stage))
            points += [_point(runs, stage, layer, lang) for lang in langs]
            components.append(_item_vectors(runs, stage, layer, langs))
            langs_of.append(langs)
        layers = {setting_text(setting): runs[0].layer(layer) for setting, runs in settings}
        if len(points) < MIN_POINTS:
            note = f"fewer than {MIN_POINTS} points: no correlation"
            out.append(Correlation(task, stage, layers, points, None, None, note))
            continue
        x, y = np.array([p.retrieval for p in points]), np.array([p.gap for p in points])
        constant = next((name for name, values in (("gap", y), ("retrieval", x)) if np.ptp(values) == 0), None)
        if constant is not None:  # a majority-class model: its gap is 0 in every language
            note = f"every point has the same {constant}: no correlation"
            out.append(Correlation(task, stage, layers, points, None, None, note))
            continue
        pearson, spearman = pearson_rows(x[None], y[None])[0], spearman_rows(x[None], y[None])[0]
        if any(vectors is None for vectors in components):
            note = f"no interval: a job has no {ALIGNMENT_FILE}"
            estimates = [Estimate(float(r), float("nan"), float("nan")) for r in (pearson, spearman)]
            out.append(Correlation(task, stage, layers, points, *estimates, note))
            continue
        draws = _draws(components, n_boot, seed)
        xs, ys = [], []
        for (_, runs), langs, replicate in zip(settings, langs_of, draws, strict=True):
            source = runs[0].job.source_language
            for lang in langs:
                xs.append(replicate[("hit", lang)])
                ys.append(replicate[("acc", source)] - replicate[("acc", lang)])
        xs, ys = np.stack(xs, axis=1), np.stack(ys, axis=1)
        estimates = []
        for value, replicates in ((pearson, pearson_rows(xs, ys)), (spearman, spearman_rows(xs, ys))):
            finite = replicates[np.isfinite(replicates)]
            low, high = percentile_interval(finite, level) if len(finite) else (float("nan"), float("nan"))
            estimates.append(Estimate(float(value), low, high))
        out.append(Correlation(task, stage, layers, points, *estimates))
    return out
