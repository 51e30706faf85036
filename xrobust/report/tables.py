"""The report's score tables: tidy CSV rows (fractions) and markdown (in %), one row per setting, of each task's
headline metric (its kind's first; accuracy for pair and multiple_choice), named in every title and CSV column.

A setting is a job's model, noise and every other key that tells the sweep's jobs apart (identity.py); the
seeds of a setting are averaged. Rows run largest model first, the baseline noise first, other keys in order.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from xrobust.report.collect import Job, task_metric
from xrobust.report.formatting import markdown_table, pct
from xrobust.report.identity import MODEL, NOISE, setting_text
from xrobust.report.pairing import noise_order, sort_values
from xrobust.report.readouts import classifiers
from xrobust.report.sizes import model_sizes
from xrobust.run.run_result import HEADLINE

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
    "family",
    "non_embedding_parameters",
    "setting",
    "perturbed_accuracy",
    "classifier",
    "perturbed_classifier",
    "contamination",
]
# Marks a row whose model was trained on the task already (results.json `contamination`).
DAGGER = "†"
CONTAMINATION_LEGEND = (
    f"{DAGGER} not zero-shot: the model's training mixture (model.training_mixture) holds this task or the "
    "intermediate task trained on before it."
)


def metric_names(jobs: list[Job]) -> list[str]:
    """The jobs' headline metrics, in the order first met (accuracy alone for tasks of the label kinds)."""
    return list(dict.fromkeys(job.metric for job in jobs)) or [HEADLINE]


def tidy_columns(jobs: list[Job]) -> list[str]:
    """TIDY_COLUMNS with a score column per headline metric of the jobs, and its perturbed read-out's; each row
    fills its own metric's (TIDY_COLUMNS itself when every job's is accuracy)."""
    metrics = metric_names(jobs)
    named = {HEADLINE: metrics, f"perturbed_{HEADLINE}": [f"perturbed_{metric}" for metric in metrics]}
    return [name for column in TIDY_COLUMNS for name in named.get(column, [column])]


def seed_text(seeds) -> str:
    """'seed 1' or 'seeds 1,2,3'."""
    seeds = list(seeds)
    return f"seed{'s' if len(seeds) > 1 else ''} {','.join(map(str, seeds))}"


def by_task(jobs: list[Job]) -> dict[str, list[Job]]:
    tasks: dict[str, list[Job]] = defaultdict(list)
    for job in jobs:
        tasks[job.task].append(job)
    return {task: tasks[task] for task in sorted(tasks)}


def extra_keys(jobs: list[Job]) -> list[str]:
    """The label keys beside model and noise (the same for every job of a task)."""
    return list(jobs[0].setting) if jobs else []


def ordered_settings(jobs: list[Job], baseline: str) -> list[dict[str, str]]:
    """Every distinct setting of these jobs (labels), in table order."""
    models = [size.name for size in model_sizes(jobs)]
    noises = noise_order([job.noise for job in jobs], baseline)
    keys = extra_keys(jobs)
    ranks = {key: {v: i for i, v in enumerate(sort_values(job.setting[key] for job in jobs))} for key in keys}
    settings = {tuple(job.labels.items()): job.labels for job in jobs}
    return sorted(
        settings.values(),
        key=lambda s: (models.index(s[MODEL]), noises.index(s[NOISE]), *(ranks[k][s[k]] for k in keys)),
    )


def runs_of(jobs: list[Job], setting: dict[str, str]) -> list[Job]:
    return sorted((job for job in jobs if job.labels == setting), key=lambda job: job.seed)


def tidy_rows(jobs: list[Job]) -> list[dict]:
    """One row per job x language; the score under the job's headline metric's name (tidy_columns)."""
    return [
        {
            "task": job.task,
            "model": job.model,
            "num_parameters": job.num_parameters,
            "noise": job.noise,
            "seed": job.seed,
            "lang": lang,
            job.metric: accuracy,
            "n": job.n_examples[lang],
            "majority_class_accuracy": job.majority_class_accuracy.get(lang),
            "is_source": lang == job.source_language,
            "job_dir": job.rel_folder,
            "family": job.family,
            "non_embedding_parameters": job.non_embedding_parameters,
            "setting": setting_text(job.labels),
            f"perturbed_{job.metric}": (job.perturbed_accuracy or {}).get(lang),
            "classifier": classifiers(job)[0],
            "perturbed_classifier": classifiers(job)[1],
            "contamination": job.contamination,
        }
        for job in jobs
        for lang, accuracy in job.accuracy.items()
    ]


def accuracy_rows(task_jobs: list[Job], baseline: str) -> tuple[list[str], list[str], list[dict]]:
    """(languages, targets, one dict per setting: labels, params text, seeds, accuracy per language and
    target mean, transfer gap), shared by the markdown and LaTeX tables."""
    languages = list(dict.fromkeys(lang for job in task_jobs for lang in job.languages))
    source = task_jobs[0].source_language
    targets = [lang for lang in languages if lang != source]
    sizes = {size.name: size for size in model_sizes(task_jobs)}
    rows = []
    for setting in ordered_settings(task_jobs, baseline):
        runs = runs_of(task_jobs, setting)
        acc = {
            lang: float(np.mean([job.accuracy[lang] for job in runs if lang in job.accuracy]))
            if any(lang in job.accuracy for job in runs)
            else None
            for lang in languages
        }
        present = [acc[lang] for lang in targets if acc[lang] is not None]
        target_mean = float(np.mean(present)) if present else None
        every = [value for value in acc.values() if value is not None]
        gap = None if acc.get(source) is None or target_mean is None else acc[source] - target_mean
        rows.append(
            {
                "labels": setting,
                "params": sizes[setting[MODEL]].text(),
                "seeds": ",".join(str(job.seed) for job in runs),
                "accuracy": acc,
                "target_mean": target_mean,
                "all_mean": float(np.mean(every)) if every else None,
                "gap": gap,
                "contaminated": any(job.contamination for job in runs),
            }
        )
    return languages, targets, rows


def model_cell(row: dict) -> str:
    """The model's name, with a dagger when its training mixture holds the task (not zero-shot)."""
    return row["labels"][MODEL] + (f" {DAGGER}" if row["contaminated"] else "")


def contamination_notes(jobs: list[Job]) -> list[str]:
    """One note per task and model trained on the task already: the size contrasts involving it are not zero-shot
    transfer either."""
    pairs = sorted({(job.task, job.model) for job in jobs if job.contamination})
    return [
        f"{task}: {model} is not zero-shot ({DAGGER}): its training mixture holds the task or its intermediate task"
        for task, model in pairs
    ]


def majority_row(task_jobs: list[Job], languages: list[str], targets: list[str]) -> dict[str, float] | None:
    """The majority class's accuracy per language and means; None where it is missing, or where the task's metric
    is not accuracy (its column would mix two metrics)."""
    if task_metric(task_jobs) != HEADLINE:
        return None
    majority = {
        lang: [
            job.majority_class_accuracy[lang] for job in task_jobs if job.majority_class_accuracy.get(lang) is not None
        ]
        for lang in languages
    }
    if not all(majority.values()):
        return None
    base = {lang: float(np.mean(values)) for lang, values in majority.items()}
    if targets:
        base["target_mean"] = float(np.mean([base[lang] for lang in targets]))
    base["all_mean"] = float(np.mean([base[lang] for lang in languages]))
    return base


def results_markdown(jobs: list[Job], baseline: str = "none") -> str:
    """Per task: rows one per setting (its headline metric, mean over seeds), columns languages, target mean,
    transfer gap."""
    sections = []
    for task, task_jobs in by_task(jobs).items():
        languages, targets, rows = accuracy_rows(task_jobs, baseline)
        keys = extra_keys(task_jobs)
        source = task_jobs[0].source_language
        header = [MODEL, "params", NOISE, *keys, "seeds", *languages, "target mean", "all-language mean"]
        header.append("transfer gap")
        body = [
            [model_cell(row), row["params"], row["labels"][NOISE], *(row["labels"][k] for k in keys), row["seeds"]]
            + [pct(row["accuracy"][lang]) for lang in languages]
            + [pct(row["target_mean"]), pct(row["all_mean"])]
            + ["" if row["gap"] is None else f"{100 * row['gap']:+.1f}"]
            for row in rows
        ]
        base = majority_row(task_jobs, languages, targets)
        if base is not None:
            body.append(
                ["majority class", "", "", *("" for _ in keys), ""]
                + [pct(base[lang]) for lang in languages]
                + [pct(base.get("target_mean")), pct(base["all_mean"]), ""]
            )
        align = ["l", "r", "l", *("l" for _ in keys), "l", *("r" for _ in languages), "r", "r", "r"]
        seeds = sorted({job.seed for job in task_jobs})
        dagger = f" {CONTAMINATION_LEGEND}" if any(row["contaminated"] for row in rows) else ""
        sections.append(
            f"## {task}: test {task_metric(task_jobs)} (%)\n\n"
            f"Mean over the seeds listed ({seed_text(seeds)} in all); target mean = mean over the {len(targets)} "
            f"languages other than {source}; all-language mean = mean over all {len(languages)}, {source} included "
            f"(the XTREME convention); transfer gap = {source} minus target mean (points).{dagger}\n\n"
            + markdown_table(header, body, align)
        )
    return "\n\n".join(sections) + "\n"


def generalized_markdown(jobs: list[Job], baseline: str = "none") -> str:
    """Per task with generalized results: rows setting x seed, columns the mixed-language pairs (sentence 1 in A,
    sentence 2 in B) and their mean, then training wall time and its ratio to the baseline noise's."""
    sections = []
    for task, task_jobs in by_task([job for job in jobs if job.generalized]).items():
        languages = task_jobs[0].generalized["languages"]
        pairs = [(a, b) for a in languages for b in languages if a != b]
        keys = extra_keys(task_jobs)
        header = [MODEL, NOISE, *keys, "seed", *(f"{a}-{b}" for a, b in pairs), "mixed mean", "train s"]
        rows = []
        for setting in ordered_settings(task_jobs, baseline):
            plain = {k: v for k, v in setting.items() if k != NOISE and not k.startswith(NOISE + ".")}
            for job in runs_of(task_jobs, setting):
                base = [
                    j
                    for j in task_jobs
                    if j.noise == baseline
                    and j.seed == job.seed
                    and all(j.labels.get(k) == v for k, v in plain.items())
                ]
                ratio = ""
                if base and base[0].train_seconds and job.train_seconds:
                    ratio = f"{job.train_seconds / base[0].train_seconds:.2f}"
                matrix = job.generalized["matrix"]
                rows.append(
                    [job.model, job.noise, *(job.setting[k] for k in keys), str(job.seed)]
                    + [pct(matrix[a][b]) for a, b in pairs]
                    + [pct(job.generalized.get("mixed_pairs_mean")), f"{job.train_seconds or 0:.0f}", ratio]
                )
        align = ["l", "l", *("l" for _ in keys), "r", *("r" for _ in pairs), "r", "r", "r"]
        sections.append(
            f"## {task}: generalized setting, {task_metric(task_jobs)} (%) with sentence 1 in A and sentence 2 in B "
            "(A-B)\n\n"
            "Training wall time is as measured in the job (shared machines make it noisy).\n\n"
            + markdown_table([*header, f"x {baseline}"], rows, align)
        )
    return "\n\n".join(sections) + ("\n" if sections else "")
