"""Find and read every finished job below a folder: results.json, and predictions.tsv when it is needed.

A results.json that does not parse, is of a schema version this xrobust cannot read, lacks a field the report
uses (xrobust/run/run_result.py checks all three) or disagrees with its own predictions is refused with its path
(XrobustError); nothing is skipped silently.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xrobust.errors import XrobustError
from xrobust.report.identity import MISSING, MODEL, NOISE, label_keys, setting_text, settings_of
from xrobust.report.item_rows import (
    ACCURACY,
    GENERALIZED,
    PERTURBED,
    Item,
    check_against_results,
    correctness,
    mixed_pair_names,
    read_predictions,
)
from xrobust.run.results import PREDICTIONS_FILE, RESULTS_FILE
from xrobust.run.run_result import HEADLINE, RunResult
from xrobust.sweep.rung_record import rung_of, without_rung_keys


@dataclass
class Job:
    """One finished training run: what it was (task, model, noise, other settings, seed) and what it measured."""

    folder: Path
    rel_folder: str
    task: str
    model: str
    num_parameters: int
    noise: str
    seed: int
    source_language: str
    # The task kind's headline metric per language (results.json `accuracy`), named by `metric`.
    accuracy: dict[str, float]
    n_examples: dict[str, int]
    majority_class_accuracy: dict[str, float | None]
    predictions_file: str | None
    # {name, tasks} when the job ran as part of a task group (conf/task_group/).
    task_group: dict[str, Any] | None = None
    # results.json's generalized summary (languages, A x B matrix, means) when eval.generalized was on.
    generalized: dict[str, Any] | None = None
    train_seconds: float | None = None
    # Size as the model declares it (results.json model.*; older runs: None).
    family: str | None = None
    non_embedding_parameters: int | None = None
    perturbed_accuracy: dict[str, float] | None = None
    # English dev accuracy of the selected checkpoint (results.json model_selection.best_val_acc), for --select-on.
    selection_accuracy: float | None = None
    # Not zero-shot: the model's training mixture holds the task or its intermediate task (None: not recorded).
    contamination: bool | None = None
    # The resolved config flattened to dotted keys (config snapshot and noise parameters).
    flat_config: dict[str, str] = field(default_factory=dict)
    # The keys beside model and noise that tell this job's setting apart in its sweep (set by collect).
    setting: dict[str, str] = field(default_factory=dict)
    # The headline metric's name (TaskKind.metrics[0], as results.json records it): every label of the tables says it.
    metric: str = HEADLINE
    _rows: dict[str, dict[int, Item]] | None = field(default=None, repr=False)
    _has_perturbed: bool = field(default=False, repr=False)
    _sets: dict[str, dict] = field(default_factory=dict, repr=False)

    @property
    def languages(self) -> list[str]:
        return list(self.accuracy)

    @property
    def labels(self) -> dict[str, str]:
        """The job's setting: model, noise, then the other keys that differ in its sweep."""
        return {MODEL: self.model, NOISE: self.noise, **self.setting}

    @property
    def key(self) -> tuple:
        return (self.task, self.model, self.noise, tuple(self.setting.items()), self.seed)

    @property
    def predictions_path(self) -> Path:
        return self.folder / (self.predictions_file or PREDICTIONS_FILE)

    def _read(self) -> dict[str, dict[int, Item]]:
        """Every test set of predictions.tsv, read once and checked against results.json."""
        if self._rows is None:
            if self.predictions_file is None and not self.predictions_path.is_file():
                raise XrobustError(
                    f"{self.folder / RESULTS_FILE}: the job saved no predictions (eval.save_predictions=false); "
                    f"the size comparison pairs test items from {PREDICTIONS_FILE}"
                )
            rows, self._has_perturbed = read_predictions(self.predictions_path)
            mixed = mixed_pair_names(self.generalized)
            standard = {name: items for name, items in rows.items() if name not in mixed}
            check = (self.predictions_path, standard, self.n_examples, self.metric)
            check_against_results(*check, self.accuracy, "correct")
            if self._has_perturbed and self.perturbed_accuracy:
                check_against_results(*check, self.perturbed_accuracy, "perturbed_correct")
            self._rows = rows
        return self._rows

    def predictions(self) -> dict[str, dict[int, tuple[int, bool]]]:
        """{lang: {item id: (gold, correct)}} of the standard test sets (the generalized pairs left out)."""
        return self.sets(ACCURACY)

    def has(self, measure: str) -> bool:
        """Whether results.json announces this read-out (its predictions may still be missing: see sets)."""
        if measure == PERTURBED:
            return bool(self.perturbed_accuracy)
        if measure == GENERALIZED:
            return bool(mixed_pair_names(self.generalized))
        return True

    def sets(self, measure: str) -> dict[str, dict[int, tuple[int, bool]]]:
        """{test set: {item id: (gold, correct)}}: the languages (accuracy, perturbed) or the mixed pairs."""
        if measure not in self._sets:
            rows = self._read()
            mixed = mixed_pair_names(self.generalized)
            if measure == PERTURBED and not self._has_perturbed:
                raise XrobustError(f"{self.predictions_path}: no {PERTURBED} column (run before it was saved)")
            wanted = {name: items for name, items in rows.items() if (name in mixed) == (measure == GENERALIZED)}
            self._sets[measure] = correctness(wanted, measure)
        return self._sets[measure]

    def has_perturbed_column(self) -> bool:
        self._read()
        return self._has_perturbed


def parse_results(path: Path, root: Path) -> Job:
    """Read one results.json (RunResult: refused with its path and the reason) into a Job."""
    result = RunResult.read(path)
    folder = path.parent
    model, group = result.model, result.task_group
    selection, body = result.model_selection.best_val_acc, model.non_embedding_parameters
    return Job(
        folder=folder,
        rel_folder=str(folder.relative_to(root)) if folder != root else ".",
        # An intermediate stage names the task "xnli-xcopa": a different experiment from plain xcopa.
        task=str(result.task_label or result.task),
        model=str(model.name),
        num_parameters=int(model.num_parameters),
        noise=str(result.noise["name"]),
        seed=result.seed,
        source_language=str(result.source_language),
        accuracy={lang: float(acc) for lang, acc in result.accuracy.items()},
        n_examples=dict(result.n_examples),
        majority_class_accuracy={lang: result.majority_class_accuracy.get(lang) for lang in result.accuracy},
        predictions_file=result.predictions_file,
        task_group={"name": str(group["name"]), "tasks": [str(t) for t in group["tasks"]]} if group else None,
        generalized=result.generalized,
        train_seconds=(result.wall_time_s or {}).get("train"),
        family=model.family,
        non_embedding_parameters=int(body) if _number(body) else None,
        perturbed_accuracy=_floats(result.perturbed_accuracy),
        selection_accuracy=float(selection) if _number(selection) else None,
        contamination=result.contamination,
        flat_config=settings_of(result.noise, result.config if isinstance(result.config, dict) else {}),
        metric=result.metric_names[0],
    )


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _floats(values: Any) -> dict[str, float] | None:
    return {lang: float(v) for lang, v in values.items()} if isinstance(values, dict) else None


NULL = "null"


def _identity_row(job: Job) -> dict[str, str]:
    """The job's flattened config without values naming its own folder (checkpoint and log paths), where it is
    now or where it was written (paths.output_dir: a sweep folder moved or copied since), nor null values (a key a
    newer version added with a null default, `trainer_options: null`, is the setting an older job ran without it),
    with its model and noise names."""
    folders = {str(job.folder.resolve()), job.flat_config.get("paths.output_dir", "")} - {""}
    kept = {
        key: value for key, value in job.flat_config.items() if value != NULL and not any(f in value for f in folders)
    }
    return kept | {MODEL: job.model, NOISE: job.noise}


def task_metric(jobs: list[Job]) -> str:
    """The one headline metric of a task's jobs; XrobustError when two jobs name different ones (a table or a
    difference would set one metric against another)."""
    first = jobs[0]
    other = next((job for job in jobs if job.metric != first.metric), None)
    if other is not None:
        raise XrobustError(
            f"{other.folder / RESULTS_FILE}: task {other.task}'s headline metric is {other.metric}, but "
            f"{first.metric} in {first.folder / RESULTS_FILE}: the report never sets one metric against another"
        )
    return first.metric


def collect(root: Path) -> list[Job]:
    """Every job below root, sorted by folder, each labelled by what sets it apart in its task's sweep (see
    identity.py); refuses an empty folder and two runs of one setting and seed."""
    root = Path(root)
    if not root.is_dir():
        raise XrobustError(f"{root}: not a folder")
    paths = sorted(root.rglob(RESULTS_FILE))
    if not paths:
        raise XrobustError(f"{root}: no {RESULTS_FILE} below this folder (is it a finished sweep?)")
    jobs = [parse_results(path, root) for path in paths]
    for task in {job.task for job in jobs}:
        task_metric([job for job in jobs if job.task == task])
    # A halving rung's results (a learning rate stopped after its first epochs, or a job still going on) label the
    # sweep's settings with the others, less the rung's own keys, but are no finished run: selection.py names the
    # stopped ones (xrobust/sweep/rung_record.py).
    rungs = {job.folder for job in jobs if rung_of(job.folder) is not None}
    for job in (job for job in jobs if job.folder in rungs):
        job.flat_config = without_rung_keys(job.flat_config)
    for task in {job.task for job in jobs}:
        mine = [job for job in jobs if job.task == task]
        rows = [_identity_row(job) for job in mine]
        keys = label_keys(rows, [job.seed for job in mine])[2:]
        for job, row in zip(mine, rows, strict=True):
            job.setting = {key: row.get(key, MISSING) for key in keys}
    jobs = [job for job in jobs if job.folder not in rungs]
    if not jobs:
        raise XrobustError(f"{root}: every {RESULTS_FILE} below is a halving rung's; the sweep has not finished")
    seen: dict[tuple, Job] = {}
    for job in jobs:
        other = seen.setdefault(job.key, job)
        if other is not job:
            setting = setting_text(job.labels)
            raise XrobustError(
                f"{job.folder / RESULTS_FILE}: task={job.task} ({setting}) seed={job.seed} also ran in "
                f"{other.folder}, with no config key telling them apart but paths and logging: remove one run"
            )
    return jobs
