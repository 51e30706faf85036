"""Experiment loggers that need more than a `_target_`: W&B offline by default, one run per sweep job."""

from __future__ import annotations

import os
import sys
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from pytorch_lightning.loggers import Logger, WandbLogger


def wandb_logger(
    project: str,
    save_dir: str,
    name: str | None = None,
    group: str | None = None,
    tags: list[str] | None = None,
    **kwargs,
) -> WandbLogger:
    """W&B logger whose mode follows WANDB_MODE and is offline when it is unset (no account needed). The jobs of a
    multirun share a group, the sweep folder, unless `group` (WANDB_RUN_GROUP) names one."""
    return WandbLogger(
        project=project,
        save_dir=save_dir,
        name=name,
        group=group or sweep_group(),
        tags=list(tags or []),
        mode=os.environ.get("WANDB_MODE", "offline"),
        **kwargs,
    )


def sweep_group() -> str | None:
    """The sweep folder of the running multirun job, None outside a multirun."""
    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return None
    return HydraConfig.get().sweep.dir


def summary_metrics(results: dict[str, Any]) -> dict[str, Any]:
    """What a dashboard charts a run by: the headline accuracies and the model's size, beside each language's."""
    model = results["model"]
    summary = {
        "english_accuracy": results["english_accuracy"],
        "target_mean": results["target_mean"],
        "transfer_gap": results["transfer_gap"],
        "model/num_parameters": model["num_parameters"],
        "model/non_embedding_parameters": model["non_embedding_parameters"],
        "model/trainable_parameters": model["trainable_parameters"],
    }
    return summary | {f"test/acc/{lang}": acc for lang, acc in results["accuracy"].items()}


def log_summary(logger: Logger | bool, results: dict[str, Any]) -> None:
    """Write the run's summary on W&B (other loggers keep what they logged)."""
    if isinstance(logger, WandbLogger):
        logger.experiment.summary.update(summary_metrics(results))


def finish_failed_run() -> None:
    """End the W&B run a failed job left open, so the next job of the sweep starts its own."""
    wandb = sys.modules.get("wandb")
    if wandb is not None and wandb.run is not None:
        wandb.run.finish(exit_code=1)


def finish_run(logger: Logger | None) -> None:
    """End this job's W&B run, so the next job of a multirun starts its own instead of appending to it."""
    if isinstance(logger, WandbLogger) and logger._experiment is not None:
        logger.experiment.finish()
