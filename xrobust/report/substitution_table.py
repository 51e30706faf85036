"""The substitution table (issue #32): per task and setting, each language's accuracy with words replaced by
their neighbours beside its clean accuracy on the same items, mean over seeds, with item-bootstrap intervals.

The intervals resample test items (report/bootstrap.py's two_stage_draws with the seeds held fixed), jointly
across the parallel languages: an item and its translations are drawn together, so the target mean's interval
keeps their correlation. They come from substitution.tsv and predictions.tsv; without substitution.tsv the
table has the summary's means only.
"""

from __future__ import annotations

import numpy as np

from xrobust.report.bootstrap import SetContrast, percentile_interval, two_stage_draws
from xrobust.report.diagnostics_read import SUBSTITUTION, Diagnosed
from xrobust.report.diagnostics_tables import TARGET_MEAN, groups, languages_of, seconds_text
from xrobust.report.formatting import markdown_table
from xrobust.report.identity import setting_text
from xrobust.report.tables import seed_text

SUBSTITUTION_COLUMNS = [
    "task",
    "setting",
    "lang",
    "seeds",
    "items",
    "substituted_words",
    "clean_accuracy",
    "accuracy",
    "accuracy_low",
    "accuracy_high",
    "difference",
    "difference_low",
    "difference_high",
]


def item_sets(runs: list[Diagnosed], langs: list[str]) -> tuple[dict[str, SetContrast], dict[str, SetContrast]] | None:
    """({lang: substituted correctness}, {lang: substituted minus clean}), each seeds x items in percent, over
    the items every seed read under substitution (None: a run has no substitution.tsv)."""
    substituted = [run.substituted() for run in runs]
    if any(rows is None for rows in substituted):
        return None
    clean = [run.job.predictions() for run in runs]
    accuracy, difference = {}, {}
    for lang in langs:
        ids = sorted(
            set.intersection(
                *(set(rows.get(lang, {})) & set(c.get(lang, {})) for rows, c in zip(substituted, clean, strict=True))
            )
        )
        if not ids:
            continue
        noisy = np.array([[rows[lang][i] for i in ids] for rows in substituted], dtype=np.float64)
        plain = np.array([[c[lang][i][1] for i in ids] for c in clean], dtype=np.float64)
        accuracy[lang] = SetContrast.of(ids, 100 * noisy)
        difference[lang] = SetContrast.of(ids, 100 * (noisy - plain))
    return accuracy, difference


def intervals(
    sets: dict[str, SetContrast], targets: list[str], n_boot: int, seed: int, level: float
) -> dict[str, tuple[float, float]]:
    """Per language and the target mean: the percentile interval of the item bootstrap."""
    if not sets:
        return {}
    draws = two_stage_draws(sets, n_boot, seed, joint=True, resample_seeds=False)
    if all(lang in draws for lang in targets) and targets:
        draws[TARGET_MEAN] = np.mean([draws[lang] for lang in targets], axis=0)
    return {name: percentile_interval(values, level) for name, values in draws.items()}


def substitution_tables(
    found: list[Diagnosed], n_boot: int, seed: int, level: float, baseline: str = "none"
) -> tuple[str, list[dict]]:
    """(markdown, tidy rows): accuracy under substitution and clean, and their difference, in %, with intervals."""
    sections, tidy = [], []
    for task, setting, runs in groups(found, SUBSTITUTION, baseline):
        langs = languages_of(runs, lambda run, lang: lang in run.value(SUBSTITUTION, "per_language"), source=True)
        targets = [lang for lang in langs if lang != runs[0].job.source_language]
        seeds = ",".join(str(run.job.seed) for run in runs)
        means: dict[str, dict[str, float]] = {}
        for lang in langs:
            per_run = [run.value(SUBSTITUTION, "per_language", lang) for run in runs]
            means[lang] = {
                "items": float(np.mean([int(record["items"]) for record in per_run])),
                "substituted_words": 100 * float(np.mean([float(record["substituted_words"]) for record in per_run])),
                "clean_accuracy": float(np.mean([float(record["clean_accuracy"]) for record in per_run])),
                "accuracy": float(np.mean([float(record["accuracy"]) for record in per_run])),
            }
        if targets:
            means[TARGET_MEAN] = {
                key: float(np.mean([means[lang][key] for lang in targets])) for key in means[targets[0]]
            }
        for values in means.values():
            values["difference"] = values["accuracy"] - values["clean_accuracy"]
        sets = item_sets(runs, langs)
        accuracy_ci = intervals(sets[0], targets, n_boot, seed, level) if sets else {}
        difference_ci = intervals(sets[1], targets, n_boot, seed, level) if sets else {}
        body = []
        for lang, values in means.items():
            low, high = accuracy_ci.get(lang, (None, None))
            d_low, d_high = difference_ci.get(lang, (None, None))
            row = dict(task=task, setting=setting_text(setting), lang=lang, seeds=seeds) | values
            tidy.append(row | dict(accuracy_low=low, accuracy_high=high, difference_low=d_low, difference_high=d_high))
            body.append(
                [
                    lang,
                    f"{values['items']:.0f}",
                    f"{values['substituted_words']:.1f}",
                    f"{values['clean_accuracy']:.1f}",
                    f"{values['accuracy']:.1f}{_interval(low, high)}",
                    f"{values['difference']:+.1f}{_interval(d_low, d_high)}",
                ]
            )
        header = ["lang", "items", "words substituted %", "clean %", "substituted %", "difference (points)"]
        first = runs[0].readout(SUBSTITUTION)
        what = ", ".join(f"{key} {first[key]}" for key in ("rate", "source", "seed") if key in first)
        level_text = (
            f"{round(100 * level)}% item-bootstrap intervals over {n_boot} resamples"
            if sets
            else "no intervals: no substitution.tsv"
        )
        title = f"### {task}: {setting_text(setting)} ({seed_text(run.job.seed for run in runs)})"
        sections.append(
            f"{title}\n\n{markdown_table(header, body, ['l'] + ['r'] * (len(header) - 1))}\n\n"
            f"Substitution: {what}; {level_text}; {seconds_text(runs, SUBSTITUTION)}.\n"
        )
    if not sections:
        return "", tidy
    intro = (
        "## Accuracy under word substitution\n\nEach item's words replaced by neighbours at the recorded rate "
        "(from the source each table names: rs_da's synonym file or the model's embedding neighbours), against the "
        "clean accuracy on the same items; mean over seeds, intervals over test items drawn jointly across "
        "languages.\n\n"
    )
    return intro + "\n".join(sections), tidy


def _interval(low: float | None, high: float | None) -> str:
    return "" if low is None else f" [{low:.1f}, {high:.1f}]"
