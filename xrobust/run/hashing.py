"""The config hash that tells a finished job's folder from another config's: everything in the resolved config
that can change a run's results, and nothing that names where it writes or what only the planner reads."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from omegaconf import DictConfig, OmegaConf

from xrobust.config.schemas import drop_unset_optional

# Keys that change where or how visibly a job runs, or what it keeps afterwards, never what it computes. The callbacks
# are hashed: early stopping changes the result.
NOT_HASHED = ("hydra", "paths", "logger", "ckpt_path", "skip_completed", "checkpoint")
NOT_HASHED_TRAINER = ("enable_progress_bar", "enable_model_summary", "default_root_dir", "log_every_n_steps", "plugins")
# The paths.* folders a run writes into: any value inside them (a callback's dirpath, a cache) is a place, not meaning.
OUTPUT_PLACES = ("output_dir", "cache_dir")
# Facts about the checkpoint (model.pretrained pins it), not about the run: what it was trained on, and from.
CHECKPOINT_FACTS = (("model", "training_mixture"), ("model", "base_model"))
# Facts about the task's data that only xrobust-plan reads (task.sizes: its splits' examples and tokens).
DATA_FACTS = (("task", "sizes"), ("intermediate", "task", "sizes"))
# What only the text-to-text head reads (model.head=seq2seq): under the classifier head it changes nothing
# computed, so it is not hashed there, and jobs finished before it existed are still found finished.
SEQ2SEQ_ONLY = (
    ("model", "head"),
    ("data", "head"),
    ("module", "head"),
    *(
        (*node, key)
        for node in (("task",), ("intermediate", "task"))
        for key in ("verbalizer", "templates", "template")
    ),
)


def config_hash(cfg: DictConfig) -> str:
    """A stable hash of everything in the resolved config that can change a run's results, and of nothing that
    names where it writes: identical configs in two run folders get one hash."""
    resolved = OmegaConf.to_container(cfg, resolve=True)
    drop_unset_optional(resolved)  # the task fields typed later than the jobs they would otherwise tell apart
    places = [str(resolved["paths"][key]) for key in OUTPUT_PLACES if (resolved.get("paths") or {}).get(key)]
    for key in NOT_HASHED:
        resolved.pop(key, None)
    for key in NOT_HASHED_TRAINER:
        resolved.get("trainer", {}).pop(key, None)
    classifier = (resolved.get("model") or {}).get("head", "classifier") == "classifier"
    for path in (*CHECKPOINT_FACTS, *DATA_FACTS, *(SEQ2SEQ_ONLY if classifier else ())):
        _drop(resolved, path)
    meaning = _without_places(resolved, [place.rstrip("/") for place in places])
    return hashlib.sha256(json.dumps(meaning, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _drop(tree: dict, path: tuple[str, ...]) -> None:
    """Remove the key at `path` from nested dicts, when it is there."""
    *parents, key = path
    for name in parents:
        tree = tree.get(name) if isinstance(tree, dict) else None
    if isinstance(tree, dict):
        tree.pop(key, None)


def _without_places(node: Any, places: list[str]) -> Any:
    """The config tree less every string value that is one of `places` or a path inside one."""

    def is_place(value: Any) -> bool:
        return isinstance(value, str) and any(value == p or value.startswith(p + "/") for p in places)

    if isinstance(node, dict):
        return {k: _without_places(v, places) for k, v in node.items() if not is_place(v)}
    if isinstance(node, list):
        return [_without_places(v, places) for v in node if not is_place(v)]
    return node
