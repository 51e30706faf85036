"""Experiment loggers that need more than a `_target_`: W&B offline by default, one run per sweep job; CSV logs
that a resumed run appends to."""

from __future__ import annotations

import csv
import os
import sys
import uuid
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from lightning_fabric.utilities.rank_zero import rank_zero_only
from pytorch_lightning.loggers import CSVLogger, Logger, WandbLogger
from pytorch_lightning.loggers.csv_logs import ExperimentWriter
from pytorch_lightning.loggers.logger import rank_zero_experiment

from xrobust.atomic import atomic_write_text
from xrobust.kinds.base import log_name
from xrobust.run.run_result import HEADLINE

RUN_ID_FILE = "wandb_run_id"


def wandb_logger(
    project: str,
    save_dir: str,
    name: str | None = None,
    group: str | None = None,
    tags: list[str] | None = None,
    **kwargs,
) -> WandbLogger:
    """W&B logger whose mode follows WANDB_MODE and is offline when it is unset (no account needed). The jobs of a
    multirun share a group, the sweep folder, unless `group` (WANDB_RUN_GROUP) names one. The run id is the run
    folder's own (run_id), resumed with resume="allow": a requeue or a resume continues the job's one run."""
    kwargs.setdefault("id", run_id(Path(save_dir)))
    kwargs.setdefault("resume", "allow")
    return WandbLogger(
        project=project,
        save_dir=save_dir,
        name=name,
        group=group or sweep_group(),
        tags=list(tags or []),
        mode=os.environ.get("WANDB_MODE", "offline"),
        **kwargs,
    )


def run_id(run_dir: Path) -> str | None:
    """The W&B run id stored in the run folder (RUN_ID_FILE), created by rank 0 on the folder's first start. Other
    ranks log nothing to W&B; they read it when it is there."""
    path = run_dir / RUN_ID_FILE
    if path.is_file():
        return path.read_text(encoding="utf-8").strip()
    if rank_zero_only.rank != 0:
        return None
    new = uuid.uuid4().hex[:16]
    atomic_write_text(path, new + "\n")
    return new


def sweep_group() -> str | None:
    """The sweep folder of the running multirun job, None outside a multirun."""
    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return None
    return HydraConfig.get().sweep.dir


def summary_metrics(results: dict[str, Any]) -> dict[str, Any]:
    """What a dashboard charts a run by: the headline scores and the model's size, beside each language's, named by
    the task kind's headline metric (results.json `metrics`' first; accuracy without it), as the test logs name it."""
    model, metric = results["model"], next(iter(results.get("metrics") or {}), HEADLINE)
    summary = {
        f"english_{metric}": results["english_accuracy"],
        "target_mean": results["target_mean"],  # without the source language
        "all_language_mean": results.get("all_language_mean"),  # with it: the XTREME convention
        "transfer_gap": results["transfer_gap"],
        "model/num_parameters": model["num_parameters"],
        "model/non_embedding_parameters": model["non_embedding_parameters"],
        "model/trainable_parameters": model["trainable_parameters"],
    }
    return summary | {f"test/{log_name(metric)}/{lang}": score for lang, score in results["accuracy"].items()}


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


class ResumingCSVLogger(CSVLogger):
    """Lightning's CSVLogger, except that a resumed run continues metrics.csv: Lightning's own deletes the rows
    written before the interruption."""

    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = AppendingWriter(log_dir=self.log_dir)
        return self._experiment


class AppendingWriter(ExperimentWriter):
    """Keeps an existing metrics.csv; its rows from the resumed step on (logged after the checkpoint by the run
    that was stopped) are replaced by the resumed run's, so each step appears once."""

    def _check_log_dir_exists(self) -> None:
        self.earlier_rows: list[dict[str, str]] | None = None
        if self._fs.isfile(self.metrics_file_path):
            with self._fs.open(self.metrics_file_path, "r", newline="") as file:
                reader = csv.DictReader(file)
                self.earlier_rows = list(reader)
                self.earlier_keys = list(reader.fieldnames or [])

    def save(self) -> None:
        if self.earlier_rows is not None and self.metrics:
            resumed_at = min(int(metrics["step"]) for metrics in self.metrics)
            kept = [row for row in self.earlier_rows if int(float(row["step"])) < resumed_at]
            self.metrics_keys = sorted(set(self.metrics_keys) | set(self.earlier_keys))
            with self._fs.open(self.metrics_file_path, "w", newline="") as file:
                writer = csv.DictWriter(file, fieldnames=self.metrics_keys)
                writer.writeheader()
                writer.writerows(kept)
            self.earlier_rows = None
        super().save()
