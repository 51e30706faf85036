"""What each speed lever of the xrobust path is worth on its own: turn one off, keep the rest at our defaults.

    python -m benchmarks.levers [--steps 20] [--rounds 3] [--max-eval-examples 0] [--accuracy-epochs 0]

Same model, data and settings as benchmarks/throughput.py, at this machine's precision (--precision). A
lever's figure is the default's examples/s over the examples/s with that lever off (> 1: the lever helps); an
opt-in lever's (off by default) is the examples/s with it on over the default's. Levers that only touch training
are not evaluated, levers that only touch evaluation skip training (evaluation speed does not depend on the
weights). torch.compile's compile time (its first training step, an untimed first evaluation) is reported
apart. "Dropout off" is no lever (it changes the model): it prices the dropout masks the profile shows.
Also: the tokenization cache (data preparation of a sweep's first job, empty cache, against its second job,
same cache; target <= 10%), and with --accuracy-epochs E the accuracy effect of freezing the input embeddings
(two full E-epoch trainings, frozen and trained, on every target dev example: the docs/performance.md figure is E=3).
Packed batches (data.packing=true) get a table of their own beside the padded default, from the same runs: real
(unpadded) tokens/s and the tokens computed per real token as well (benchmarks/packed_vs_padded.py).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

from benchmarks import packed_vs_padded
from benchmarks.measure import Spec
from benchmarks.rounds import alternate, compact, fmt, machine, markdown_table, median, ratio, run_child
from benchmarks.throughput import add_common_arguments, base_spec

# label -> (config key, what measures it: "train", "eval" or "both", the spec with the lever off)
LEVERS = {
    "length-sorted evaluation": ("data.sort_eval_by_length", "eval", {"overrides": ["data.sort_eval_by_length=false"]}),
    "dynamic padding": ("(always on; off = pad to data.max_length)", "both", {"pad_to_max_length": True}),
    "torch.inference_mode for evaluation": (
        "trainer.inference_mode",
        "eval",
        {"overrides": ["trainer.inference_mode=false"]},
    ),
    "SDPA attention": ("model.attn_implementation", "both", {"overrides": ["model.attn_implementation=eager"]}),
    "no DataLoader workers": ("data.num_workers", "both", {"overrides": ["data.num_workers=2"]}),
    "frozen input embeddings": ("optim.freeze_embeddings", "train", {"overrides": ["optim.freeze_embeddings=false"]}),
    "fused AdamW": ("optim.optimizer.fused", "train", {"overrides": ["optim.optimizer.fused=false"]}),
}

PACKED = "packed batches, no padding (opt-in)"
# Measured turned on over the defaults.
OPT_IN = {
    "length-grouped training batches (opt-in)": (
        "data.group_by_length",
        "train",
        {"overrides": ["data.group_by_length=true"]},
    ),
    "torch.compile (opt-in)": ("model.compile", "both", {"overrides": ["model.compile=true"], "warm_eval": True}),
    PACKED: ("data.packing", "both", {"overrides": [packed_vs_padded.PACKING]}),
    "dropout off (not a lever: the masks' cost)": ("(every dropout p=0)", "train", {"dropout": False}),
}


def lever_groups(precision: str) -> tuple[dict[str, tuple], dict[str, tuple]]:
    """The levers measured turned off and those measured turned on. bf16 autocast is one of the first where the
    machine defaults to it, an opt-in where it does not (CPUs without AVX-512 BF16 / AMX: slower than fp32)."""
    if precision == "bf16-mixed":
        return LEVERS | {"bf16 autocast": ("trainer.precision", "both", {"precision": "32-true"})}, OPT_IN
    return LEVERS, OPT_IN | {"bf16 autocast (opt-in)": ("trainer.precision", "both", {"precision": "bf16-mixed"})}


def lever_specs(base: Spec) -> dict[str, Spec]:
    specs = {"defaults": base}
    turned_off, turned_on = lever_groups(base.precision)
    for label, (_, measures, change) in (turned_off | turned_on).items():
        spec = replace(base, **change)
        if measures == "train":
            spec = replace(spec, evaluate=False)
        elif measures == "eval":
            spec = replace(spec, steps=0)
        specs[label] = spec
    return specs


def lever_rows(results: dict[str, list], precision: str) -> list[list[str]]:
    default = results["defaults"]
    turned_off, turned_on = lever_groups(precision)
    rows = []
    for label, (key, _, _) in turned_off.items():
        runs = results[label]
        train = ratio(median(default, "train_examples_per_s"), median(runs, "train_examples_per_s"))
        evaluate = ratio(median(default, "eval_examples_per_s"), median(runs, "eval_examples_per_s"))
        rows.append(lever_row(label, key, runs, train, evaluate))
    for label, (key, _, _) in turned_on.items():
        runs = results[label]
        train = ratio(median(runs, "train_examples_per_s"), median(default, "train_examples_per_s"))
        evaluate = ratio(median(runs, "eval_examples_per_s"), median(default, "eval_examples_per_s"))
        rows.append(lever_row(label, key, runs, train, evaluate))
    rows.append(
        [
            "(all levers on: our defaults)",
            "",
            fmt(median(default, "train_examples_per_s")),
            "",
            fmt(median(default, "eval_examples_per_s")),
            "",
            fmt(median(default, "peak_rss_mb"), ".0f"),
        ]
    )
    return rows


def lever_row(label: str, key: str, runs: list, train: float | None, evaluate: float | None) -> list[str]:
    return [
        label,
        f"`{key}`",
        fmt(median(runs, "train_examples_per_s")),
        fmt(train, ".2f", "x"),
        fmt(median(runs, "eval_examples_per_s")),
        fmt(evaluate, ".2f", "x"),
        fmt(median(runs, "peak_rss_mb"), ".0f"),
    ]


def tokenization_cache(base: Spec, rounds: int) -> dict:
    """A sweep's first job tokenizes into an empty cache, the second reads it: data preparation of each
    (`datamodule.setup()`: read every split, tokenize or load the cache; loading the tokenizer is timed apart)."""
    runs: dict[str, list] = {"first": [], "second": []}
    for _ in range(rounds):
        with tempfile.TemporaryDirectory(prefix="xrobust-bench-cache-") as cache:
            prep = replace(base, steps=0, evaluate=False, cache_dir=cache)
            runs["first"].append(run_child(prep))
            runs["second"].append(run_child(prep))
    first, second = median(runs["first"], "setup_s"), median(runs["second"], "setup_s")
    tokenizer = median(runs["first"] + runs["second"], "prep_s") - median(runs["first"] + runs["second"], "setup_s")
    return {
        "first_s": first,
        "second_s": second,
        "ratio": second / first,
        "ok": second <= 0.1 * first,
        "tokenizer_load_s": tokenizer,
    }


def freeze_accuracy(base: Spec, epochs: int) -> dict:
    """Full training with frozen and with trained input embeddings, evaluated on every target example."""
    full = replace(base, epochs=epochs, max_eval_examples=0)
    frozen = run_child(full)
    trained = run_child(replace(full, overrides=["optim.freeze_embeddings=false"]))
    return {
        "epochs": epochs,
        "frozen": frozen["target_mean"],
        "trained": trained["target_mean"],
        "frozen_accuracy": frozen["accuracy"],
        "trained_accuracy": trained["accuracy"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_arguments(parser)
    parser.add_argument(
        "--accuracy-epochs", type=int, default=0, help="also train E full epochs frozen vs trained (0: skip)"
    )
    args = parser.parse_args(argv)
    base = base_spec(args)

    results = alternate(lever_specs(base), args.rounds)
    cache = tokenization_cache(base, args.rounds)
    accuracy = freeze_accuracy(base, args.accuracy_epochs) if args.accuracy_epochs else None

    print(
        f"\nlevers of the xrobust path, one at a time: me5-small on {base.task}, batch {base.batch_size}, "
        f"max length {base.max_length}, {base.steps} steps ({base.warmup_steps} untimed), "
        f"{args.rounds} rounds, medians; {machine()}\n"
    )
    header = [
        "lever (turned off; opt-in: turned on)",
        "config key",
        "train ex/s",
        "lever's train gain",
        "eval ex/s",
        "lever's eval gain",
    ]
    rows = lever_rows(results, base.precision)
    print(markdown_table([*header, "peak RSS MB"], rows))
    print("\npacked vs padded batches, the same runs as the rows above (real tokens: padding not counted):\n")
    print(markdown_table(packed_vs_padded.HEADER, packed_vs_padded.rows(results["defaults"], results[PACKED])))
    compiled, eager = results["torch.compile (opt-in)"], results["defaults"]
    print(
        "\ntorch.compile's compile time, apart from the rates above (round by round: inductor's on-disk cache is "
        "shared by later runs): first training step "
        + ", ".join(f"{r['first_step_s']:.1f} s" for r in compiled)
        + f" (eager {median(eager, 'first_step_s'):.1f} s); first evaluation pass "
        + ", ".join(f"{r['first_eval_s']:.1f} s" for r in compiled)
    )
    print(
        f"\ntokenization cache: data preparation {cache['first_s']:.2f} s for a sweep's first job (empty cache), "
        f"{cache['second_s']:.2f} s for the second ({100 * cache['ratio']:.0f}%, target <= 10%) -> "
        f"{'OK' if cache['ok'] else 'OVER'}; loading the tokenizer, {cache['tokenizer_load_s']:.2f} s, is apart"
    )
    if accuracy:
        print(
            f"frozen input embeddings, {accuracy['epochs']} epochs: target mean {100 * accuracy['frozen']:.1f}% "
            f"frozen, {100 * accuracy['trained']:.1f}% trained "
            f"({100 * (accuracy['frozen'] - accuracy['trained']):+.1f} points)"
        )
    if args.out:
        payload = {
            "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
            "levers": {row[0]: dict(zip([*header, "peak RSS MB"], row, strict=True)) for row in rows},
            "packing": {
                row[0]: dict(zip(packed_vs_padded.HEADER, row, strict=True))
                for row in packed_vs_padded.rows(results["defaults"], results[PACKED])
            },
            "tokenization_cache": cache,
            "freeze_accuracy": accuracy,
            "runs": compact(results),
        }
        args.out.write_text(json.dumps(payload, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
