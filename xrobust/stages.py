"""Intermediate-task training: the config of a stage that fine-tunes the encoder on another task first.

`intermediate=xnli task=xcopa` trains on XNLI, keeps the encoder (not the head) and fine-tunes it on XCOPA. The
stage's config is the root config with the stage's `task` and `noise` swapped in whole and every other key of
`conf/intermediate/<name>.yaml` (data, trainer, optim, ...) merged over the root's, so interpolations such as
`${task.text_fields}` in a noise config resolve against the stage's own task.
"""

from __future__ import annotations

import copy
from pathlib import Path

from omegaconf import DictConfig, OmegaConf, open_dict

from xrobust.errors import XrobustError

REPLACED = ("task", "noise")
STAGE_ONLY = ("name",)


def intermediate_stage_config(cfg: DictConfig, stage_dir: Path) -> DictConfig:
    """The full config of the intermediate stage, writing under `stage_dir`."""
    stage = cfg.intermediate
    for key in ("name", *REPLACED):
        if stage.get(key) is None:
            raise XrobustError(f"invalid config: intermediate.{key} is missing (see conf/intermediate/)")
    stage_cfg = copy.deepcopy(cfg)
    with open_dict(stage_cfg):
        stage_cfg.intermediate = None
        stage_cfg.task_label = "${task.name}"
        for key in REPLACED:
            stage_cfg[key] = copy.deepcopy(stage[key])
        merged = {
            k: v for k, v in OmegaConf.to_container(stage, resolve=False).items() if k not in (*REPLACED, *STAGE_ONLY)
        }
        stage_cfg.merge_with(merged)
        stage_cfg.paths.output_dir = str(stage_dir)
        stage_cfg.data.with_test_sets = False
    return stage_cfg
