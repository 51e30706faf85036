"""What the planner reads of the config besides the typed groups: its own options, conf/plan.yaml's `plan` node,
typed (every value is the YAML's; a training config, which has no `plan` node, gets the file's), and a `_target_`
node's arguments as its callable takes them. So no reader of the plan keeps a default of its own."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from xrobust.config.checks import CONF_DIR
from xrobust.errors import XrobustError

PLAN_YAML = Path(CONF_DIR) / "plan.yaml"


@dataclass
class Padding:
    """Padded over real training tokens of a Hub task's recorded figures, by how the run batches."""

    length_grouped: float = MISSING
    shuffled: float = MISSING
    packed: float = MISSING


@dataclass
class PlanOptions:
    """conf/plan.yaml's `plan`: what each key means is said there."""

    gpu: str = MISSING
    gpu_memory_gb: float | None = MISSING
    mfu: float = MISSING
    peak_tflops: float | None = MISSING
    gpus: int | None = MISSING
    reserve_gb: float = MISSING
    cpu_memory_gb: float | None = MISSING
    cpu_reserve_gb: float = MISSING
    seq_len: int | None = MISSING
    gpus_per_node: int = MISSING
    num_labels: int | None = MISSING
    padding: Padding = field(default_factory=Padding)
    json: str | None = MISSING
    cheapest: bool = MISSING


def plan_options(cfg: DictConfig) -> PlanOptions:
    """The composed config's `plan` node, typed; conf/plan.yaml's when the config is a training one (tests,
    conf/train.yaml). A value of the wrong type is one XrobustError line naming its key."""
    node = cfg.plan if "plan" in cfg else OmegaConf.create({"data": cfg.data, "plan": shipped()}).plan
    try:
        values = OmegaConf.to_container(node, resolve=True)
        return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(PlanOptions), values))
    except OmegaConfBaseException as err:
        key = getattr(err, "full_key", None) or "?"
        raise XrobustError(f"invalid config: plan.{key}: {str(err).splitlines()[0]}") from None


def shipped() -> DictConfig:
    return OmegaConf.load(PLAN_YAML).plan


def argument(arguments: Mapping[str, Any], name: str, owner: Callable) -> Any:
    """The config's value of `name`, else the default of `owner`'s parameter: the value the job runs with."""
    return arguments[name] if name in arguments else inspect.signature(owner).parameters[name].default
