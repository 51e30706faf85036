"""A Hub task's recorded figures, `task.sizes` in its YAML (conf/task/xnli.yaml), typed: examples per split and mean
tokens per sequence, each with the source it was measured on. A new task adds them there, nowhere else."""

from __future__ import annotations

from dataclasses import dataclass, field

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from xrobust.data.task import TaskSpec
from xrobust.errors import XrobustError


@dataclass
class SplitTokens:
    """Mean real tokens per sequence (XLM-R's tokenizer, cut at 128); null: not measured."""

    train: float | None = None
    dev: float | None = None
    test: dict[str, float | None] | None = None  # per language


@dataclass
class TaskSizes:
    source: str | None = None
    train: int | None = None
    dev: int | None = None
    test: int | None = None  # examples per test language, unless test_sizes gives its own
    test_sizes: dict[str, int] = field(default_factory=dict)
    tokens: SplitTokens = field(default_factory=SplitTokens)
    # Multiple choice under the text-to-text head: a choice's mean tokens (null: data.max_length, a bound).
    choice_tokens: float | None = None


def task_sizes(task: TaskSpec) -> TaskSizes | None:
    """The task's `sizes`, typed (None: it has none); a key or value of the wrong kind is one line naming it."""
    if task.sizes is None:
        return None
    try:
        return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(TaskSizes), task.sizes))
    except OmegaConfBaseException as err:
        key = getattr(err, "full_key", None) or "?"
        raise XrobustError(f"task {task.name!r}: task.sizes.{key}: {str(err).splitlines()[0]}") from None


def recorded_sizes(task: TaskSpec) -> TaskSizes:
    """The task's sizes with their example counts; one XrobustError line naming the task YAML key otherwise."""
    sizes = task_sizes(task)
    if sizes is None:
        raise XrobustError(
            f"xrobust-plan has no figures for task {task.name!r}: add task.sizes (examples and mean tokens of its "
            f"splits, as conf/task/xnli.yaml has them) to conf/task/{task.name}.yaml, or point data.local_dir at "
            "its files to measure them"
        )
    missing = [key for key in ("train", "dev", "test") if getattr(sizes, key) is None]
    if missing:
        raise XrobustError(f"task {task.name!r}: task.sizes.{missing[0]} is missing (examples in that split)")
    return sizes
