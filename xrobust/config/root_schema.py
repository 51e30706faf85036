"""The typed root of conf/train.yaml: the keys the project owns typed, each config group a node of its own schema
(or of its third-party callable's arguments: trainer, logger), so a misspelled or mistyped root key fails at
composition.

conf/train.yaml lists it after `_self_` (`root_schema`), so the keys keep their place and every value stays the
YAML's (MISSING here); an experiment's own root key must be declared here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from omegaconf import MISSING

from xrobust.config.fields import ranged


def _any_value(_: Any) -> bool:
    return True


@dataclass
class CheckpointConfig:
    """checkpoint: what stays in checkpoints/ after results.json is written (one of checkpoint_io.KEEP_CHOICES)."""

    keep_after_success: str = MISSING


@dataclass
class RootConfig:
    """conf/train.yaml. seed and skip_completed carry an empty range so the start-up check types them too, in a
    config xrobust-eval reads back untyped from a job folder (check_ranges)."""

    seed: int = ranged("", _any_value)
    # The intermediate stage (conf/intermediate/) or null: the root's keys for that stage.
    intermediate: Any = MISSING
    task_label: str = MISSING
    # conf/task_group/ or null.
    task_group: Any = MISSING
    # null, "last" or a checkpoint path (checks.py: an existing one).
    ckpt_path: str | None = MISSING
    skip_completed: bool = ranged("", _any_value)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    # Typed by OptimConfig (optim_schema@optim in conf/train.yaml).
    optim: Any = MISSING
    # The TransferModule's arguments, interpolated from the groups.
    module: Any = MISSING
    # The groups, each typed by its own schema where it has one (task, data, eval, noise, callbacks).
    paths: Any = MISSING
    task: Any = MISSING
    model: Any = MISSING
    finetune: Any = MISSING
    noise: Any = MISSING
    data: Any = MISSING
    eval: Any = MISSING
    trainer: Any = MISSING
    callbacks: Any = MISSING
    logger: Any = MISSING
    # Trainer options an experiment picks from by name (conf/experiment/size_grid.yaml); null elsewhere, and then
    # left out of results.json and the config hash (drop_unset_optional).
    trainer_options: Any = None


@dataclass
class PlanRootConfig(RootConfig):
    """conf/plan.yaml: the training root and the planner's options (typed where it reads them: plan/options.py).
    Listed after `train`, so every other value stays the training root's."""

    # MISSING, not null: merged after the experiment, the training root's value (null or the experiment's) stays.
    trainer_options: Any = MISSING
    plan: Any = MISSING


# Root keys whose null is their absence: a job composed before they were typed keeps its config hash.
ROOT_OPTIONAL = ("trainer_options",)
