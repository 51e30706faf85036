"""What every benchmarked path shares: the run's spec, the step clock's arithmetic, padding and accuracy figures."""

from __future__ import annotations

import resource
from contextlib import contextmanager
from dataclasses import dataclass, field
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
    # xrobust and hf_tuned: "32-true" or "bf16-mixed" (bf16 autocast); hf and pad128 stay fp32, as users write them
    precision: str = "32-true"
    overrides: list[str] = field(default_factory=list)  # extra Hydra overrides for the xrobust path
    pad_to_max_length: bool = False  # xrobust path only: the dynamic-padding lever turned off
    model_dir: str | None = None  # weights to load instead of the embedded me5-small (agreement check)
    save_model_dir: str | None = None  # write the trained classifier here (agreement check)
    cache_dir: str | None = None  # xrobust path: tokenization cache; None keeps XROBUST_HOME's
    profile: bool = False  # xrobust path: torch.profiler over training and evaluation (slows both; untimed use)
    dropout: bool = True  # xrobust path: False sets every dropout to 0, to measure what the masks cost
    warm_eval: bool = False  # xrobust path: one untimed evaluation first (torch.compile's graphs; first_eval_s)


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

    def clear(self) -> None:
        self.padded.clear()
        self.real.clear()

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


def compose_run(overrides: list[str], output_dir: str | Path):
    """conf/train.yaml composed as the CLI composes it, with its run folder set: what `xrobust.train.run` takes."""
    from hydra import compose, initialize_config_dir
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=overrides, return_hydra_config=True)
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = str(output_dir)
    HydraConfig.instance().set_config(cfg)
    return cfg


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
    """Examples and real (unpadded) tokens per second over the timed steps; the meter sees no batch where
    DataLoader workers collate them, and its figures are then None."""
    sizes = step_examples(num_examples, spec.batch_size, len(stamps))
    real = meter.real[: len(stamps)]
    return {
        "train_examples_per_s": train_rate(stamps, sizes, spec.warmup_steps),
        "train_real_tokens_per_s": train_rate(stamps, real, spec.warmup_steps) if len(real) == len(stamps) else None,
        "train_steps": len(stamps),
        "train_padded_per_example": meter.per_example(len(stamps), sum(sizes)),
        "train_real_per_example": sum(real) / sum(sizes) if len(real) == len(stamps) else None,
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
        "eval_real_tokens_per_s": sum(meter.real) / seconds if meter.real else None,
        "eval_padded_per_example": sum(meter.padded) / n if meter.padded else None,
        "eval_real_per_example": sum(meter.real) / n if meter.real else None,
        "predictions": predictions,
    }
