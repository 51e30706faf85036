"""The report's tables: tidy CSV rows (fractions) and markdown (accuracy in %, differences in points)."""

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path

import numpy as np

from xrobust.report.bootstrap import TARGET_MEAN
from xrobust.report.collect import Job
from xrobust.report.compare import NOISE_CHANGE, SIZE, Comparison, model_sizes, noise_order

TIDY_COLUMNS = [
    "task",
    "model",
    "num_parameters",
    "noise",
    "seed",
    "lang",
    "accuracy",
    "n",
    "majority_class_accuracy",
    "is_source",
    "job_dir",
]
SIZE_DIFF_COLUMNS = [
    "task",
    "kind",
    "noise",
    "baseline",
    "larger",
    "smaller",
    "larger_params",
    "smaller_params",
    "lang",
    "diff",
    "ci_low",
    "ci_high",
    "seed_std",
    "n_seeds",
    "seeds",
    "n_items",
    "larger_accuracy",
    "smaller_accuracy",
]


def human_params(n: int) -> str:
    return f"{n / 1e9:.1f}B" if n >= 1e9 else f"{n / 1e6:.0f}M"


def write_csv(path: Path, rows: list[dict], columns: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="raise")
        writer.writeheader()
        for row in rows:
            writer.writerow({key: "" if row.get(key) is None else row[key] for key in columns})


def tidy_rows(jobs: list[Job]) -> list[dict]:
    """One row per job x language."""
    return [
        {
            "task": job.task,
            "model": job.model,
            "num_parameters": job.num_parameters,
            "noise": job.noise,
            "seed": job.seed,
            "lang": lang,
            "accuracy": accuracy,
            "n": job.n_examples[lang],
            "majority_class_accuracy": job.majority_class_accuracy.get(lang),
            "is_source": lang == job.source_language,
            "job_dir": job.rel_folder,
        }
        for job in jobs
        for lang, accuracy in job.accuracy.items()
    ]


def markdown_table(header: list[str], rows: list[list[str]], align: list[str]) -> str:
    rule = ["---:" if a == "r" else "---" for a in align]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(rule) + " |"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _pct(value: float | None) -> str:
    return "" if value is None else f"{100 * value:.1f}"


def results_markdown(jobs: list[Job], baseline: str = "none") -> str:
    """Per task: rows model x noise (accuracy mean over seeds), columns languages, target mean, transfer gap."""
    by_task: dict[str, list[Job]] = defaultdict(list)
    for job in jobs:
        by_task[job.task].append(job)
    sections = []
    for task in sorted(by_task):
        task_jobs = by_task[task]
        languages = list(dict.fromkeys(lang for job in task_jobs for lang in job.languages))
        source = task_jobs[0].source_language
        targets = [lang for lang in languages if lang != source]
        header = ["model", "params", "noise", "seeds", *languages, "target mean", "transfer gap"]
        rows = []
        for model, params in model_sizes(task_jobs):
            for noise in noise_order([job.noise for job in task_jobs], baseline):
                runs = [job for job in task_jobs if job.model == model and job.noise == noise]
                if not runs:
                    continue
                acc = {
                    lang: float(np.mean([job.accuracy[lang] for job in runs if lang in job.accuracy]))
                    if any(lang in job.accuracy for job in runs)
                    else None
                    for lang in languages
                }
                present = [acc[lang] for lang in targets if acc[lang] is not None]
                target_mean = float(np.mean(present)) if present else None
                gap = None if acc.get(source) is None or target_mean is None else acc[source] - target_mean
                seeds = ",".join(str(s) for s in sorted(job.seed for job in runs))
                rows.append(
                    [model, human_params(params), noise, seeds, *(_pct(acc[lang]) for lang in languages)]
                    + [_pct(target_mean), "" if gap is None else f"{100 * gap:+.1f}"]
                )
        majority = {
            lang: [
                job.majority_class_accuracy[lang]
                for job in task_jobs
                if job.majority_class_accuracy.get(lang) is not None
            ]
            for lang in languages
        }
        if all(majority.values()):
            base = {lang: float(np.mean(values)) for lang, values in majority.items()}
            target_base = float(np.mean([base[lang] for lang in targets])) if targets else None
            rows.append(
                ["majority class", "", "", "", *(_pct(base[lang]) for lang in languages), _pct(target_base), ""]
            )
        align = ["l", "r", "l", "l", *("r" for _ in languages), "r", "r"]
        sections.append(
            f"## {task}: test accuracy (%)\n\n"
            f"Mean over the seeds listed; target mean = mean over the {len(targets)} languages other than {source}; "
            f"transfer gap = {source} minus target mean (points).\n\n" + markdown_table(header, rows, align)
        )
    return "\n\n".join(sections) + "\n"


def generalized_markdown(jobs: list[Job], baseline: str = "none") -> str:
    """Per task with generalized results: rows model x noise x seed, columns the mixed-language pairs (sentence 1
    in A, sentence 2 in B) and their mean, then training wall time and its ratio to the baseline noise's."""
    sections = []
    for task in sorted({job.task for job in jobs if job.generalized}):
        task_jobs = [job for job in jobs if job.task == task and job.generalized]
        languages = task_jobs[0].generalized["languages"]
        pairs = [(a, b) for a in languages for b in languages if a != b]
        header = ["model", "noise", "seed", *(f"{a}-{b}" for a, b in pairs), "mixed mean", "train s", f"x {baseline}"]
        rows = []
        for model, _ in model_sizes(task_jobs):
            for noise in noise_order([job.noise for job in task_jobs], baseline):
                for job in sorted(
                    (j for j in task_jobs if j.model == model and j.noise == noise), key=lambda j: j.seed
                ):
                    base = [j for j in task_jobs if (j.model, j.noise, j.seed) == (model, baseline, job.seed)]
                    ratio = ""
                    if base and base[0].train_seconds and job.train_seconds:
                        ratio = f"{job.train_seconds / base[0].train_seconds:.2f}"
                    matrix = job.generalized["matrix"]
                    rows.append(
                        [model, noise, str(job.seed), *(_pct(matrix[a][b]) for a, b in pairs)]
                        + [_pct(job.generalized.get("mixed_pairs_mean")), f"{job.train_seconds or 0:.0f}", ratio]
                    )
        align = ["l", "l", "r", *("r" for _ in pairs), "r", "r", "r"]
        sections.append(
            f"## {task}: generalized setting, accuracy (%) with sentence 1 in A and sentence 2 in B (A-B)\n\n"
            "Training wall time is as measured in the job (shared machines make it noisy).\n\n"
            + markdown_table(header, rows, align)
        )
    return "\n\n".join(sections) + ("\n" if sections else "")


def size_diff_rows(comparisons: list[Comparison]) -> list[dict]:
    """One row per comparison x (language or target_mean); fractions, not points."""
    rows = []
    for comp in comparisons:
        for col in comp.columns:
            est = comp.estimates[col]
            rows.append(
                {
                    "task": comp.task,
                    "kind": comp.kind,
                    "noise": comp.noise,
                    "baseline": comp.baseline,
                    "larger": comp.larger,
                    "smaller": comp.smaller,
                    "larger_params": comp.larger_params,
                    "smaller_params": comp.smaller_params,
                    "lang": col,
                    "diff": est.value,
                    "ci_low": est.low,
                    "ci_high": est.high,
                    "seed_std": comp.seed_std.get(col),
                    "n_seeds": len(comp.seeds),
                    "seeds": " ".join(str(s) for s in comp.seeds),
                    "n_items": sum(comp.n_items[lang] for lang in comp.languages if lang != comp.source_language)
                    if col == TARGET_MEAN
                    else comp.n_items[col],
                    "larger_accuracy": comp.larger_accuracy.get(col),
                    "smaller_accuracy": comp.smaller_accuracy.get(col),
                }
            )
    return rows


def diff_cell(comp: Comparison, col: str) -> str:
    """'+3.0 [-4.5, +10.6]' in points; '± std' over seeds when there are several; bold when the CI excludes 0."""
    est = comp.estimates[col]
    text = f"{100 * est.value:+.1f}"
    std = comp.seed_std.get(col)
    if std is not None:
        text += f" ± {100 * std:.1f}"
    text += f" [{100 * est.low:+.1f}, {100 * est.high:+.1f}]"
    return f"**{text}**" if est.excludes_zero() else text


def size_diff_markdown(comparisons: list[Comparison], n_boot: int, level: float = 0.95, notes=()) -> str:
    """Per task and model pair: the size gap per noise, then how each noise changes it relative to baseline."""
    groups: dict[tuple, list[Comparison]] = defaultdict(list)
    for comp in comparisons:
        groups[(comp.task, comp.larger, comp.smaller)].append(comp)
    legend = (
        f"Accuracy difference in points (larger minus smaller model), mean over seeds; [{int(level * 100)}% "
        f"paired bootstrap interval over test items, {n_boot} resamples]; ± = standard deviation of the per-seed "
        "difference (only with several seeds); **bold** = the interval excludes 0. Target mean: mean over "
        "the target languages, items resampled within each language."
    )
    sections = []
    for (task, larger, smaller), comps in groups.items():
        first = comps[0]
        columns = first.columns
        header = ["noise", "seeds", *(c.replace(TARGET_MEAN, "target mean") for c in columns)]
        align = ["l", "l", *("r" for _ in columns)]

        def table(kind: str, comps=comps, columns=columns, header=header, align=align) -> str:
            rows = [
                [comp.noise, ",".join(map(str, comp.seeds)), *(diff_cell(comp, col) for col in columns)]
                for comp in comps
                if comp.kind == kind
            ]
            return markdown_table(header, rows, align) if rows else "(none)"

        title = (
            f"## {task}: {larger} ({human_params(first.larger_params)}) minus "
            f"{smaller} ({human_params(first.smaller_params)})"
        )
        baseline = next((comp.baseline for comp in comps if comp.kind == NOISE_CHANGE), None)
        part = [title, legend, table(SIZE)]
        if baseline is not None:
            part += [
                f"### Change of the size gap under noise: (larger - smaller)[noise] - (larger - smaller)[{baseline}]",
                "Positive: the noise widens the larger model's lead; the interval resamples the same items in all "
                "four runs.",
                table(NOISE_CHANGE),
            ]
        sections.append("\n\n".join(part))
    if notes:
        sections.append("Notes:\n\n" + "\n".join(f"- {note}" for note in notes))
    if not sections:
        return "No size comparison: the sweep holds one model per task.\n"
    return "\n\n".join(sections) + "\n"
