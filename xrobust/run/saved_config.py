"""A finished job's saved config (.hydra/config.yaml), brought up to today's code for xrobust-eval ckpt_path=...

A job saved before a key existed (data.packing, eval.alignment, ...) or before issue #29's layout move renamed the
modules its `_target_`s name would not build under today's code. Its own values all stay: today's config composed
from the job's own overrides supplies only the keys the saved one lacks, and the moved classes get their new paths.
"""

from __future__ import annotations

from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig, OmegaConf

from xrobust.config.checks import CONF_DIR
from xrobust.errors import XrobustError

JOB_CONFIG = Path(".hydra") / "config.yaml"
JOB_OVERRIDES = Path(".hydra") / "overrides.yaml"
# Module paths before issue #29's layout move -> after, as a `_target_` names them.
MOVED_TARGETS = {
    "xrobust.module.": "xrobust.lightning.module.",
    "xrobust.checkpoint_io.": "xrobust.lightning.checkpoint_io.",
    "xrobust.selection.": "xrobust.lightning.latest_best.",
    "xrobust.callbacks.": "xrobust.lightning.callbacks.",
    "xrobust.requeue.": "xrobust.lightning.requeue.",
    "xrobust.loggers.": "xrobust.lightning.loggers.",
    "xrobust.sharding.": "xrobust.lightning.sharding.",
}


def moved(target: str) -> str:
    """A `_target_` under today's module layout."""
    for old, new in MOVED_TARGETS.items():
        if target.startswith(old):
            return new + target[len(old) :]
    return target


def _move_targets(node: object) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "_target_" and isinstance(value, str):
                node[key] = moved(value)
            else:
                _move_targets(value)
    elif isinstance(node, list):
        for value in node:
            _move_targets(value)


def current_config(overrides: list[str]) -> DictConfig:
    """conf/train.yaml composed with these overrides by today's code (inside a running Hydra app or outside one)."""
    if GlobalHydra.instance().is_initialized():
        return compose(config_name="train", overrides=overrides)
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="train", overrides=overrides)


def saved_config(job_dir: Path) -> DictConfig:
    """The job's saved config, every value its own, completed with the keys today's config has and it lacks."""
    saved = OmegaConf.to_container(OmegaConf.load(job_dir / JOB_CONFIG))
    _move_targets(saved)
    overrides_file = job_dir / JOB_OVERRIDES
    if not overrides_file.is_file():
        return OmegaConf.create(saved)
    overrides = [str(line) for line in OmegaConf.load(overrides_file)]
    try:
        today = current_config(overrides)
    except Exception as error:  # an option of the job's that today's configs no longer have
        raise XrobustError(
            f"invalid config: {overrides_file} no longer composes under today's configs ({error}); test it with the "
            "code that ran it"
        ) from error
    merged = OmegaConf.merge(OmegaConf.to_container(today), saved)
    return OmegaConf.create(OmegaConf.to_container(merged))
