"""results.json's one owner: RunResult is what a job writes and what the report, xrobust-status, the skip check
and the tests read back, with a `schema_version`, so a reader refuses a file it cannot read (one line naming
it) instead of misreading it.

Version 1 is every file written before the version was (read as such: contamination unknown). Version 2 adds
`schema_version`, `contamination` and, for the text-to-text head, `prompt_template`.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xrobust.atomic import atomic_write_text
from xrobust.errors import XrobustError

RESULTS_FILE = "results.json"
# The headline metric of every file without `metrics` (every kind before kinds chose theirs, and pair/multiple_choice).
HEADLINE = "accuracy"
SCHEMA_VERSION = 2
READABLE_VERSIONS = (1, 2)
# What every reader relies on, in every version: the report's table keys, its size order and its item checks.
REQUIRED = ("task", "model", "noise", "seed", "source_language", "accuracy", "n_examples")
REQUIRED_MODEL = ("name", "num_parameters")
# Required from the version that introduced them: a version 2 file always says whether it is zero-shot.
REQUIRED_SINCE = {2: ("contamination",)}
# Read-outs written only when the run has them, each left out with the field named (its group's first).
WRITTEN_WITH = {
    "prompt_template": "prompt_template",
    "last_epoch_accuracy": "last_epoch_accuracy",
    "last_epoch_target_mean": "last_epoch_accuracy",
    "generalized": "generalized",
    "perturbation": "perturbation",
    "perturbed_accuracy": "perturbation",
    "perturbed_target_mean": "perturbation",
    "metrics": "metrics",
    "tested_weights": "tested_weights",
    "diagnostics": "diagnostics",
}


@dataclass(kw_only=True)
class ModelRecord:
    """results.json `model`: what ran, and its size as the model declares it (the report pairs models of one
    family, larger by non-embedding parameters)."""

    name: str
    family: str | None = None
    pretrained: str | None = None
    num_parameters: int
    trainable_parameters: int | None = None
    non_embedding_parameters: int | None = None


@dataclass(kw_only=True)
class ModelSelection:
    """results.json `model_selection`: what chose the tested checkpoint, its English dev accuracy, the budget."""

    on: str | None = None
    best_val_acc: float | None = None
    epochs_run: int | None = None
    steps_run: int | None = None
    # callbacks=early_stopping: whether dev-en stopped improving before trainer.max_epochs (None: no such budget)
    early_stopped: bool | None = None


@dataclass(kw_only=True)
class RunResult:
    """One finished job; fields in the file's order (docs/report.md says what each means)."""

    schema_version: int = SCHEMA_VERSION
    config_hash: str | None = None
    task: str
    task_label: str | None = None
    task_kind: str | None = None
    task_group: dict[str, Any] | None = None
    model: ModelRecord
    # Not zero-shot: the model's training mixture (model.training_mixture) holds the task or its intermediate task.
    contamination: bool | None = None
    # model.head=seq2seq: the prompt template's name, input text, label strings and language (null: English).
    prompt_template: dict[str, Any] | None = None
    noise: dict[str, Any]
    seed: int
    precision: str | None = None
    source_language: str
    data_source: str | None = None
    data_provenance: dict[str, Any] | None = None
    resume: dict[str, Any] | None = None
    model_selection: ModelSelection = field(default_factory=ModelSelection)
    # The headline metric per language: accuracy, or the first of a task kind's `metrics` that has no accuracy.
    accuracy: dict[str, float]
    # Every metric of a task kind that scores more than accuracy, by name, then per language (TaskKind.metrics).
    metrics: dict[str, dict[str, float]] | None = None
    n_examples: dict[str, int]
    majority_class_accuracy: dict[str, float | None] = field(default_factory=dict)
    english_accuracy: float | None = None
    target_mean: float | None = None
    all_language_mean: float | None = None
    transfer_gap: float | None = None
    last_epoch_accuracy: dict[str, float] | None = None
    last_epoch_target_mean: float | None = None
    generalized: dict[str, Any] | None = None
    perturbation: dict[str, Any] | None = None
    perturbed_accuracy: dict[str, float] | None = None
    perturbed_target_mean: float | None = None
    truncated_examples: dict[str, Any] | None = None
    git_sha: str | None = None
    predictions_file: str | None = None
    config: dict[str, Any] | None = None
    wall_time_s: dict[str, float] | None = None
    stages: list[dict[str, Any]] | None = None
    # xrobust.eval: the finished job whose kept weights were tested instead of fitting ({job, checkpoint}).
    tested_weights: dict[str, Any] | None = None
    # The read-outs beside accuracy that ran (eval.alignment, ...; xrobust/diagnostics/, docs/diagnostics.md).
    diagnostics: dict[str, Any] | None = None
    # Keys this version does not know (a later minor addition): kept, and written back as found.
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def metric_names(self) -> tuple[str, ...]:
        """The task kind's metrics, headline first (what `accuracy` holds): `metrics`' names in the order the job
        wrote them (TaskKind.metrics), or accuracy alone, which a file leaves `metrics` out for."""
        return tuple(self.metrics) if self.metrics else (HEADLINE,)

    def to_dict(self) -> dict[str, Any]:
        """The JSON object, in the file's order; read-outs the run did not have are left out."""
        out = {}
        for spec in dataclasses.fields(self):
            value = getattr(self, spec.name)
            if spec.name == "extra" or (spec.name in WRITTEN_WITH and getattr(self, WRITTEN_WITH[spec.name]) is None):
                continue
            out[spec.name] = dataclasses.asdict(value) if dataclasses.is_dataclass(value) else value
        return out | self.extra

    def write(self, path: Path) -> None:
        """Atomically: a reader sees the old file or the new one, never half of one."""
        atomic_write_text(path, json.dumps(self.to_dict(), indent=2, sort_keys=False) + "\n")

    @classmethod
    def read(cls, path: Path) -> RunResult:
        """The file at `path`, or XrobustError naming it and what is wrong."""
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise XrobustError(f"{path}: not readable as JSON ({err})") from None
        return cls.from_dict(data, path)

    @classmethod
    def from_dict(cls, data: Any, where: Path | str) -> RunResult:
        """Check and read one results.json object (`where` names it in errors); a version 1 file is upgraded."""
        if not isinstance(data, dict):
            raise XrobustError(f"{where}: expected a JSON object, found {type(data).__name__}")
        version = data.get("schema_version", 1)
        if isinstance(version, bool) or version not in READABLE_VERSIONS:
            raise XrobustError(
                f"{where}: schema_version {version!r} is not one this xrobust reads "
                f"({', '.join(map(str, READABLE_VERSIONS))}); read it with the xrobust that wrote it"
            )
        _check(data, version, where)
        model = dict(data["model"])
        config = data.get("config") if isinstance(data.get("config"), dict) else {}
        if version == 1 and model.get("family") is None:  # older files kept the family only in the config
            model["family"] = (config.get("model") or {}).get("family")
        known = {spec.name for spec in dataclasses.fields(cls)} - {"extra"}
        values = {key: value for key, value in data.items() if key in known}
        values |= {
            "schema_version": version,
            "model": _record(ModelRecord, model),
            "model_selection": _record(ModelSelection, data.get("model_selection") or {}),
            "majority_class_accuracy": data.get("majority_class_accuracy") or {},
        }
        return cls(**values, extra={key: value for key, value in data.items() if key not in known})


def _record(kind: type, values: dict[str, Any]):
    names = {spec.name for spec in dataclasses.fields(kind)}
    return kind(**{key: value for key, value in values.items() if key in names})


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check(data: dict[str, Any], version: int, where: Path | str) -> None:
    """Every field a reader relies on is there and of its type; else XrobustError naming the file and field."""
    required = list(REQUIRED) + [key for since, keys in REQUIRED_SINCE.items() if version >= since for key in keys]
    missing = [key for key in required if data.get(key) is None]
    model, noise = data.get("model"), data.get("noise")
    if isinstance(model, dict):
        missing += [f"model.{key}" for key in REQUIRED_MODEL if model.get(key) is None]
    if isinstance(noise, dict) and noise.get("name") is None:
        missing.append("noise.name")
    if missing:
        raise XrobustError(f"{where}: missing required field(s) {', '.join(missing)}")
    if not isinstance(model, dict) or not isinstance(noise, dict):
        raise XrobustError(f"{where}: 'model' and 'noise' must be objects")
    accuracy, n_examples = data["accuracy"], data["n_examples"]
    if not isinstance(accuracy, dict) or not accuracy or not all(_number(v) for v in accuracy.values()):
        raise XrobustError(f"{where}: 'accuracy' must map each language to a number")
    if not isinstance(n_examples, dict) or set(n_examples) != set(accuracy):
        raise XrobustError(f"{where}: 'n_examples' must name the same languages as 'accuracy'")
    if not all(isinstance(v, int) and v > 0 for v in n_examples.values()):
        raise XrobustError(f"{where}: 'n_examples' must be positive integers")
    if not _number(model["num_parameters"]) or not isinstance(data["seed"], int):
        raise XrobustError(f"{where}: model.num_parameters and seed must be numbers")
    if not isinstance(data.get("majority_class_accuracy") or {}, dict):
        raise XrobustError(f"{where}: 'majority_class_accuracy' must be an object")
    if not isinstance(data.get("model_selection") or {}, dict):
        raise XrobustError(f"{where}: 'model_selection' must be an object")
    group = data.get("task_group")
    if group is not None and (
        not isinstance(group, dict) or not group.get("name") or not isinstance(group.get("tasks"), list)
    ):
        raise XrobustError(f"{where}: 'task_group' must be an object with a name and a list of tasks")
    metrics = data.get("metrics")
    if metrics is not None and (
        not isinstance(metrics, dict) or not metrics or next(iter(metrics.values())) != accuracy
    ):
        raise XrobustError(
            f"{where}: 'metrics' must map each metric to its languages, the headline (first) as 'accuracy'"
        )
    if data.get("contamination") is not None and not isinstance(data["contamination"], bool):
        raise XrobustError(f"{where}: 'contamination' must be true or false")
