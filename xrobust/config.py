"""Validate the composed config once at start-up, so a bad value fails with one line naming the field."""

from __future__ import annotations

from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from xrobust.checkpoint_io import KEEP_CHOICES
from xrobust.data.task import TaskSpec
from xrobust.errors import SweepError
from xrobust.validation import require

# The config tree; absolute, so the console scripts work from any directory.
CONF_DIR = str(Path(__file__).resolve().parents[1] / "conf")
BASIC_LAUNCHER = "hydra._internal.core_plugins.basic_launcher.BasicLauncher"


def validate(cfg: DictConfig) -> TaskSpec:
    """Check every hyper-parameter the run depends on; returns the validated task."""
    task = TaskSpec.from_config(cfg.task)
    optim, data = cfg.optim, cfg.data
    require(optim.lr > 0, "optim.lr", optim.lr, "must be > 0")
    require(optim.lr_scale > 0, "optim.lr_scale", optim.lr_scale, "must be > 0")
    require(optim.weight_decay >= 0, "optim.weight_decay", optim.weight_decay, "must be >= 0")
    require(0 <= optim.warmup_ratio < 1, "optim.warmup_ratio", optim.warmup_ratio, "must lie in [0, 1)")
    require(0 < data.val_fraction < 1, "data.val_fraction", data.val_fraction, "must lie in (0, 1)")
    require(data.batch_size >= 1, "data.batch_size", data.batch_size, "must be >= 1")
    require(data.eval_batch_size >= 1, "data.eval_batch_size", data.eval_batch_size, "must be >= 1")
    require(data.max_length >= 8, "data.max_length", data.max_length, "must be >= 8")
    require(data.num_workers >= 0, "data.num_workers", data.num_workers, "must be >= 0")
    require(isinstance(cfg.seed, int), "seed", cfg.seed, "must be an integer")
    require(
        cfg.data.train_split != cfg.data.test_split,
        "data.test_split",
        cfg.data.test_split,
        "must differ from data.train_split: testing on trained items measures nothing",
    )
    scale = cfg.eval.perturbation.get("eps_scale", "relative")
    require(scale in ("relative", "absolute"), "eval.perturbation.eps_scale", scale, "must be relative or absolute")
    keep = cfg.checkpoint.keep_after_success
    require(keep in KEEP_CHOICES, "checkpoint.keep_after_success", keep, f"must be one of {', '.join(KEEP_CHOICES)}")
    check_launch(cfg.trainer)
    return task


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
