"""The alignment and certified-accuracy tables (issue #32): one per task and setting, a row per language, each
value the mean over the setting's seeds of results.json's `diagnostics`; tidy CSV rows beside them.

Alignment is read at one layer per model (--alignment-layer, else the last recorded), before fine-tuning
(pretrained) and as tested, beside each language's transfer gap (English accuracy minus its own, points), so the
gap and what may explain it sit on one row; certified accuracy at each recorded radius, with the share of items
abstained.
"""

from __future__ import annotations

import numpy as np

from xrobust.report.diagnostics_read import ALIGNMENT, CERTIFY, PRETRAINED, TESTED, Diagnosed
from xrobust.report.formatting import markdown_table
from xrobust.report.identity import setting_text
from xrobust.report.tables import by_task, ordered_settings, runs_of, seed_text

ALIGNMENT_MEASURES = ("retrieval", "cosine_pairs", "cosine_random", "cka")
ALIGNMENT_CSV_COLUMNS = ["task", "setting", "stage", "layer", "lang", "seeds", "transfer_gap", *ALIGNMENT_MEASURES]
CERTIFY_COLUMNS = ["task", "setting", "lang", "seeds", "items", "abstained", "radius", "certified_accuracy"]
TARGET_MEAN = "target mean"


def groups(found: list[Diagnosed], name: str, baseline: str) -> list[tuple[str, dict, list[Diagnosed]]]:
    """(task, setting, its runs by seed) for every setting whose jobs recorded read-out `name`."""
    out = []
    having = [item for item in found if item.readout(name) is not None]
    by_job = {id(item.job): item for item in having}
    for task, jobs in by_task([item.job for item in having]).items():
        for setting in ordered_settings(jobs, baseline):
            out.append((task, setting, [by_job[id(job)] for job in runs_of(jobs, setting)]))
    return out


def languages_of(runs: list[Diagnosed], present, source: bool = False) -> list[str]:
    """The languages in the job's test order that `present` says every run read (the source language only when
    asked: alignment has no English row)."""
    job = runs[0].job
    wanted = [lang for lang in job.languages if source or lang != job.source_language]
    return [lang for lang in wanted if all(present(run, lang) for run in runs)]


def seconds_text(runs: list[Diagnosed], name: str) -> str:
    seconds = [float(run.value(name, "seconds")) for run in runs]
    return f"read-out time {np.mean(seconds):.1f} s per job (results.json diagnostics.{name}.seconds)"


def with_target_mean(rows: dict[str, list[float]], source: str) -> dict[str, list[float]]:
    """The rows and their mean over the target languages (the source language's row left out of it)."""
    targets = [values for lang, values in rows.items() if lang != source]
    return rows | {TARGET_MEAN: list(np.mean(targets, axis=0))} if targets else rows


def transfer_gaps(runs: list[Diagnosed], langs: list[str]) -> dict[str, float]:
    """Each language's English accuracy minus its own (points), mean over the runs' seeds."""
    source = runs[0].job.source_language
    return {
        lang: float(np.mean([100 * (run.job.accuracy[source] - run.job.accuracy[lang]) for run in runs]))
        for lang in langs
    }


def alignment_tables(found: list[Diagnosed], layer: int | None, baseline: str = "none") -> tuple[str, list[dict]]:
    """(markdown, tidy rows): per task and setting, each language's retrieval accuracy (%), mean cosine of
    translation pairs and of random pairs, and linear CKA, pretrained and tested, after its transfer gap."""
    sections, tidy = [], []
    for task, setting, runs in groups(found, ALIGNMENT, baseline):
        chosen = runs[0].layer(layer)
        langs = languages_of(runs, lambda run, lang: lang in run.value(ALIGNMENT, TESTED))
        means = {
            stage: {
                lang: [
                    float(np.mean([run.alignment(stage, chosen, lang)[m] for run in runs])) for m in ALIGNMENT_MEASURES
                ]
                for lang in langs
            }
            for stage in (PRETRAINED, TESTED)
        }
        seeds = ",".join(str(run.job.seed) for run in runs)
        gaps = transfer_gaps(runs, langs)
        for stage, rows in means.items():
            for lang, values in rows.items():
                tidy.append(
                    dict(task=task, setting=setting_text(setting), stage=stage, layer=chosen, lang=lang, seeds=seeds)
                    | dict(transfer_gap=gaps[lang])
                    | dict(zip(ALIGNMENT_MEASURES, values, strict=True))
                )
        source = runs[0].job.source_language
        pre, tested = with_target_mean(means[PRETRAINED], source), with_target_mean(means[TESTED], source)
        gaps = with_target_mean({lang: [gap] for lang, gap in gaps.items()}, source)
        header = ["lang", "gap (points)"] + [
            f"{m} {s}" for m in ("retrieval %", "cos pairs", "cos random", "CKA") for s in ("pre", "tuned")
        ]
        body = []
        for lang in pre:
            cells = [f"{gaps[lang][0]:+.1f}"]
            for i in range(len(ALIGNMENT_MEASURES)):
                form = "{:.1f}" if i == 0 else "{:.3f}"
                cells += [form.format(pre[lang][i]), form.format(tested[lang][i])]
            body.append([lang, *cells])
        items = runs[0].value(ALIGNMENT, "items")
        sizes = sorted({int(n) for n in items.values()}) if isinstance(items, dict) else []
        chance = f"; chance retrieval {100 / sizes[0]:.2f}% at {sizes[0]} items" if len(sizes) == 1 else ""
        title = f"### {task}: {setting_text(setting)} ({seed_text(run.job.seed for run in runs)}), layer {chosen}"
        sections.append(
            f"{title}\n\n{markdown_table(header, body, ['l'] + ['r'] * (len(header) - 1))}\n\n"
            f"gap = {source} accuracy minus the language's, on the whole test set; pre = the model as loaded, "
            f"tuned = the tested weights{chance}; {seconds_text(runs, ALIGNMENT)}.\n"
        )
    if not sections:
        return "", tidy
    intro = (
        "## Cross-lingual alignment\n\nEach language's transfer gap beside its parallel retrieval accuracy (is the "
        "English translation the nearest English sentence), mean cosine of translation pairs and of random pairs, "
        "and linear CKA between English and each language (mean-pooled representations), mean over seeds.\n\n"
    )
    return intro + "\n".join(sections), tidy


def certify_tables(found: list[Diagnosed], baseline: str = "none") -> tuple[str, list[dict]]:
    """(markdown, tidy rows): per task and setting, each language's certified accuracy (%) at every radius and the
    share of items abstained (%), mean over seeds, and what the certificate covers."""
    sections, tidy = [], []
    for task, setting, runs in groups(found, CERTIFY, baseline):
        radii = [str(radius) for radius in runs[0].value(CERTIFY, "radii")]
        langs = languages_of(runs, lambda run, lang: lang in run.value(CERTIFY, "per_language"), source=True)
        seeds = ",".join(str(run.job.seed) for run in runs)
        rows: dict[str, list[float]] = {}
        for lang in langs:
            per_run = [run.value(CERTIFY, "per_language", lang) for run in runs]
            abstained = 100 * float(np.mean([float(record["abstained"]) for record in per_run]))
            certified = [float(np.mean([record["certified_accuracy"][r] for record in per_run])) for r in radii]
            items = int(np.mean([int(record["items"]) for record in per_run]))
            rows[lang] = [items, abstained, *certified]
            tidy += [
                dict(task=task, setting=setting_text(setting), lang=lang, seeds=seeds, items=items)
                | dict(abstained=abstained, radius=radius, certified_accuracy=value)
                for radius, value in zip(radii, certified, strict=True)
            ]
        rows = with_target_mean(rows, runs[0].job.source_language)
        header = ["lang", "items", "abstained %", *(f"r = {radius}" for radius in radii)]
        body = [[lang, f"{values[0]:.0f}", *(f"{v:.1f}" for v in values[1:])] for lang, values in rows.items()]
        first = runs[0].readout(CERTIFY)
        settings = ", ".join(f"{key} {first[key]:.4g}" for key in ("sigma", "n0", "n", "alpha") if key in first)
        title = f"### {task}: {setting_text(setting)} ({seed_text(run.job.seed for run in runs)})"
        sections.append(
            f"{title}\n\n{markdown_table(header, body, ['l'] + ['r'] * (len(header) - 1))}\n\n"
            f"Certified accuracy (%) at each L2 radius: {first.get('covers', '')} ({settings}); "
            f"{seconds_text(runs, CERTIFY)}.\n"
        )
    if not sections:
        return "", tidy
    intro = (
        "## Certified accuracy under embedding smoothing\n\nThe smoothed classifier (Cohen et al. 2019) is correct "
        "and certified at radius r or more; an abstained item counts as wrong. Mean over seeds.\n\n"
    )
    return intro + "\n".join(sections), tidy
