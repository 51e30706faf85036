"""Per-step cost of each noise method against plain fine-tuning, in one process, on the same batches.

    .venv/bin/python benchmarks/noise_overhead.py [--rounds 5] [--batch-size 32] [--max-length 128]

One real me5-small (12 layers; all 118M parameters trained, or with --freeze-embeddings the default config's
setting), one AdamW, and the same batches for every method: XNLI's English training pairs
(../shared/data/xnli/train-en.tsv) when present, else the packaged sample, dynamically padded. A step is what a
training step costs the run: collating the batch (for rs_da also rewriting and tokenizing its text, which the
real pipeline does on the fly), the method's `training_loss`, backward, gradient clipping and the AdamW step.
Methods alternate within each round (order rotated every round) so drifting machine load hits them all alike; the
table shows the median wall-clock step, its ratio to `none`'s median, the median of the per-round ratios, and the
median process CPU time per step (less sensitive to other jobs on a shared machine) with its ratio. Every
conf/noise/*.yaml is measured at its defaults (`none` first: the baseline), then the VARIANTS below; rs_rp with
num_samples=2 is reported without a target.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import tempfile
import time
from pathlib import Path

import datasets
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from transformers import AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding

from xrobust.data.task import TaskSpec
from xrobust.lightning.module import NO_DECAY
from xrobust.models.loading import resolve_pretrained

ROOT = Path(__file__).resolve().parents[1]

XNLI = ROOT.parent / "shared" / "data" / "xnli" / "train-en.tsv"
SAMPLE = ROOT / "xrobust" / "data" / "sample" / "train-en.tsv"
SYNONYMS = ROOT.parent / "shared" / "data" / "synonyms" / "counterfitted_neighbors.json"

NOISE_DIR = ROOT / "conf" / "noise"
# Settings measured beside each method's defaults: (label, noise config overrides).
VARIANTS = [
    ("adv pgd K=2 min-max", ["noise=adv", "noise.steps=2", "noise.clean_weight=0"]),
    ("adv freelb K=2", ["noise=adv", "noise.variant=freelb", "noise.steps=2", "noise.clean_weight=0"]),
    ("rs_rp num_samples=2", ["noise=rs_rp", "noise.num_samples=2"]),
]
# Largest acceptable step time relative to `none`, for the rows that have a target.
TARGETS = {
    "rs_rp": 1.15,
    "rs_da": 1.15,
    "code_switch": 1.15,
    "adv": 1.1 * 3,
    "adv pgd K=2 min-max": 1.1 * 3,
    "adv freelb K=2": 1.1 * 3,
}


def noise_rows() -> list[tuple[str, list[str], float | None]]:
    """(label, overrides, target) of every row: each conf/noise option at its defaults, `none` first, then VARIANTS."""
    names = sorted((path.stem for path in NOISE_DIR.glob("*.yaml")), key=lambda name: (name != "none", name))
    rows = [(name, [f"noise={name}"]) for name in names] + VARIANTS
    return [(label, overrides, TARGETS.get(label)) for label, overrides in rows]


def compose_cfg(overrides: list[str]):
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose("train", overrides=overrides)


def read_rows(path: Path, limit: int, seed: int) -> dict[str, list]:
    labels = {"entailment": 0, "neutral": 1, "contradiction": 2}
    rows = [line.split("\t") for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    random.Random(seed).shuffle(rows)
    rows = rows[:limit]
    return {
        "id": list(range(len(rows))),
        "premise": [r[0] for r in rows],
        "hypothesis": [r[1] for r in rows],
        "label": [labels[r[2].strip()] for r in rows],
        "lang": ["en"] * len(rows),
    }


def features_of(encoded: dict, n: int) -> list[dict]:
    return [{k: encoded[k][i] for k in ("input_ids", "attention_mask", "labels")} for i in range(n)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds (each runs every method once)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed rounds first")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--batches", type=int, default=4, help="distinct batches, cycled over the rounds")
    parser.add_argument("--data", type=Path, default=XNLI if XNLI.is_file() else SAMPLE)
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads (default: torch's own, the number of cores)"
    )
    parser.add_argument(
        "--freeze-embeddings",
        action="store_true",
        help="keep the 96M-parameter embedding matrix out of the optimizer (optim.freeze_embeddings=true)",
    )
    args = parser.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)
    base = compose_cfg([])
    task = TaskSpec.from_config(base.task)
    pretrained = resolve_pretrained(base.model)
    tokenizer = AutoTokenizer.from_pretrained(pretrained)
    collate = DataCollatorWithPadding(tokenizer)
    raw = read_rows(args.data, args.batch_size * args.batches, seed=0)
    train_rows = datasets.Dataset.from_dict(raw)
    batches = []
    for b in range(args.batches):
        part = {k: v[b * args.batch_size : (b + 1) * args.batch_size] for k, v in raw.items()}
        encoded = task.task_kind.encode(part, tokenizer, task, args.max_length)
        batches.append((part, features_of(encoded, len(part["id"]))))

    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(pretrained, num_labels=3).train()
    if args.freeze_embeddings:
        model.get_input_embeddings().weight.requires_grad_(False)
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(
        [
            {"params": [p for n, p in named if not n.endswith(NO_DECAY)], "weight_decay": 0.01},
            {"params": [p for n, p in named if n.endswith(NO_DECAY)], "weight_decay": 0.0},
        ],
        lr=1e-5,
    )

    methods = {}
    cache = tempfile.mkdtemp(prefix="xrobust-bench-neighbours-")
    for label, overrides, target in noise_rows():
        cfg = compose_cfg(overrides)
        if "neighbours" in cfg.noise:  # a fresh cache: the set-up time shown is the real first-run cost
            cfg.noise.neighbours.cache_dir = cache
            if cfg.noise.neighbours.source == "file" and SYNONYMS.is_file():  # rs_da's file, offline
                cfg.noise.neighbours.path = str(SYNONYMS)
        noise = instantiate(cfg.noise, _partial_=True)()
        started = time.perf_counter()
        noise.setup(model, tokenizer, train_rows)
        setup_s = time.perf_counter() - started
        methods[label] = (noise, noise.text_transform(), target, setup_s)

    def step(noise, transform, part, features) -> tuple[float, float]:
        started, cpu = time.perf_counter(), time.process_time()
        if transform is not None:
            encoded = task.task_kind.encode(transform(part), tokenizer, task, args.max_length)
            features = features_of(encoded, len(part["id"]))
        inputs = dict(collate(features))
        loss = noise.training_loss(model, inputs)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return time.perf_counter() - started, time.process_time() - cpu

    labels = list(methods)
    times: dict[str, list[float]] = {label: [] for label in labels}
    cpu_times: dict[str, list[float]] = {label: [] for label in labels}
    load_before = os.getloadavg()
    for r in range(args.warmup + args.rounds):
        part, features = batches[r % len(batches)]
        order = labels[r % len(labels) :] + labels[: r % len(labels)]
        for label in order:
            noise, transform, _, _ = methods[label]
            seconds, cpu_seconds = step(noise, transform, part, features)
            if r >= args.warmup:
                times[label].append(seconds)
                cpu_times[label].append(cpu_seconds)
        print(f"round {r + 1}/{args.warmup + args.rounds}" + (" (warm-up)" if r < args.warmup else ""), flush=True)
    load_after = os.getloadavg()

    lengths = [max(len(f["input_ids"]) for f in features) for _, features in batches]
    print(
        f"\nme5-small, batch {args.batch_size}, max length {args.max_length} (padded lengths {lengths}), "
        f"data {args.data}, {args.rounds} rounds, torch threads {torch.get_num_threads()}, "
        f"embeddings {'frozen' if args.freeze_embeddings else 'trained'}, "
        f"load average {load_before[0]:.1f} -> {load_after[0]:.1f}"
    )
    none, none_cpu = statistics.median(times["none"]), statistics.median(cpu_times["none"])
    header = (
        f"{'method':<22}{'wall s':>8}{'vs none':>9}{'per-round':>11}{'cpu s':>8}{'vs none':>9}"
        f"{'target':>9}  ok   setup s"
    )
    print(header)
    print("-" * len(header))
    report = {}
    for label in labels:
        _, _, target, setup_s = methods[label]
        median, median_cpu = statistics.median(times[label]), statistics.median(cpu_times[label])
        paired = statistics.median(t / n for t, n in zip(times[label], times["none"], strict=True))
        ok = "" if target is None else ("yes" if median / none <= target else "NO")
        target_text = "" if target is None else f"<= {target:.2f}"
        figures = (
            f"{median:>8.2f}{median / none:>8.2f}x{paired:>10.2f}x{median_cpu:>8.2f}{median_cpu / none_cpu:>8.2f}x"
        )
        print(f"{label:<22}{figures}{target_text:>9}  {ok:<3} {setup_s:7.2f}")
        report[label] = {
            "median_s": median,
            "ratio": median / none,
            "paired_ratio": paired,
            "median_cpu_s": median_cpu,
            "cpu_ratio": median_cpu / none_cpu,
            "target": target,
            "times_s": times[label],
            "cpu_times_s": cpu_times[label],
            "setup_s": setup_s,
        }
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
