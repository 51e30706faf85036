"""What tells a sweep's jobs apart: every config key whose value differs between the jobs of one task.

Each job's resolved config (results.json `config`, and its `noise` parameters) is flattened to dotted keys.
Keys that differ between any two jobs are candidates, except those that never describe the experiment: where
files go and how runs are watched (the keys config_hash leaves out), the task (reported apart, but for its prompt
template: task.template is a setting) and the seed with everything that is set from it (`data.seed: ${seed}`):
seeds are the replication axis. Of the candidates, the
report keeps the fewest that still tell every setting apart: `model` and `noise` first, then the others
(top-level groups before their `module.*` copies, shallow before deep), each only if the ones kept so far do
not already determine its value (`optim.lr` follows from the model in a model sweep; in an lr sweep it is kept).
"""

from __future__ import annotations

import json
from typing import Any

from xrobust.run.hashing import NOT_HASHED, NOT_HASHED_TRAINER

MODEL, NOISE = "model", "noise"
# Flattened keys shown under another name: the job's model and noise columns.
ALIASES = {"model.name": MODEL, "noise.name": NOISE}
IGNORED_PREFIXES = (
    *NOT_HASHED,
    *(f"trainer.{key}" for key in NOT_HASHED_TRAINER),
    "task",
    "task_label",
    "task_group",
    "seed",
)
# Keys of the task that are settings of a job, not the task itself: the prompt template (a template sweep).
TASK_SETTINGS = ("task.template",)
MISSING = "-"
# What a run measures or derives and records beside its noise parameters (results.json `noise`): a measurement
# (words with neighbours differ by seed, the embedding norm by model), never what the job was asked to run.
DERIVED_NOISE_FIELDS = ("words_with_neighbours", "median_embedding_norm", "embedding_dim", "ball", "word_rule")
DERIVED_NOISE_SUFFIXES = ("_relative", "_absolute")


def derived(field: str) -> bool:
    return field in DERIVED_NOISE_FIELDS or field.endswith(DERIVED_NOISE_SUFFIXES)


def settings_of(noise: dict[str, Any], config: dict[str, Any]) -> dict[str, str]:
    """The flattened settings a job ran: its config snapshot, and of its recorded noise parameters only those the
    snapshot declares (all when there is none) less the measured and derived ones."""
    declared = config.get("noise") if isinstance(config.get("noise"), dict) else None
    asked = {k: v for k, v in noise.items() if (declared is None or k in declared or k == "name") and not derived(k)}
    return flatten({"noise": asked}) | flatten(config)


def text(value: Any) -> str:
    """A config value as the tables print it."""
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True)


def flatten(tree: Any, prefix: str = "") -> dict[str, str]:
    """{dotted key: value text} for every leaf of nested dicts (lists are leaves)."""
    if not isinstance(tree, dict):
        return {prefix: text(tree)} if prefix else {}
    out: dict[str, str] = {}
    for key, value in tree.items():
        out.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return out


def ignored(key: str) -> bool:
    if key in TASK_SETTINGS:
        return False
    return any(key == prefix or key.startswith(prefix + ".") for prefix in IGNORED_PREFIXES)


def _preference(key: str) -> tuple:
    return (key.startswith("module."), key.count("."), key)


def _determined(key: str, kept: list[str], rows: list[dict[str, str]]) -> bool:
    seen: dict[tuple, str] = {}
    for row in rows:
        group = tuple(row.get(k, MISSING) for k in kept)
        if seen.setdefault(group, row.get(key, MISSING)) != row.get(key, MISSING):
            return False
    return True


def _follows_seed(key: str, rows: list[dict[str, str]], seeds: list[int]) -> bool:
    """Set from the seed (`data.seed: ${seed}`) wherever the job has the key."""
    return all(row[key] == str(seed) for row, seed in zip(rows, seeds, strict=True) if key in row)


def label_keys(rows: list[dict[str, str]], seeds: list[int]) -> list[str]:
    """The keys that label these jobs' settings (see module doc); rows are the jobs' flattened configs with
    `model` and `noise` set, seeds the jobs' seeds in the same order."""
    keys = sorted({key for row in rows for key in row} - {MODEL, NOISE}, key=_preference)
    differing = [
        key
        for key in keys
        if not ignored(key)
        and key not in ALIASES
        and len({row.get(key, MISSING) for row in rows}) > 1
        and not _follows_seed(key, rows, seeds)
    ]
    kept = [MODEL, NOISE]
    for key in differing:
        if not _determined(key, kept, rows):
            kept.append(key)
    return kept


def setting_text(setting: dict[str, str], keys: list[str] | None = None) -> str:
    """'rs_rp, noise.eps=0.5': the noise by name, any other key as key=value; '' for none."""
    keys = list(setting) if keys is None else keys
    parts = [setting[k] if k in (MODEL, NOISE) else f"{k}={setting[k]}" for k in keys if k in setting]
    return ", ".join(parts)
