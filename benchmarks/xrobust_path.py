"""The xrobust path of the benchmarks: the config composed from conf/, the job built as xrobust.train builds it
(xrobust.run.stages.build_job: datamodule, module of the task's kind, noise, Trainer)."""

from __future__ import annotations

import tempfile
import time

import torch

from benchmarks.measure import PaddingMeter, Spec, compose_run, evaluation_figures, profiled, training_figures


def run_xrobust(spec: Spec) -> dict:
    """The path users run: config composed from conf/, the real datamodule, module and Lightning Trainer."""
    import pytorch_lightning as pl
    from transformers import DataCollatorWithPadding

    from xrobust.config.checks import validate
    from xrobust.run.stages import build_job

    out = tempfile.mkdtemp(prefix="xrobust-bench-")
    overrides = [
        f"task={spec.task}",
        f"data.local_dir={spec.data_dir if spec.data_dir else 'null'}",
        f"data.test_split={spec.test_split}",
        # Testing on the dev files: nothing is selected here (no validation), but the config refuses to score a
        # selection set, so the held-out part of train-en stands as the selection set it never uses.
        *(["data.heldout=true"] if spec.test_split == "dev" else []),
        f"data.batch_size={spec.batch_size}",
        f"data.eval_batch_size={spec.eval_batch_size}",
        f"data.max_length={spec.max_length}",
        f"seed={spec.seed}",
        f"optim.lr={spec.lr}",
        f"optim.weight_decay={spec.weight_decay}",
        f"optim.warmup_ratio={spec.warmup_ratio}",
        "logger=none",
        # validation and checkpoints are outside the timed work (the HF paths skip them too)
        "trainer.limit_val_batches=0",
        "trainer.enable_checkpointing=false",
        "trainer.enable_progress_bar=false",
        "trainer.enable_model_summary=false",
        f"trainer.max_steps={-1 if spec.epochs else max(spec.steps, 1)}",
        f"trainer.max_epochs={spec.epochs or 1000}",
        # the spec's precision, whatever this machine's default (trainer/cpu.yaml); --override changes it
        f"trainer.precision={spec.precision}",
        *([f"paths.cache_dir={spec.cache_dir}"] if spec.cache_dir else []),
        *([f"model.pretrained={spec.model_dir}", "model.embedded=null"] if spec.model_dir else []),
        *spec.overrides,
    ]
    cfg = compose_run(overrides, out)
    task = validate(cfg)
    keep = spec.max_eval_examples or None

    def trim_and_meter(datamodule) -> None:
        """Test the target languages only (their first max_eval_examples items), through the padding meter."""
        datamodule.test_sets = {
            lang: rows.select(range(min(keep or len(rows), len(rows))))
            for lang, rows in datamodule.test_sets.items()
            if lang in task.target_languages
        }
        if spec.pad_to_max_length:
            datamodule.collate = DataCollatorWithPadding(
                datamodule.tokenizer, padding="max_length", max_length=spec.max_length
            )
        datamodule.collate = PaddingMeter(datamodule.collate)

    class StepClock(pl.Callback):
        """The end of each training step; on a GPU once its kernels are done, not when they are queued."""

        def __init__(self):
            self.stamps: list[float] = []

        def on_train_batch_end(self, trainer, pl_module, *args, **kwargs):
            if pl_module.device.type == "cuda":
                torch.cuda.synchronize(pl_module.device)
            self.stamps.append(time.perf_counter())

    clock = StepClock()
    # The job as xrobust.train builds it, with the step clock as its only callback.
    job = build_job(cfg, task=task, callbacks=[clock], edit_data=trim_and_meter)
    datamodule, module, trainer, meter = job.datamodule, job.module, job.trainer, job.datamodule.collate
    if not spec.dropout:
        for layer in module.model.modules():
            if isinstance(layer, torch.nn.Dropout):
                layer.p = 0.0
    result: dict = {
        "prep_s": job.timings["data"],
        "setup_s": job.timings["data_setup"],
        "trainable_parameters": sum(p.numel() for p in module.parameters() if p.requires_grad),
    }
    if spec.steps or spec.epochs:
        fit_started = time.perf_counter()
        with profiled(spec.profile, result, "train_profile"):
            trainer.fit(module, datamodule=datamodule)
        result |= training_figures(clock.stamps, len(datamodule.train_set), spec, meter)
        result["first_step_s"] = clock.stamps[0] - fit_started
    if spec.save_model_dir:
        module.model.save_pretrained(spec.save_model_dir)
        datamodule.tokenizer.save_pretrained(spec.save_model_dir)
    if spec.evaluate:
        if spec.warm_eval:
            started = time.perf_counter()
            trainer.test(module, datamodule=datamodule, verbose=False)
            result["first_eval_s"] = time.perf_counter() - started
        meter.clear()
        started = time.perf_counter()
        with profiled(spec.profile, result, "eval_profile"):
            trainer.test(module, datamodule=datamodule, verbose=False)
        seconds = time.perf_counter() - started
        predictions = {lang: {i: p for i, _, p in rows} for lang, rows in module.test_predictions.items()}
        gold = {lang: {i: g for i, g, _ in rows} for lang, rows in module.test_predictions.items()}
        result |= evaluation_figures(predictions, gold, seconds, meter)
    return result
