"""One measured run of one training + evaluation path, meant to run in its own process (so peak RSS is its own).

    python -m benchmarks.paths SPEC.json RESULT.json

Paths: `xrobust` (the real TransferDataModule + TransferModule + Lightning Trainer, composed from conf/ with
the spec's Hydra overrides), `hf` (the Hugging Face `Trainer` with `DataCollatorWithPadding`, what a user would
write instead) and `pad128` (the same `Trainer` with every pair padded to max length, the XTREME / Robust-XLT
recipe). Every path gets the same model folder, rows, batch size, max length, seed, optimizer settings and
number of steps. Timed: the training steps after `warmup_steps` (data loading, forward, backward, clipping,
AdamW, schedule), and the whole evaluation over the target languages; model loading, tokenization,
validation and checkpointing are outside both windows, for every path alike.
"""

from __future__ import annotations

import json
import resource
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
XNLI = ROOT.parent / "shared" / "data" / "xnli"


@dataclass
class Spec:
    """Everything one path run needs; the parent writes it as JSON, the child reads it back."""

    path: str = "xrobust"
    task: str = "xnli"
    data_dir: str | None = str(XNLI)  # None: the task's own source (the packaged sample for task=sample)
    test_split: str = "dev"
    steps: int = 20  # training steps; 0 evaluates the loaded weights only
    epochs: int = 0  # > 0: train this many full epochs instead of `steps`
    warmup_steps: int = 2  # untimed steps first (optimizer state allocation, first-touch costs)
    batch_size: int = 32
    eval_batch_size: int = 64
    max_length: int = 128
    seed: int = 1
    lr: float = 2e-4
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    max_eval_examples: int = 0  # per target language; 0 keeps every example
    evaluate: bool = True
    threads: int = 0  # torch threads; 0 keeps torch's default (the number of cores)
    overrides: list[str] = field(default_factory=list)  # extra Hydra overrides for the xrobust path
    pad_to_max_length: bool = False  # xrobust path only: the dynamic-padding lever turned off
    model_dir: str | None = None  # weights to load instead of the embedded me5-small (agreement check)
    save_model_dir: str | None = None  # write the trained classifier here (agreement check)
    cache_dir: str | None = None  # xrobust path: tokenization cache; None keeps XROBUST_HOME's
    profile: bool = False  # xrobust path: torch.profiler over training and evaluation (slows both; untimed use)


class PaddingMeter:
    """Wraps a collator and records each batch's padded and real token counts, in loading order."""

    def __init__(self, collate):
        self.collate = collate
        self.padded: list[int] = []
        self.real: list[int] = []

    def __call__(self, features):
        batch = self.collate(features)
        self.padded.append(int(batch["input_ids"].numel()))
        self.real.append(int(batch["attention_mask"].sum()))
        return batch

    def per_example(self, batches: int, examples: int) -> float | None:
        """Padded tokens per example over the first `batches` batches (a loader may fetch one ahead)."""
        return sum(self.padded[:batches]) / examples if self.padded and examples else None


def step_examples(num_examples: int, batch_size: int, steps: int) -> list[int]:
    """Examples in each step: full batches, except the last of every epoch (no drop_last in any path)."""
    per_epoch = -(-num_examples // batch_size)
    last = num_examples - (per_epoch - 1) * batch_size
    return [last if i % per_epoch == per_epoch - 1 else batch_size for i in range(steps)]


def train_rate(stamps: list[float], sizes: list[int], warmup: int) -> float:
    """Examples per second over the steps after the first `warmup`: from the end of the last untimed step on."""
    if len(stamps) <= warmup or warmup < 1:
        raise ValueError(f"need more than warmup={warmup} >= 1 steps, got {len(stamps)}")
    return sum(sizes[warmup : len(stamps)]) / (stamps[-1] - stamps[warmup - 1])


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@contextmanager
def profiled(enabled: bool, result: dict, key: str):
    """Where the time goes, as torch.profiler's table of operators by self CPU time, stored in result[key]."""
    if not enabled:
        yield
        return
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profile:
        yield
    result[key] = profile.key_averages().table(sort_by="self_cpu_time_total", row_limit=12)


def load_task(spec: Spec):
    from hydra import compose, initialize_config_dir

    from xrobust.data.sources import make_source
    from xrobust.data.task import TaskSpec

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        task = TaskSpec.from_config(compose("train", overrides=[f"task={spec.task}"]).task)
    return task, make_source(task, spec.data_dir)


def target_rows(spec: Spec, task, source) -> dict:
    """The evaluation sets: every target language's test split, first `max_eval_examples` rows of each."""
    sets = {}
    for lang in task.target_languages:
        rows = source.load(spec.test_split, lang)
        if spec.max_eval_examples:
            rows = rows.select(range(min(spec.max_eval_examples, len(rows))))
        sets[lang] = rows
    return sets


def training_figures(stamps: list[float], num_examples: int, spec: Spec, meter: PaddingMeter) -> dict:
    sizes = step_examples(num_examples, spec.batch_size, len(stamps))
    return {
        "train_examples_per_s": train_rate(stamps, sizes, spec.warmup_steps),
        "train_steps": len(stamps),
        "train_padded_per_example": meter.per_example(len(stamps), sum(sizes)),
    }


def evaluation_figures(predictions: dict, gold: dict, seconds: float, meter: PaddingMeter) -> dict:
    """Accuracy per language and its target mean, examples/s, padding; predictions: {lang: {id: label}}."""
    n = sum(len(preds) for preds in predictions.values())
    accuracy = {
        lang: float(np.mean([pred == gold[lang][i] for i, pred in preds.items()]))
        for lang, preds in predictions.items()
    }
    return {
        "accuracy": accuracy,
        "target_mean": float(np.mean(list(accuracy.values()))) if accuracy else None,
        "eval_examples": n,
        "eval_examples_per_s": n / seconds,
        "eval_padded_per_example": sum(meter.padded) / n if meter.padded else None,
        "predictions": predictions,
    }


def run_xrobust(spec: Spec) -> dict:
    """The path users run: config composed from conf/, the real datamodule, module and Lightning Trainer."""
    import pytorch_lightning as pl
    from hydra import compose, initialize_config_dir
    from hydra.core.hydra_config import HydraConfig
    from hydra.utils import instantiate
    from omegaconf import open_dict
    from transformers import DataCollatorWithPadding

    from xrobust.config import validate
    from xrobust.models.loading import resolve_pretrained

    out = tempfile.mkdtemp(prefix="xrobust-bench-")
    overrides = [
        f"task={spec.task}",
        f"data.local_dir={spec.data_dir if spec.data_dir else 'null'}",
        f"data.test_split={spec.test_split}",
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
        # fp32 like the references, whatever this machine's default (trainer/cpu.yaml); --override changes it
        "trainer.precision=32-true",
        *([f"paths.cache_dir={spec.cache_dir}"] if spec.cache_dir else []),
        *([f"model.pretrained={spec.model_dir}", "model.embedded=null"] if spec.model_dir else []),
        *spec.overrides,
    ]
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=overrides, return_hydra_config=True)
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = out
    HydraConfig.instance().set_config(cfg)
    task = validate(cfg)
    pl.seed_everything(cfg.seed, workers=True)
    noise = instantiate(cfg.noise, _partial_=True)()
    pretrained = resolve_pretrained(cfg.model)
    started = time.perf_counter()
    datamodule = instantiate(cfg.data, _partial_=True)(task=task, tokenizer_path=pretrained)
    loaded = time.perf_counter()
    datamodule.setup()
    prep_s, setup_s = time.perf_counter() - started, time.perf_counter() - loaded
    keep = spec.max_eval_examples or None
    datamodule.test_sets = {
        lang: rows.select(range(min(keep or len(rows), len(rows))))
        for lang, rows in datamodule.test_sets.items()
        if lang in task.target_languages
    }
    if spec.pad_to_max_length:
        datamodule.collate = DataCollatorWithPadding(
            datamodule.tokenizer, padding="max_length", max_length=spec.max_length
        )
    meter = datamodule.collate = PaddingMeter(datamodule.collate)
    module = instantiate(cfg.module, _partial_=True)(
        pretrained=pretrained, label_names=list(task.label_names), test_names=datamodule.test_names, noise=noise
    )
    noise.setup(module.model, datamodule.tokenizer, datamodule.train_rows)
    datamodule.train_text_transform = noise.text_transform()

    class StepClock(pl.Callback):
        def __init__(self):
            self.stamps: list[float] = []

        def on_train_batch_end(self, *args, **kwargs):
            self.stamps.append(time.perf_counter())

    clock = StepClock()
    trainer = instantiate(cfg.trainer, callbacks=[clock], logger=False)
    result: dict = {
        "prep_s": prep_s,
        "setup_s": setup_s,
        "trainable_parameters": sum(p.numel() for p in module.parameters() if p.requires_grad),
    }
    if spec.steps or spec.epochs:
        with profiled(spec.profile, result, "train_profile"):
            trainer.fit(module, datamodule=datamodule)
        result |= training_figures(clock.stamps, len(datamodule.train_set), spec, meter)
    if spec.save_model_dir:
        module.model.save_pretrained(spec.save_model_dir)
        datamodule.tokenizer.save_pretrained(spec.save_model_dir)
    if spec.evaluate:
        meter.padded.clear()
        started = time.perf_counter()
        with profiled(spec.profile, result, "eval_profile"):
            trainer.test(module, datamodule=datamodule, verbose=False)
        seconds = time.perf_counter() - started
        predictions = {lang: {i: p for i, _, p in rows} for lang, rows in module.test_predictions.items()}
        gold = {lang: {i: g for i, g, _ in rows} for lang, rows in module.test_predictions.items()}
        result |= evaluation_figures(predictions, gold, seconds, meter)
    return result


def run_hf(spec: Spec) -> dict:
    """The Hugging Face `Trainer` as a user writes it: dynamic padding (or pad-to-max), no length grouping,
    every parameter trained, torch.no_grad evaluation; only the settings that must match are set."""
    import transformers
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorWithPadding,
        Trainer,
        TrainerCallback,
        TrainingArguments,
        default_data_collator,
    )

    from xrobust.models.embedded import ensure_embedded_model

    pad = spec.path == "pad128"
    task, source = load_task(spec)
    model_dir = spec.model_dir or str(ensure_embedded_model("me5-small"))
    started = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)

    def prepare(rows):
        def encode(batch):
            texts = [batch[f] for f in task.text_fields]
            padding = "max_length" if pad else False
            encoded = tokenizer(*texts, truncation=True, max_length=spec.max_length, padding=padding)
            return encoded | {"labels": batch["label"]}

        return rows.map(encode, batched=True, remove_columns=rows.column_names)

    train = prepare(source.load("train", task.source_language))
    targets = target_rows(spec, task, source)
    eval_sets = {lang: prepare(rows) for lang, rows in targets.items()}
    prep_s = time.perf_counter() - started
    collate = PaddingMeter(default_data_collator if pad else DataCollatorWithPadding(tokenizer))

    transformers.set_seed(spec.seed)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir, num_labels=len(task.label_names))
    steps = spec.epochs * -(-len(train) // spec.batch_size) if spec.epochs else spec.steps
    stamps: list[float] = []

    class StepClock(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            stamps.append(time.perf_counter())

    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(
            output_dir=out,
            learning_rate=spec.lr,
            weight_decay=spec.weight_decay,
            warmup_steps=int(spec.warmup_ratio * steps),
            max_grad_norm=1.0,
            lr_scheduler_type="linear",
            per_device_train_batch_size=spec.batch_size,
            per_device_eval_batch_size=spec.eval_batch_size,
            max_steps=max(steps, 1),
            seed=spec.seed,
            eval_strategy="no",
            save_strategy="no",
            report_to="none",
            use_cpu=True,
            disable_tqdm=True,
        )
        trainer = Trainer(model=model, args=args, train_dataset=train, data_collator=collate, callbacks=[StepClock()])
        result: dict = {
            "prep_s": prep_s,
            "trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
        }
        if steps:
            trainer.train()
            result |= training_figures(stamps, len(train), spec, collate)
        if spec.evaluate:
            collate.padded.clear()
            started = time.perf_counter()
            logits = {lang: trainer.predict(rows).predictions for lang, rows in eval_sets.items()}
            seconds = time.perf_counter() - started
            predictions = {
                lang: dict(zip(targets[lang]["id"], logits[lang].argmax(-1).tolist(), strict=True)) for lang in logits
            }
            gold = {lang: dict(zip(rows["id"], rows["label"], strict=True)) for lang, rows in targets.items()}
            top2 = {lang: np.sort(x, axis=-1)[:, -2:] for lang, x in logits.items()}
            result |= evaluation_figures(predictions, gold, seconds, collate)
            result |= {
                "margins": {
                    lang: dict(zip(targets[lang]["id"], (t[:, 1] - t[:, 0]).tolist(), strict=True))
                    for lang, t in top2.items()
                },
            }
    return result


def run(spec: Spec) -> dict:
    if spec.threads:
        torch.set_num_threads(spec.threads)
    result = run_xrobust(spec) if spec.path == "xrobust" else run_hf(spec)
    return result | {"spec": asdict(spec), "peak_rss_mb": peak_rss_mb(), "torch_threads": torch.get_num_threads()}


def main() -> None:
    spec_path, result_path = sys.argv[1:3]
    spec = Spec(**json.loads(Path(spec_path).read_text()))
    Path(result_path).write_text(json.dumps(run(spec)))


if __name__ == "__main__":
    main()
