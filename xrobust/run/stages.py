"""Training stages: one fit-a-stage sequence (seed -> build -> fit -> select the dev-en best checkpoint -> finish)
behind both the job (xrobust/train.py) and the intermediate stage.

`intermediate=xnli task=xcopa` trains on XNLI, keeps the encoder (not the head) and fine-tunes it on XCOPA. The
stage's config is the root config with the stage's `task` and `noise` swapped in whole and every other key of
`conf/intermediate/<name>.yaml` (data, trainer, optim, ...) merged over the root's, so interpolations such as
`${task.text_fields}` in a noise config resolve against the stage's own task.
"""

from __future__ import annotations

import copy
import json
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytorch_lightning as pl
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict

from xrobust.config.checks import NO_TRAINING, validate
from xrobust.data.datamodule import TransferDataModule
from xrobust.data.task import TaskSpec
from xrobust.diagnostics.hooks import before_training
from xrobust.errors import XrobustError
from xrobust.lightning.loggers import finish_run
from xrobust.models.export import export_from_ranks
from xrobust.models.loading import resolve_pretrained
from xrobust.run.hashing import config_hash
from xrobust.run.job import Job
from xrobust.run.results import early_stopped, stage_record, write_json

log = logging.getLogger("xrobust")

STAGE_FILE = "stage.json"
REPLACED = ("task", "noise")
STAGE_ONLY = ("name",)


def build_job(
    cfg: DictConfig,
    pretrained: str | None = None,
    *,
    task: TaskSpec | None = None,
    callbacks: list[pl.Callback] | None = None,
    edit_data: Callable[[TransferDataModule], None] | None = None,
) -> Job:
    """The one way to build a job from its config (the entry point, the intermediate stage, the benchmarks): seed,
    then build in the order that matters: the data (its tokenizer and test sets name the module's), the module
    (of the task's kind), the noise method on the module's embeddings and the training rows, its text transform
    on the data, then the callbacks, logger and Trainer. Nothing is fitted.

    pretrained: the weights to start from; None: the config's model (built or downloaded, resolve_pretrained).
    task: the task as validate(cfg) returned it; None: validate(cfg) here.
    callbacks: the Trainer's callbacks instead of cfg.callbacks (a benchmark timing the bare loop).
    edit_data: called on the set-up data module before the module is built (a benchmark trimming its test sets).
    """
    task = validate(cfg) if task is None else task
    pretrained = resolve_pretrained(cfg.model) if pretrained is None else pretrained
    pl.seed_everything(cfg.seed, workers=True)
    # The run-time objects are passed to partials, so Hydra never converts them into configs.
    noise = instantiate(cfg.noise, _partial_=True)()  # called outside Hydra: a bad value stays an XrobustError
    started = time.perf_counter()
    datamodule = instantiate(cfg.data, _partial_=True)(task=task, tokenizer_path=pretrained)
    loaded = time.perf_counter()
    datamodule.setup()
    timings = {"data": time.perf_counter() - started, "data_setup": time.perf_counter() - loaded}
    if edit_data is not None:
        edit_data(datamodule)
    module = instantiate(cfg.module, _partial_=True)(
        pretrained=pretrained,
        label_names=list(task.label_names),
        test_names=datamodule.test_names,
        noise=noise,
        task_kind=task.kind,
    )
    noise.setup(module.model, datamodule.tokenizer, datamodule.train_rows, scale=module.embedding_scale)
    datamodule.train_text_transform = noise.text_transform()
    if callbacks is None:
        callbacks = [instantiate(c) for c in cfg.callbacks.values()]
    logger = instantiate(cfg.logger) if cfg.get("logger") else False
    trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=logger)
    if logger:
        logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
    return Job(noise, datamodule, module, trainer, logger, timings=timings)


@contextmanager
def fitted_stage(cfg: DictConfig, task: TaskSpec, pretrained: str, weights: str | None = None) -> Iterator[Job]:
    """Seed, build, fit (resuming from cfg.ckpt_path) and select the checkpoint with the best dev-en accuracy.
    The caller evaluates the selection (ckpt_path=job.selected) inside the block; leaving it finishes the
    logger's run, so each stage of a sweep is one run. Nothing is fitted under finetune=none (the selection is
    the weights as loaded) or with `weights`, a finished job's kept checkpoint (the selection; xrobust/eval.py)."""
    job = build_job(cfg, pretrained, task=task)
    if job.datamodule.test_names:  # the model as built, before fit or before `weights` are loaded
        job.diagnostics = before_training(job.module, job.datamodule, cfg.eval, trainer=job.trainer)
    if weights is None and cfg.finetune.get("method") != NO_TRAINING:
        fit_and_select(cfg, job)
    else:
        job.selected = weights
    yield job
    finish_run(job.logger)


def fit_and_select(cfg: DictConfig, job: Job) -> None:
    """Fit (resuming from cfg.ckpt_path), then record the dev-en selection and, with eval.test_last, the last
    epoch's test results."""
    started = time.perf_counter()
    job.trainer.fit(job.module, datamodule=job.datamodule, ckpt_path=cfg.ckpt_path)
    job.train_seconds = time.perf_counter() - started
    job.early_stopped = early_stopped(job.trainer)
    checkpoint = job.trainer.checkpoint_callback
    if checkpoint and checkpoint.best_model_path:
        job.selected = "best"
    if checkpoint and checkpoint.best_model_score is not None:
        job.best_val_acc = float(checkpoint.best_model_score)
    if cfg.eval.get("test_last") and job.datamodule.test_names:
        # The module holds the last epoch's weights until the caller tests the selection (ckpt_path="best").
        job.trainer.test(job.module, datamodule=job.datamodule, ckpt_path=None, verbose=False)
        job.last_epoch_results = dict(job.module.test_results)


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
    with fitted_stage(stage_cfg, task, pretrained) as job:
        # Loads the selected weights into the module and measures them, so the record says what is handed on.
        job.trainer.validate(job.module, datamodule=job.datamodule, ckpt_path=job.selected, verbose=False)
        record = stage_record("intermediate", stage_cfg, task, job, pretrained)
        record["config_hash"] = digest
        record["selected_val_acc"] = float(job.trainer.callback_metrics["val/acc"])
        record["encoder"] = str(encoder_dir)
        export_from_ranks(job.trainer, job.module, job.datamodule.tokenizer, encoder_dir)  # every rank takes part
        if job.trainer.is_global_zero:
            write_json(marker, record)
        job.trainer.strategy.barrier()
    return str(encoder_dir), record


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
