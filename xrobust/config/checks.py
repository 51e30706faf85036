"""Validate the composed config once at start-up, so a bad value fails with one line naming the field."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from xrobust.config.fields import require, typed
from xrobust.config.keys import check_keys
from xrobust.config.schemas import check_ranges
from xrobust.data.task import TaskSpec
from xrobust.diagnostics import certify, substitution
from xrobust.diagnostics.config import check as check_diagnostics
from xrobust.errors import SweepError
from xrobust.kinds.base import HEADS, SEQ2SEQ
from xrobust.lightning.checkpoint_io import KEEP_CHOICES
from xrobust.run.writable import check_writable

# The config tree; absolute, so the console scripts work from any directory.
CONF_DIR = str(Path(__file__).resolve().parents[2] / "conf")
BASIC_LAUNCHER = "hydra._internal.core_plugins.basic_launcher.BasicLauncher"
# finetune.method of conf/finetune/none.yaml: nothing is fitted, the job tests the weights as loaded.
NO_TRAINING = "none"


@dataclass(frozen=True)
class Field:
    """A scalar the run reads, its type and its range (`rule` says the range in words)."""

    key: str
    kind: type
    rule: str = ""
    ok: Callable[[Any], bool] = lambda _: True
    nullable: bool = False


def _fraction_or_count(value: Any) -> bool:
    return value >= 0 and (isinstance(value, int) or value <= 1)


# Checked before anything is resolved or loaded: a wrong type here would otherwise surface as a TypeError from an
# interpolation, or from Lightning after the model loaded. The Trainer's arguments are passed through untyped; the
# root's own keys and the typed groups (task, data, eval, optim, noise, callbacks) are typed at composition and say
# their ranges in their schemas (xrobust/config/schemas.py, check_ranges).
FIELDS = (
    Field("trainer.max_epochs", int, ">= -1 (-1: no limit)", lambda v: v >= -1, nullable=True),
    # The epochs of a halving sweep's rung (+callbacks.rung_stop, hydra/sweeper=halving; xrobust/sweep/rung.py).
    Field("callbacks.rung_stop.epochs", int, ">= 1", lambda v: v >= 1, nullable=True),
    Field("trainer.min_epochs", int, ">= 0", lambda v: v >= 0, nullable=True),
    Field("trainer.max_steps", int, ">= -1 (-1: no limit)", lambda v: v >= -1),
    Field("trainer.min_steps", int, ">= 0", lambda v: v >= 0, nullable=True),
    Field("trainer.num_nodes", int, ">= 1", lambda v: v >= 1),
    Field("trainer.accumulate_grad_batches", int, ">= 1", lambda v: v >= 1),
    Field("trainer.check_val_every_n_epoch", int, ">= 1", lambda v: v >= 1, nullable=True),
    Field("trainer.num_sanity_val_steps", int, ">= -1", lambda v: v >= -1, nullable=True),
    Field("trainer.log_every_n_steps", int, ">= 1", lambda v: v >= 1, nullable=True),
    Field("trainer.gradient_clip_val", float, ">= 0", lambda v: v >= 0, nullable=True),
    *(
        Field(
            f"trainer.limit_{loop}_batches", float, ">= 0 (batches) or in [0, 1] (a fraction)", _fraction_or_count, True
        )
        for loop in ("train", "val", "test", "predict")
    ),
    Field(
        "trainer.val_check_interval",
        float,
        ">= 1 (batches) or in (0, 1] (a fraction of an epoch)",
        lambda v: v >= 1 if isinstance(v, int) else 0 < v <= 1,
        nullable=True,
    ),
)


def validate(cfg: DictConfig) -> TaskSpec:
    """Check every hyper-parameter the run depends on, its keys and its run folder; returns the validated task."""
    for field in FIELDS:
        value = OmegaConf.select(cfg, field.key, throw_on_missing=False)
        if not (field.nullable and value is None):
            typed(value, field.key, field.kind, field.rule, field.ok)
    check_ranges(cfg)
    task = TaskSpec.from_config(cfg.task)
    head = cfg.model.get("head", "classifier")
    require(head in HEADS, "model.head", head, f"must be one of {', '.join(HEADS)}")
    if head == SEQ2SEQ:
        task.prompt_template()  # the one line now when task.template names no template
    check_splits(cfg.data)
    scale = cfg.eval.perturbation.get("eps_scale", "relative")
    require(scale in ("relative", "absolute"), "eval.perturbation.eps_scale", scale, "must be relative or absolute")
    keep = cfg.checkpoint.keep_after_success
    require(keep in KEEP_CHOICES, "checkpoint.keep_after_success", keep, f"must be one of {', '.join(KEEP_CHOICES)}")
    ckpt = cfg.ckpt_path
    require(
        ckpt in (None, "last") or (isinstance(ckpt, str) and Path(ckpt).exists()),
        "ckpt_path",
        ckpt,
        "must be null, last or an existing checkpoint file or folder",
    )
    mixture = cfg.model.get("training_mixture")
    require(
        mixture is None or (OmegaConf.is_list(mixture) and all(isinstance(name, str) for name in mixture)),
        "model.training_mixture",
        mixture,
        "must be a list of task names (conf/task/<name>.yaml), [] for none",
    )
    check_launch(cfg.trainer)
    check_no_training(cfg)
    check_diagnostics(cfg, task)
    certify.check_config(cfg)
    substitution.check_config(cfg)
    check_keys(cfg, CONF_DIR)
    check_writable(Path(cfg.paths.output_dir))
    return task


def check_splits(data: DictConfig) -> None:
    """Train, select and test on different splits. A folder without a labelled test split (the XTREME layout) tests
    its dev files with data.heldout=true: selection on a held-out part of train-en, dev-en kept as a test."""
    require(
        data.train_split != data.test_split,
        "data.test_split",
        data.test_split,
        "must differ from data.train_split: testing on trained items measures nothing",
    )
    require(
        data.dev_split != data.train_split,
        "data.dev_split",
        data.dev_split,
        "must differ from data.train_split: selecting on trained items selects the most overfitted checkpoint",
    )
    require(
        data.dev_split != data.test_split or data.get("heldout", False),
        "data.dev_split",
        data.dev_split,
        f"must differ from data.test_split: selecting on {data.test_split} reports the set it was selected on; "
        "with no test split of its own, set data.heldout=true (select on a held-out part of train-en)",
    )


def check_no_training(cfg: DictConfig) -> None:
    """finetune=none tests the weights as loaded: only a head that the pretrained model already holds (the seq2seq
    LM ranking verbalized labels) predicts anything; a classifier head would be freshly initialised. An intermediate
    stage that trains nothing hands on the model unchanged."""
    if cfg.finetune.get("method") != NO_TRAINING:
        return
    head = cfg.model.get("head", "classifier")
    require(
        head == "seq2seq",
        "model.head",
        head,
        "finetune=none tests the model as loaded, and a classifier head is a fresh random one: use "
        "model.head=seq2seq (rank classification of the verbalized labels), or train it (finetune=full|lora)",
    )
    stage = cfg.get("intermediate")
    if stage:
        method = (stage.get("finetune") or {}).get("method", NO_TRAINING)
        require(
            method != NO_TRAINING,
            "intermediate",
            stage.get("name"),
            "with finetune=none the intermediate stage would train nothing: set +intermediate.finetune.method=full",
        )


def check_launch(trainer: DictConfig) -> None:
    """Refuse a sweep on Hydra's basic launcher that would start several processes per job: Lightning relaunches
    the command line for the other ranks, and each of them would start the whole sweep again on its own."""
    if not HydraConfig.initialized():
        return
    hydra = HydraConfig.get()
    if hydra.mode != RunMode.MULTIRUN or hydra.launcher.get("_target_") != BASIC_LAUNCHER:
        return
    devices = trainer.devices
    one_device = devices in (1, "1") or (not isinstance(devices, int | str) and len(devices) == 1)
    if not one_device or trainer.num_nodes != 1:
        raise SweepError(
            f"a multirun (-m) with trainer.devices={devices} trainer.num_nodes={trainer.num_nodes} on Hydra's basic "
            "launcher would start the sweep again on every rank; use hydra/launcher=slurm (one job per sweep "
            "point, the ranks started by SLURM), or run each job on its own without -m, or set trainer.devices=1"
        )
