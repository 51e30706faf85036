"""`python -m xrobust.train [overrides]`: compose the config, build what it names, fit, test, write results."""

from __future__ import annotations

import json
import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import hydra
import pytorch_lightning as pl
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.loggers import Logger
from pytorch_lightning.utilities.exceptions import SIGTERMException

from xrobust.config import CONF_DIR, validate
from xrobust.data.datamodule import TransferDataModule
from xrobust.data.task import TaskSpec
from xrobust.errors import XrobustError
from xrobust.loggers import finish_run
from xrobust.models.export import export_from_ranks
from xrobust.models.loading import resolve_pretrained
from xrobust.module import TransferModule
from xrobust.noise.base import NoiseMethod
from xrobust.results import (
    PREDICTIONS_FILE,
    RESULTS_FILE,
    completed_hash,
    config_hash,
    format_table,
    generalized_summary,
    git_sha,
    majority_class_accuracy,
    summarize_accuracy,
    write_json,
    write_predictions,
)
from xrobust.stages import intermediate_stage_config

log = logging.getLogger("xrobust")

STAGE_FILE = "stage.json"


def run(cfg: DictConfig) -> dict | None:
    """One job: returns its results, or None when the same config already finished in this folder."""
    task = validate(cfg)
    out_dir = Path(cfg.paths.output_dir)
    digest = config_hash(cfg)
    if cfg.skip_completed and completed_hash(out_dir) == digest:
        log.info("skipping: %s already holds results for this config (%s)", out_dir / RESULTS_FILE, digest)
        return None
    pretrained = resolve_pretrained(cfg.model)
    stages = []
    if cfg.intermediate:
        pretrained, stage = run_intermediate_stage(cfg, pretrained, out_dir / "stages" / cfg.intermediate.name)
        stages.append(stage)

    pl.seed_everything(cfg.seed, workers=True)
    job = build_job(cfg, task, pretrained)
    trainer, module, datamodule = job.trainer, job.module, job.datamodule
    started = time.perf_counter()
    trainer.fit(module, datamodule=datamodule, ckpt_path=cfg.ckpt_path)
    trained = time.perf_counter()
    best = "best" if trainer.checkpoint_callback and trainer.checkpoint_callback.best_model_path else None
    trainer.test(module, datamodule=datamodule, ckpt_path=best, verbose=False)
    tested = time.perf_counter()

    results = None
    if trainer.is_global_zero:
        results = collect_results(cfg, task, module, datamodule, trainer, digest, job.noise)
        results["wall_time_s"] = {"train": round(trained - started, 2), "test": round(tested - trained, 2)}
        results["stages"] = [*stages, stage_record("target", cfg, task, trainer, job.noise, pretrained)]
        if cfg.eval.save_predictions:
            write_predictions(out_dir / PREDICTIONS_FILE, module.test_predictions)
        write_json(out_dir / RESULTS_FILE, results)
        print(format_table(results))
        print(f"results: {out_dir / RESULTS_FILE}")
    finish_run(job.logger)
    return results


@dataclass
class Job:
    """Everything one training stage needs, built from the config."""

    noise: NoiseMethod
    datamodule: TransferDataModule
    module: TransferModule
    trainer: pl.Trainer
    logger: Logger | bool


def build_job(cfg: DictConfig, task: TaskSpec, pretrained: str) -> Job:
    """Instantiate what the config names; the run-time objects are passed to partials, so Hydra never
    converts them into configs."""
    noise = instantiate(cfg.noise, _partial_=True)()  # called outside Hydra: a bad value stays an XrobustError
    datamodule = instantiate(cfg.data, _partial_=True)(task=task, tokenizer_path=pretrained)
    datamodule.setup()
    module = instantiate(cfg.module, _partial_=True)(
        pretrained=pretrained,
        label_names=list(task.label_names),
        test_names=datamodule.test_names,
        noise=noise,
        multiple_choice=task.is_multiple_choice,
    )
    noise.setup(module.model, datamodule.tokenizer, datamodule.train_rows)
    datamodule.train_text_transform = noise.text_transform()
    callbacks = [instantiate(c) for c in cfg.callbacks.values()]
    logger = instantiate(cfg.logger) if cfg.get("logger") else False
    trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=logger)
    if logger:
        logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
    return Job(noise, datamodule, module, trainer, logger)


def run_intermediate_stage(cfg: DictConfig, pretrained: str, stage_dir: Path) -> tuple[str, dict]:
    """Fit the intermediate task, select on its English dev accuracy, save the encoder for the next stage.

    Resumable like a job: a finished stage (its encoder saved with the same stage config hash) is reused, an
    interrupted one resumes from its last checkpoint.
    """
    stage_cfg = intermediate_stage_config(cfg, stage_dir)
    task = validate(stage_cfg)
    encoder_dir = stage_dir / "encoder"
    digest = config_hash(stage_cfg)  # the stage config holds the model too
    marker = encoder_dir / STAGE_FILE
    if marker.is_file():
        record = json.loads(marker.read_text(encoding="utf-8"))
        if record.get("config_hash") == digest:
            log.info("intermediate stage %s: reusing %s", cfg.intermediate.name, encoder_dir)
            return str(encoder_dir), record
    pl.seed_everything(stage_cfg.seed, workers=True)
    job = build_job(stage_cfg, task, pretrained)
    job.trainer.fit(job.module, datamodule=job.datamodule, ckpt_path=stage_cfg.ckpt_path)
    has_best = job.trainer.checkpoint_callback and job.trainer.checkpoint_callback.best_model_path
    # Loads the selected weights into the module and measures them, so the record says what is handed on.
    job.trainer.validate(job.module, datamodule=job.datamodule, ckpt_path="best" if has_best else None, verbose=False)
    record = stage_record("intermediate", stage_cfg, task, job.trainer, job.noise, pretrained)
    record["config_hash"] = digest
    record["selected_val_acc"] = float(job.trainer.callback_metrics["val/acc"])
    record["encoder"] = str(encoder_dir)
    export_from_ranks(job.trainer, job.module, job.datamodule.tokenizer, encoder_dir)  # every rank takes part
    if job.trainer.is_global_zero:
        write_json(marker, record)
    job.trainer.strategy.barrier()
    finish_run(job.logger)
    return str(encoder_dir), record


def stage_record(name: str, cfg: DictConfig, task: TaskSpec, trainer: pl.Trainer, noise, pretrained: str) -> dict:
    return {
        "stage": name,
        "task": task.name,
        "noise": noise.params(),
        "data_source": cfg.data.local_dir or task.hub_id,
        "initialized_from": str(pretrained),
        "epochs_run": trainer.current_epoch,
        "steps_run": trainer.global_step,
    }


def collect_results(cfg, task, module, datamodule, trainer, digest, noise) -> dict:
    standard = {lang: r for lang, r in module.test_results.items() if lang in task.languages}
    accuracy = {lang: r["accuracy"] for lang, r in standard.items()}
    english, target_mean, gap = summarize_accuracy(accuracy, task.source_language)
    total, trainable = module.num_parameters, module.trainable_parameters
    checkpoint = trainer.checkpoint_callback
    best_score = checkpoint.best_model_score if checkpoint else None
    results = {
        "config_hash": digest,
        "task": task.name,
        "task_label": cfg.task_label,
        "task_kind": task.kind,
        "task_group": OmegaConf.to_container(cfg.task_group) if cfg.task_group else None,
        "model": {
            "name": cfg.model.name,
            "pretrained": str(cfg.model.pretrained),
            "num_parameters": total,
            "trainable_parameters": trainable,
        },
        "noise": noise.params(),
        "seed": cfg.seed,
        "source_language": task.source_language,
        "data_source": datamodule.source_description,
        "data_provenance": datamodule.data_provenance,
        "model_selection": {
            "on": datamodule.selection_source,
            "best_val_acc": float(best_score) if best_score is not None else None,
            "epochs_run": trainer.current_epoch,
            "steps_run": trainer.global_step,
        },
        "accuracy": accuracy,
        "n_examples": {lang: r["n"] for lang, r in standard.items()},
        "majority_class_accuracy": {
            lang: majority_class_accuracy(datamodule.test_sets[lang].with_format(None)["labels"]) for lang in standard
        },
        "english_accuracy": english,
        "target_mean": target_mean,
        "transfer_gap": gap,
    }
    if datamodule.generalized_languages:
        results["generalized"] = generalized_summary(
            datamodule.generalized_languages, module.test_results, datamodule.generalized_excluded
        )
    if module.test_perturbation is not None:
        perturbed = {lang: r["perturbed_accuracy"] for lang, r in standard.items()}
        results["perturbation"] = dict(module.test_perturbation)
        results["perturbed_accuracy"] = perturbed
        results["perturbed_target_mean"] = summarize_accuracy(perturbed, task.source_language)[1]
    return results | {
        "truncated_examples": datamodule.truncation_counts(),
        "git_sha": git_sha(),
        "predictions_file": PREDICTIONS_FILE if cfg.eval.save_predictions else None,
        "config": OmegaConf.to_container(cfg, resolve=True),
    }


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="train")
def main(cfg: DictConfig) -> None:
    try:
        run(cfg)
    except XrobustError as err:
        print(f"xrobust: error: {err}", file=sys.stderr)
        sys.exit(2)
    except SIGTERMException:
        checkpoints = Path(cfg.paths.output_dir) / "checkpoints"
        print(
            f"xrobust: stopped by SIGTERM; checkpoint saved in {checkpoints}; run the same command to resume",
            file=sys.stderr,
        )
        sys.exit(143)


if __name__ == "__main__":
    main()
