"""`python -m xrobust.train [overrides]`: compose the config, fit the stages it names, test, write results."""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import hydra
import torch.distributed
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from lightning_fabric.utilities.rank_zero import rank_zero_only
from omegaconf import DictConfig
from pytorch_lightning.utilities.exceptions import SIGTERMException
from torch.distributed.checkpoint.api import CheckpointException

from xrobust import console
from xrobust.config.checks import CONF_DIR, validate
from xrobust.config.composition import schema_errors
from xrobust.diagnostics import hooks as diagnostics
from xrobust.errors import SweepError, XrobustError
from xrobust.lightning.checkpoint_io import keep_after_success, set_aside_torn
from xrobust.lightning.loggers import finish_failed_run, log_summary
from xrobust.models.loading import resolve_pretrained
from xrobust.run import folder as run_folder
from xrobust.run.failures import clear_failure, record_failure
from xrobust.run.hashing import config_hash
from xrobust.run.job import Job
from xrobust.run.results import (
    PREDICTIONS_FILE,
    RESULTS_FILE,
    collect_results,
    completed_hash,
    completed_results,
    format_table,
    stage_record,
    write_predictions,
)
from xrobust.run.run_result import RunResult
from xrobust.run.stages import fitted_stage, run_intermediate_stage

log = logging.getLogger("xrobust")


def run(cfg: DictConfig, weights: dict | None = None) -> dict | None:
    """One job: returns its results (on rank 0), or None when the same config already finished in this folder.
    `weights` ({job, checkpoint}: a finished job's kept weights, from xrobust/eval.py) are tested instead of fitting;
    results.json records them as `tested_weights`."""
    task = validate(cfg)
    out_dir = Path(cfg.paths.output_dir)
    digest = config_hash(cfg)
    if cfg.skip_completed and completed_hash(out_dir) == digest:
        log.info("skipping: %s already holds results for this config (%s)", out_dir / RESULTS_FILE, digest)
        return None
    if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
        run_folder.claim(out_dir, list(HydraConfig.get().overrides.task), write=rank_zero_only.rank == 0)
    if cfg.ckpt_path == "last" and rank_zero_only.rank == 0:
        set_aside_torn(out_dir)
    pretrained = resolve_pretrained(cfg.model)
    stages = []
    if cfg.intermediate:
        pretrained, stage = run_intermediate_stage(cfg, pretrained, out_dir / "stages" / cfg.intermediate.name)
        stages.append(stage)

    with fitted_stage(cfg, task, pretrained, weights["checkpoint"] if weights else None) as job:
        started = time.perf_counter()
        job.trainer.test(job.module, datamodule=job.datamodule, ckpt_path=job.selected, verbose=False)
        wall_time_s = {"train": round(job.train_seconds, 2), "test": round(time.perf_counter() - started, 2)}
        tested = diagnostics.after_test(job.module, job.datamodule, cfg.eval, trainer=job.trainer)
        if not job.trainer.is_global_zero:
            return None
        stages.append(stage_record("target", cfg, task, job, pretrained))
        result = collect_results(cfg, task, job, digest, wall_time_s, stages)
        result.tested_weights = weights
        result.diagnostics = diagnostics.write(out_dir, diagnostics.merge(job.diagnostics, tested))
        selected = job.trainer.checkpoint_callback.best_model_path if job.trainer.checkpoint_callback else None
        write_outputs(cfg, job, result, selected)
        results = result.to_dict()
        log_summary(job.logger, results)
        keep = cfg.checkpoint.keep_after_success
        keep_after_success(out_dir / "checkpoints", selected, keep)
        for stage_checkpoints in out_dir.glob("stages/*/checkpoints"):  # the stage's encoder folder is kept
            keep_after_success(stage_checkpoints, None, "all" if keep == "all" else "none")
        print(format_table(results))
        print(f"results: {out_dir / RESULTS_FILE}")
    return results


def write_outputs(cfg: DictConfig, job: Job, result: RunResult, selected: str | None) -> None:
    """predictions.tsv, then results.json. A folder that stopped taking writes loses nothing: the checkpoints stay
    (nothing is cut down before results.json exists) and the one line says where they are."""
    out_dir = Path(cfg.paths.output_dir)
    target = out_dir / PREDICTIONS_FILE
    try:
        if cfg.eval.save_predictions:
            module = job.module
            perturbed = module.perturbed_predictions if module.test_perturbation is not None else None
            write_predictions(target, module.test_predictions, perturbed, module.kind)
        target = out_dir / RESULTS_FILE
        result.write(target)
    except OSError as err:
        kept = selected or str(out_dir / "checkpoints")
        raise XrobustError(
            f"could not write {target} ({err.strerror or err}); the trained model is kept in {kept}: make the "
            "folder writable and run the same command again (it resumes there and only tests)"
        ) from None


def selection_metric(cfg: DictConfig, results: dict | None) -> float | None:
    """The English-dev accuracy of the selected checkpoint (results.json's model_selection.best_val_acc): what a
    sweeper optimises, never a target language. A skipped job reads it from the results it finished with."""
    if results is not None:
        return results["model_selection"]["best_val_acc"]
    stored = completed_results(Path(cfg.paths.output_dir))
    if stored is None or stored.config_hash != config_hash(cfg):
        return None
    return stored.model_selection.best_val_acc


def failed_in_sweep(cfg: DictConfig, err: Exception, exit_status: int) -> None:
    """A multirun job's failure: recorded in its folder (failed.json) and logged; the sweep goes on."""
    line = record_failure(Path(cfg.paths.output_dir), err, exit_status)
    finish_failed_run()
    if not isinstance(err, XrobustError):
        log.error("job failed", exc_info=err)
    console.say(f"xrobust: error: {line} (job {cfg.paths.output_dir}; the sweep goes on)")


@schema_errors
@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="train")
def main(cfg: DictConfig) -> float | None:
    return guarded(cfg, lambda: selection_metric(cfg, run(cfg)))


def guarded(cfg: DictConfig, job: Callable[[], float | None]) -> float | None:
    """Run a job as the entry points do (train, eval): a bad input is one `xrobust: error:` line and exit 2; in a
    multirun a failed job is recorded in its folder and the sweep goes on."""
    console.quiet_known_warnings()
    in_sweep = HydraConfig.get().mode == RunMode.MULTIRUN
    clear_failure(Path(cfg.paths.output_dir))
    try:
        return job()
    except SweepError as err:
        console.say(f"xrobust: error: {err}")
        sys.exit(2)
    except XrobustError as err:
        if in_sweep:
            return failed_in_sweep(cfg, err, 2)
        console.say(f"xrobust: error: {err}")
        if torch.distributed.is_initialized():
            exit_without_finalizing(2)
        sys.exit(2)
    except SIGTERMException as err:
        saved = getattr(err, "checkpoint", None)
        where = f"checkpoint saved as {saved}" if saved else "no step since the start, so no new checkpoint"
        console.say(f"xrobust: stopped by SIGTERM; {where}; run the same command to resume")
        sys.exit(143)
    except CheckpointException as err:  # a BaseException: reading or writing a distributed checkpoint failed
        error = XrobustError(f"distributed checkpoint failed: {checkpoint_failure(err)}")
        error.step = getattr(err, "step", None)
        if in_sweep:
            return failed_in_sweep(cfg, error, 1)
        console.say(f"xrobust: error: {error}")
        exit_without_finalizing(1)
    except Exception as err:
        if not in_sweep:
            raise
        return failed_in_sweep(cfg, err, 1)


def exit_without_finalizing(status: int) -> None:
    """End a distributed process that failed on every rank (a checkpoint, a bad input met after the process group
    started): its W&B run, logs and streams are closed here, and the interpreter's finalization is skipped. With
    the process group's native threads still alive it can abort (a failed checkpoint exited -6 instead of 1, seen
    twice under load, with or without destroy_process_group first)."""
    finish_failed_run()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


def checkpoint_failure(err: CheckpointException) -> str:
    """The first rank's error, in one line: the exception's own text is every rank's traceback."""
    rank, (first, _) = min(err.failures.items(), key=lambda item: item[0])
    text = " ".join(str(first).split())
    return f"rank {rank}: {type(first).__name__}: {text} (ranks failing: {sorted(err.failures)})"


if __name__ == "__main__":
    main()
