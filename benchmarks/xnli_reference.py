"""Real-data parity check: xrobust vs the Hugging Face Trainer on ../shared/data/xnli, same recipe, several seeds.

    .venv/bin/python -m benchmarks.xnli_reference [--data ../shared/data/xnli] [--epochs 3] [--lr 2e-4]
        [--seeds 1,2,3] [--bf16] [--variant NAME=OVERRIDE[,OVERRIDE...] ...] [--hf-grouped] [--out parity.json]

Each path trains on 90% of train-en, selects its checkpoint on the other 10% (the same seeded items on both paths:
`data.heldout=true`) and tests zero-shot on every dev file, dev-en included, untouched by the selection. xrobust runs
at its defaults and once per --variant (default: `length groups=data.group_by_length=true`), the Trainer as a
user writes it (dynamic padding, shuffled batches, frozen input embeddings, its default fused AdamW), and with
--hf-grouped also with its length grouping (`train_sampling_strategy="group_by_length"`). Prints the target mean
and English accuracy per seed, the mean over seeds, and each path minus the plain Trainer, seed by seed.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from hydra import compose, initialize_config_dir

from benchmarks.hf_reference import Settings, run_hf_trainer
from benchmarks.measure import compose_run
from xrobust.data.datamodule import split_by_item
from xrobust.data.sources import LocalFolderSource
from xrobust.data.task import TaskSpec
from xrobust.models.embedded import ensure_embedded_model
from xrobust.run.results import summarize_accuracy
from xrobust.train import run

ROOT = Path(__file__).resolve().parents[1]
HELDOUT_FRACTION = 0.1  # conf/data/default.yaml's val_fraction, which data.heldout=true holds out
HF = "HF Trainer"
HF_GROUPED = "HF Trainer, group_by_length"
LENGTH_GROUPS = "length groups=data.group_by_length=true"


def xrobust_run(data: Path, settings: Settings, out: Path, extra: list[str]) -> dict:
    overrides = [
        "task=xnli",
        f"data.local_dir={data}",
        "data.test_split=dev",
        "data.heldout=true",
        "logger=csv",
        "trainer.enable_progress_bar=false",
        "trainer.enable_model_summary=false",
        "checkpoint.keep_after_success=none",
        f"trainer.max_epochs={settings.epochs}",
        f"data.batch_size={settings.batch_size}",
        f"data.max_length={settings.max_length}",
        f"optim.lr={settings.lr}",
        f"optim.freeze_embeddings={str(settings.freeze_embeddings).lower()}",
        f"trainer.precision={'bf16-mixed' if settings.bf16 else '32-true'}",
        f"seed={settings.seed}",
        *extra,
    ]
    return run(compose_run(overrides, out))["accuracy"]


def hf_run(data: Path, settings: Settings) -> dict[str, float]:
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        task = TaskSpec.from_config(compose("train", overrides=["task=xnli"]).task)
    source = LocalFolderSource(task, data)
    train, heldout = split_by_item(source.load("train", "en"), HELDOUT_FRACTION, settings.seed)
    return run_hf_trainer(
        str(ensure_embedded_model("me5-small")),
        task.text_fields,
        len(task.label_names),
        train,
        heldout,
        {lang: source.load("dev", lang) for lang in task.languages},
        settings,
    )


def parse_variants(items: list[str]) -> dict[str, list[str]]:
    variants = {"xrobust": []}
    for item in items:
        name, _, overrides = item.partition("=")
        variants[f"xrobust, {name}"] = [o for o in overrides.split(",") if o]
    return variants


def summary_table(runs: dict[str, dict[int, dict]], seeds: list[int]) -> str:
    """Target mean / en per seed and on average, and each path minus the Trainer over the same seeds."""
    lines = [
        "| path | " + " | ".join(f"seed {s}: target / en" for s in seeds) + " | mean target / en | minus HF (target) |",
        "|---|" + "---:|" * (len(seeds) + 2),
    ]
    hf_targets = [runs[HF][s]["target_mean"] for s in seeds]
    for name, by_seed in runs.items():
        cells = [f"{100 * by_seed[s]['target_mean']:.1f} / {100 * by_seed[s]['en']:.1f}" for s in seeds]
        targets = [by_seed[s]["target_mean"] for s in seeds]
        en = statistics.mean(by_seed[s]["en"] for s in seeds)
        diffs = [100 * (t - h) for t, h in zip(targets, hf_targets, strict=True)]
        spread = f" (per seed {', '.join(f'{d:+.1f}' for d in diffs)})" if name != HF else ""
        lines.append(
            f"| {name} | " + " | ".join(cells) + f" | {100 * statistics.mean(targets):.1f} / {100 * en:.1f} | "
            f"{statistics.mean(diffs):+.1f}{spread} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "xnli")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--lr", type=float, default=2e-4)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seeds", default="1,2,3", help="comma-separated seeds (default 1,2,3)")
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast on both paths (default fp32)")
    parser.add_argument(
        "--variant",
        action="append",
        default=None,
        metavar="NAME=OVERRIDE[,OVERRIDE...]",
        help="an extra xrobust path (default: 'length groups=data.group_by_length=true')",
    )
    parser.add_argument("--hf-grouped", action="store_true", help="also the Trainer with group_by_length")
    parser.add_argument("--out", type=Path, default=None, help="write every accuracy as JSON here")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    variants = parse_variants(args.variant if args.variant is not None else [LENGTH_GROUPS])
    data = args.data.resolve()
    base = Settings(lr=args.lr, epochs=args.epochs, batch_size=args.batch_size, bf16=args.bf16)

    references = [HF, HF_GROUPED] if args.hf_grouped else [HF]
    accuracy: dict[str, dict[int, dict[str, float]]] = {name: {} for name in [*references, *variants]}
    seconds: dict[str, float] = dict.fromkeys(accuracy, 0.0)
    for seed in seeds:
        settings = replace(base, seed=seed)
        for name in references:
            started = time.perf_counter()
            accuracy[name][seed] = hf_run(data, replace(settings, group_by_length=name == HF_GROUPED))
            seconds[name] += time.perf_counter() - started
        for name, extra in variants.items():
            started = time.perf_counter()
            with tempfile.TemporaryDirectory() as tmp:
                accuracy[name][seed] = xrobust_run(data, settings, Path(tmp), extra)
            seconds[name] += time.perf_counter() - started
            print(f"seed {seed} done: {name}", flush=True)

    runs = {
        name: {
            seed: {"en": acc["en"], "target_mean": summarize_accuracy(acc, "en")[1]} for seed, acc in by_seed.items()
        }
        for name, by_seed in accuracy.items()
    }
    print(summary_table(runs, seeds))
    print("wall time: " + ", ".join(f"{name} {s:.0f} s" for name, s in seconds.items()))
    if args.out:
        payload = {"settings": vars(base), "seeds": seeds, "variants": variants, "accuracy": accuracy}
        args.out.write_text(json.dumps(payload, indent=2))


if __name__ == "__main__":
    main()
