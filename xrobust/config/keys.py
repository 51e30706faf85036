"""Refuse config keys that nothing reads: a `_target_` node may hold only what its callable takes, and a `+key`
override may add only such a key, or one under a free-form mapping.

The callables' signatures are the schema (as torchtune checks its configs), so a new Trainer argument or noise
field needs no list kept here. A typo (`+noise.epss=0.1`, `+trainer.limit_test_batchs=2`) is one line at start-up
instead of a TypeError from instantiate after the model loaded, or a key silently never read (`+optim.lrr`).
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import typing
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.utils import get_object
from omegaconf import DictConfig, OmegaConf

from xrobust.config.schemas import TaskConfig
from xrobust.errors import XrobustError

# Mappings whose keys are data, not settings: LoRA targets per model type, prompt templates by name (TaskSpec
# checks each entry's keys), and Hydra's own config (which Hydra checks itself).
FREE_FORM = ("finetune.target_modules", "task.templates", "intermediate.task.templates", "hydra")
# Nodes without a `_target_` that a dataclass reads field by field.
SCHEMAS: dict[str, type] = {"task": TaskConfig, "intermediate.task": TaskConfig}
# Keys Hydra's instantiate reads itself.
HYDRA_KEYS = ("_target_", "_partial_", "_recursive_", "_convert_", "_args_")


def check_keys(cfg: DictConfig, conf_dir: str) -> None:
    """Every `+key` override and every key of a `_target_` node is one that something reads."""
    added = added_keys(conf_dir)
    for key in added:
        if not _known(cfg, key, added):
            raise XrobustError(f"invalid config: +{key} is not a config key ({_hint(cfg, key)})")
    resolved = OmegaConf.to_container(cfg, resolve=True)
    resolved.pop("hydra", None)
    _walk(resolved, "")


def added_keys(conf_dir: str) -> list[str]:
    """The keys the command line added with `+key=value` (not `+group=option`, which picks a config file)."""
    if not HydraConfig.initialized():
        return []
    overrides = OverridesParser.create().parse_overrides(list(HydraConfig.get().overrides.task))
    keys = []
    for override in overrides:
        key = override.key_or_group
        if override.is_add() and override.package is None and not Path(conf_dir, *key.split("/")).is_dir():
            keys.append(key)
    return keys


def accepted(target: str) -> set[str] | None:
    """The keyword arguments `target` takes; None when it takes any (**kwargs: passed on, unknown here)."""
    try:
        obj = get_object(target)
    except Exception as err:
        raise XrobustError(f"invalid config: _target_={target!r} cannot be imported ({err})") from None
    try:
        params = inspect.signature(obj).parameters.values()
    except (TypeError, ValueError):
        return None
    if any(p.kind == p.VAR_KEYWORD for p in params):
        return None
    return {p.name for p in params if p.kind != p.VAR_POSITIONAL}


def _fields(schema: type) -> set[str]:
    return {spec.name for spec in dataclasses.fields(schema) if spec.init}


def _known(cfg: DictConfig, key: str, added: list[str]) -> bool:
    """Whether something reads `key`; `intermediate.X` is read as the root's X for the intermediate stage."""
    if key.startswith(FREE_FORM):
        return True
    parent_key, _, leaf = key.rpartition(".")
    parent = OmegaConf.select(cfg, parent_key) if parent_key else cfg
    if isinstance(parent, DictConfig) and "_target_" in parent:
        names = accepted(str(parent._target_))
        # A node added whole (`+callbacks.peak._target_=...`): Hydra's own keys, then what its target takes.
        return names is None or leaf in names or leaf in HYDRA_KEYS
    if parent_key in SCHEMAS:
        return leaf in _fields(SCHEMAS[parent_key])
    if key.startswith("intermediate.") and key.count(".") > 1:
        rest = key.removeprefix("intermediate.")
        return _known(cfg, rest, added) or (rest not in added and OmegaConf.select(cfg, rest) is not None)
    return False


def _walk(node: Any, path: str) -> None:
    """Check each `_target_` node's keys against its callable, and each schema node's against its dataclass."""
    if isinstance(node, list):
        for index, item in enumerate(node):
            _walk(item, f"{path}[{index}]")
        return
    if not isinstance(node, dict):
        return
    schema = SCHEMAS.get(path)
    if "_target_" in node:
        _check_node(node, path, accepted(str(node["_target_"])), str(node["_target_"]))
        obj = get_object(str(node["_target_"]))
        if dataclasses.is_dataclass(obj):
            _nested_dataclasses(node, path, obj)
    elif schema is not None:
        _check_node(node, path, _fields(schema), schema.__name__)
    for name, value in node.items():
        if not f"{path}.{name}".lstrip(".").startswith(FREE_FORM):
            _walk(value, f"{path}.{name}".lstrip("."))


def _nested_dataclasses(node: dict, path: str, schema: type) -> None:
    """A dataclass field typed as a dataclass (noise.neighbours) holds that dataclass's fields only."""
    hints = typing.get_type_hints(schema)
    for spec in dataclasses.fields(schema):
        inner, value = hints.get(spec.name), node.get(spec.name)
        if dataclasses.is_dataclass(inner) and isinstance(value, dict):
            _check_node(value, f"{path}.{spec.name}", _fields(inner), inner.__name__)
            _nested_dataclasses(value, f"{path}.{spec.name}", inner)


def _check_node(node: dict, path: str, names: set[str] | None, owner: str) -> None:
    if names is None:
        return
    for key in node:
        if key not in names and key not in HYDRA_KEYS:
            near = difflib.get_close_matches(key, sorted(names), n=1)
            hint = f"; did you mean {path}.{near[0]}?" if near else ""
            raise XrobustError(f"invalid config: unknown key {path}.{key} ({owner} takes no {key!r}{hint})")


def _hint(cfg: DictConfig, key: str) -> str:
    """What the parent takes instead: `xrobust.noise.none.NoNoise takes no 'epss'; did you mean noise.eps?`."""
    parent_key, _, leaf = key.rpartition(".")
    parent = OmegaConf.select(cfg, parent_key) if parent_key else cfg
    if not isinstance(parent, DictConfig) and key.startswith("intermediate."):
        return _hint(cfg, key.removeprefix("intermediate."))
    siblings = [str(k) for k in parent if str(k) != leaf] if isinstance(parent, DictConfig) else []
    near = difflib.get_close_matches(leaf, siblings, n=1)
    owner = f"{parent._target_} takes no {leaf!r}" if isinstance(parent, DictConfig) and "_target_" in parent else ""
    owner = owner or f"{parent_key or 'the root config'} has no {leaf!r}"
    if near:
        return f"{owner}; did you mean {parent_key + '.' if parent_key else ''}{near[0]}?"
    return f"{owner}; '+' adds only what a _target_ takes, or entries of {', '.join(FREE_FORM[:-1])}"
