"""Find and read every finished job below a folder: results.json, and predictions.tsv when it is needed.

A results.json that does not parse, lacks a field the report uses, or disagrees with its own predictions is
refused with its path (XrobustError); nothing is skipped silently.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xrobust.errors import XrobustError
from xrobust.results import PREDICTIONS_FILE, RESULTS_FILE

# Top-level fields of results.json the report reads, and the nested ones.
REQUIRED_FIELDS = ("task", "model", "noise", "seed", "source_language", "accuracy", "n_examples")
REQUIRED_MODEL_FIELDS = ("name", "num_parameters")
PREDICTION_COLUMNS = ["lang", "id", "gold", "pred"]
# results.json stores float32 accuracies: allow that rounding, never a different count.
ACCURACY_TOLERANCE = 1e-4


@dataclass
class Job:
    """One finished training run: what it was (task, model, noise, seed) and what it measured."""

    folder: Path
    rel_folder: str
    task: str
    model: str
    num_parameters: int
    noise: str
    seed: int
    source_language: str
    accuracy: dict[str, float]
    n_examples: dict[str, int]
    majority_class_accuracy: dict[str, float | None]
    predictions_file: str | None
    # {name, tasks} when the job ran as part of a task group (conf/task_group/).
    task_group: dict[str, Any] | None = None
    # results.json's generalized summary (languages, A x B matrix, means) when eval.generalized was on.
    generalized: dict[str, Any] | None = None
    train_seconds: float | None = None
    _correct: dict[str, dict[int, tuple[int, bool]]] | None = field(default=None, repr=False)

    @property
    def languages(self) -> list[str]:
        return list(self.accuracy)

    @property
    def key(self) -> tuple[str, str, str, int]:
        return (self.task, self.model, self.noise, self.seed)

    @property
    def predictions_path(self) -> Path:
        return self.folder / (self.predictions_file or PREDICTIONS_FILE)

    def predictions(self) -> dict[str, dict[int, tuple[int, bool]]]:
        """{lang: {item id: (gold, correct)}}, read once and checked against results.json."""
        if self._correct is None:
            if self.predictions_file is None and not self.predictions_path.is_file():
                raise XrobustError(
                    f"{self.folder / RESULTS_FILE}: the job saved no predictions (eval.save_predictions=false); "
                    f"the size comparison pairs test items from {PREDICTIONS_FILE}"
                )
            self._correct = self._standard_only(read_predictions(self.predictions_path))
            self._check_predictions()
        return self._correct

    def _standard_only(self, predictions: dict[str, dict]) -> dict[str, dict]:
        """Drop the generalized setting's mixed pairs (`A_B`, see results.json's `generalized`): the paired
        statistics compare the standard per-language test sets."""
        languages = (self.generalized or {}).get("languages") or []
        mixed = {f"{a}_{b}" for a in languages for b in languages if a != b}
        return {lang: items for lang, items in predictions.items() if lang not in mixed}

    def _check_predictions(self) -> None:
        path = self.predictions_path
        assert self._correct is not None
        if set(self._correct) != set(self.accuracy):
            raise XrobustError(
                f"{path}: languages {sorted(self._correct)} differ from results.json's {sorted(self.accuracy)}"
            )
        for lang, items in self._correct.items():
            if len(items) != self.n_examples[lang]:
                raise XrobustError(
                    f"{path}: {len(items)} {lang} predictions, results.json says n_examples={self.n_examples[lang]}"
                )
            accuracy = sum(correct for _, correct in items.values()) / len(items)
            if abs(accuracy - self.accuracy[lang]) > ACCURACY_TOLERANCE:
                raise XrobustError(
                    f"{path}: {lang} accuracy from predictions {accuracy:.4f} differs from results.json's "
                    f"{self.accuracy[lang]:.4f}"
                )


def read_predictions(path: Path) -> dict[str, dict[int, tuple[int, bool]]]:
    """Parse predictions.tsv (header lang, id, gold, pred) into {lang: {id: (gold, correct)}}."""
    if not path.is_file():
        raise XrobustError(f"{path}: predictions file not found (the size comparison pairs test items from it)")
    out: dict[str, dict[int, tuple[int, bool]]] = {}
    with open(path, encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle, delimiter="\t")
        header = next(reader, None)
        if header != PREDICTION_COLUMNS:
            raise XrobustError(f"{path}: header {header} is not {PREDICTION_COLUMNS}")
        for line_no, row in enumerate(reader, start=2):
            if not row:
                continue
            try:
                lang, item, gold, pred = row[0], int(row[1]), int(row[2]), int(row[3])
            except (ValueError, IndexError):
                raise XrobustError(f"{path}:{line_no}: malformed row {row!r}") from None
            items = out.setdefault(lang, {})
            if item in items:
                raise XrobustError(f"{path}:{line_no}: item ({lang}, {item}) appears twice")
            items[item] = (gold, gold == pred)
    return out


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def parse_results(path: Path, root: Path) -> Job:
    """Read one results.json into a Job, or refuse it with its path and the reason."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise XrobustError(f"{path}: not readable as JSON ({err})") from None
    if not isinstance(data, dict):
        raise XrobustError(f"{path}: expected a JSON object, found {type(data).__name__}")
    missing = [key for key in REQUIRED_FIELDS if data.get(key) is None]
    model = data.get("model")
    if isinstance(model, dict):
        missing += [f"model.{key}" for key in REQUIRED_MODEL_FIELDS if model.get(key) is None]
    noise = data.get("noise")
    if isinstance(noise, dict) and noise.get("name") is None:
        missing.append("noise.name")
    if missing:
        raise XrobustError(f"{path}: missing required field(s) {', '.join(missing)}")
    if not isinstance(model, dict) or not isinstance(noise, dict):
        raise XrobustError(f"{path}: 'model' and 'noise' must be objects")
    accuracy, n_examples = data["accuracy"], data["n_examples"]
    if not isinstance(accuracy, dict) or not accuracy or not all(_number(v) for v in accuracy.values()):
        raise XrobustError(f"{path}: 'accuracy' must map each language to a number")
    if not isinstance(n_examples, dict) or set(n_examples) != set(accuracy):
        raise XrobustError(f"{path}: 'n_examples' must name the same languages as 'accuracy'")
    if not all(isinstance(v, int) and v > 0 for v in n_examples.values()):
        raise XrobustError(f"{path}: 'n_examples' must be positive integers")
    if not _number(model["num_parameters"]) or not isinstance(data["seed"], int):
        raise XrobustError(f"{path}: model.num_parameters and seed must be numbers")
    majority = data.get("majority_class_accuracy") or {}
    if not isinstance(majority, dict):
        raise XrobustError(f"{path}: 'majority_class_accuracy' must be an object")
    folder = path.parent
    return Job(
        folder=folder,
        rel_folder=str(folder.relative_to(root)) if folder != root else ".",
        # An intermediate stage names the task "xnli-xcopa": a different experiment from plain xcopa.
        task=str(data.get("task_label") or data["task"]),
        model=str(model["name"]),
        num_parameters=int(model["num_parameters"]),
        noise=str(noise["name"]),
        seed=data["seed"],
        source_language=str(data["source_language"]),
        accuracy={lang: float(acc) for lang, acc in accuracy.items()},
        n_examples=dict(n_examples),
        majority_class_accuracy={lang: majority.get(lang) for lang in accuracy},
        predictions_file=data.get("predictions_file"),
        task_group=_task_group(data.get("task_group"), path),
        generalized=data.get("generalized"),
        train_seconds=(data.get("wall_time_s") or {}).get("train"),
    )


def _task_group(value: Any, path: Path) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict) or not value.get("name") or not isinstance(value.get("tasks"), list):
        raise XrobustError(f"{path}: 'task_group' must be an object with a name and a list of tasks")
    return {"name": str(value["name"]), "tasks": [str(t) for t in value["tasks"]]}


def collect(root: Path) -> list[Job]:
    """Every job below root, sorted by folder; refuses an empty folder and two jobs with one identity."""
    root = Path(root)
    if not root.is_dir():
        raise XrobustError(f"{root}: not a folder")
    paths = sorted(root.rglob(RESULTS_FILE))
    if not paths:
        raise XrobustError(f"{root}: no {RESULTS_FILE} below this folder (is it a finished sweep?)")
    jobs = [parse_results(path, root) for path in paths]
    seen: dict[tuple, Job] = {}
    for job in jobs:
        other = seen.setdefault(job.key, job)
        if other is not job:
            task, model, noise, seed = job.key
            raise XrobustError(
                f"{job.folder / RESULTS_FILE}: task={task} model={model} noise={noise} seed={seed} also ran in "
                f"{other.folder}; point the report at one sweep"
            )
    return jobs
