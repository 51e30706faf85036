"""xrobust against the Hugging Face Trainer, tuned and as written, and pad-to-128: examples/s, memory, same answers.

    python -m benchmarks.throughput [--steps 20] [--rounds 3] [--precision native] [--out bench.json]

Five paths on the embedded me5-small and ../shared/data/xnli (train-en; the 14 target dev files), batch 32,
max length 128, seed 1, the same number of training steps: `xrobust` (our defaults, composed from conf/),
`xrobust_grouped` (the same with length-grouped batches, the tuned Trainer's sampling), `hf_tuned` (the
Trainer with every speed flag it has for this job, benchmarks/hf_paths.py), `hf` (Trainer +
DataCollatorWithPadding, otherwise its defaults) and `pad128` (the same Trainer, every pair padded to 128).
xrobust and the tuned Trainer run at --precision (native: what trainer.precision resolves to on this machine,
xrobust/config/resolvers.py); `hf` and `pad128` stay fp32, as users write them, for context. Each run is a child
process, the paths alternate within rounds, and the table shows medians over rounds. Without ../shared/data it
runs on the packaged sample (task=sample).

Correctness, in the same run: the weights xrobust trained in round 1 are evaluated again through the HF
Trainer's evaluation; every prediction must match, except where the reference's top two logits lie within
--margin-tolerance (different padding and batch order change the logits by float rounding, ~1e-6 in fp32 and
~1e-2 in bf16, so only a near-tie may flip). Each path's own accuracy is reported too; with --epochs (full
training instead of --steps) it is the accuracy comparison, and xrobust must reach at least the tuned
Trainer's target mean minus --accuracy-tolerance. `--override KEY=VALUE` changes both xrobust paths (an opt-in
lever such as model.compile=true).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

from benchmarks.hf_paths import TUNED_FLAGS
from benchmarks.measure import XNLI, Spec
from benchmarks.rounds import alternate, compact, fmt, machine, markdown_table, median, ratio, run_child

PATHS = {
    "xrobust": "xrobust (defaults)",
    "xrobust_grouped": "xrobust, data.group_by_length=true",
    "hf_tuned": "HF Trainer, tuned",
    "hf": "HF Trainer + DataCollatorWithPadding, its defaults (fp32)",
    "pad128": "pad to 128, fp32 (XTREME / Robust-XLT)",
}
# The paths that run at --precision; the others are the user-written references, fp32.
AT_PRECISION = ("xrobust", "xrobust_grouped", "hf_tuned")
GROUPED = "data.group_by_length=true"


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """The size and settings flags that benchmarks/levers.py shares."""
    parser.add_argument("--data", type=Path, default=XNLI, help="XTREME-layout XNLI folder (else the sample)")
    parser.add_argument("--steps", type=int, default=20, help="training steps per run, warm-up included")
    parser.add_argument("--epochs", type=int, default=0, help="train full epochs instead of --steps")
    parser.add_argument("--warmup-steps", type=int, default=2, help="untimed steps at the start of each run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--max-eval-examples", type=int, default=0, help="per target language; 0: all")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--threads", type=int, default=0, help="torch threads per run (0: torch's default)")
    parser.add_argument(
        "--precision",
        default="native",
        choices=["native", "32-true", "bf16-mixed"],
        help="xrobust and the tuned Trainer (native: this machine's trainer.precision default)",
    )
    parser.add_argument("--out", type=Path, default=None, help="write every figure as JSON here")


def base_spec(args: argparse.Namespace) -> Spec:
    on_xnli = args.data.is_dir()
    return Spec(
        task="xnli" if on_xnli else "sample",
        data_dir=str(args.data.resolve()) if on_xnli else None,
        test_split="dev" if on_xnli else "test",
        steps=args.steps,
        epochs=args.epochs,
        warmup_steps=args.warmup_steps,
        batch_size=args.batch_size,
        max_length=args.max_length,
        seed=args.seed,
        max_eval_examples=args.max_eval_examples,
        threads=args.threads,
        precision=resolved_precision(args.precision),
    )


def resolved_precision(precision: str) -> str:
    from xrobust.config.resolvers import native_precision

    return native_precision("cpu") if precision == "native" else precision


def agreement(ours: dict, reference: dict, margin_tolerance: float) -> dict:
    """Same weights, two evaluation paths: which predictions differ, and were they near-ties?"""
    differ = [
        (lang, i)
        for lang, preds in ours["predictions"].items()
        for i, pred in preds.items()
        if reference["predictions"][lang][i] != pred
    ]
    margins = [reference["margins"][lang][i] for lang, i in differ]
    compared = sum(len(p) for p in ours["predictions"].values())
    return {
        "compared": compared,
        "differ": len(differ),
        "max_margin_of_differing": max(margins, default=0.0),
        "accuracy_difference": abs(ours["target_mean"] - reference["target_mean"]),
        "ok": all(m < margin_tolerance for m in margins),
    }


def summarise(results: dict[str, list]) -> dict[str, dict]:
    keys = ("train_examples_per_s", "eval_examples_per_s", "peak_rss_mb", "target_mean")
    keys += ("train_padded_per_example", "eval_padded_per_example", "trainable_parameters")
    return {label: {key: median(runs, key) for key in keys} for label, runs in results.items()}


def vs(s: dict, reference: dict) -> str:
    """Train / eval examples/s over a reference's."""
    train = fmt(ratio(s["train_examples_per_s"], reference["train_examples_per_s"]), ".2f", "x")
    evaluate = fmt(ratio(s["eval_examples_per_s"], reference["eval_examples_per_s"]), ".2f", "x")
    return f"{train} / {evaluate}"


def table(summary: dict[str, dict], precision: str, overrides: list[str] = ()) -> str:
    names = PATHS | ({"xrobust": f"xrobust ({' '.join(overrides)})"} if overrides else {})
    names = {label: f"{name}, {precision}" if label in AT_PRECISION else name for label, name in names.items()}
    rows = []
    for label, s in summary.items():
        rows.append(
            [
                names[label],
                fmt(s["train_examples_per_s"]),
                fmt(s["eval_examples_per_s"]),
                fmt(s["train_padded_per_example"], ".0f"),
                fmt(s["eval_padded_per_example"], ".0f"),
                fmt(s["peak_rss_mb"], ".0f"),
                fmt(s["target_mean"] and 100 * s["target_mean"]),
                vs(s, summary["hf_tuned"]),
                vs(s, summary["hf"]),
                vs(s, summary["pad128"]),
            ]
        )
    header = ["path", "train ex/s", "eval ex/s", "train tok/ex", "eval tok/ex", "peak RSS MB", "target acc %"]
    header += ["**vs tuned HF** (train / eval)", "vs HF defaults", "vs pad-128"]
    return markdown_table(header, rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_arguments(parser)
    parser.add_argument(
        "--margin-tolerance", type=float, default=None, help="default 1e-3 in fp32, 1e-2 with bf16 in the xrobust path"
    )
    parser.add_argument("--accuracy-tolerance", type=float, default=0.01, help="with --epochs (fraction)")
    parser.add_argument(
        "--profile", action="store_true", help="one more xrobust run under torch.profiler: where the time goes"
    )
    parser.add_argument(
        "--override",
        action="append",
        default=[],
        help="Hydra override for the xrobust path only, e.g. trainer.precision=bf16-mixed (repeatable)",
    )
    args = parser.parse_args(argv)

    base = base_spec(args)
    specs = {label: replace(base, path=label) for label in PATHS}
    specs |= {label: replace(specs[label], precision="32-true") for label in PATHS if label not in AT_PRECISION}
    specs["xrobust"] = replace(specs["xrobust"], overrides=list(args.override))
    specs["xrobust_grouped"] = replace(specs["xrobust"], overrides=[*args.override, GROUPED])
    with tempfile.TemporaryDirectory(prefix="xrobust-bench-weights-") as weights:
        results = alternate(specs, args.rounds, first_round={"xrobust": {"save_model_dir": weights}})
        print("agreement: xrobust's trained weights through the HF Trainer's evaluation", file=sys.stderr)
        same_weights = run_child(replace(base, path="hf", precision="32-true", steps=0, epochs=0, model_dir=weights))
    low_precision = base.precision != "32-true" or any("precision" in o for o in args.override)
    margin_tolerance = args.margin_tolerance or (1e-2 if low_precision else 1e-3)
    agree = agreement(results["xrobust"][0], same_weights, margin_tolerance)
    summary = summarise(results)
    accuracy_gap = summary["xrobust"]["target_mean"] - summary["hf_tuned"]["target_mean"]
    accuracy_ok = accuracy_gap >= -args.accuracy_tolerance

    training = f"{base.epochs} epochs" if base.epochs else f"{base.steps} steps ({base.warmup_steps} untimed)"
    print(
        f"\nme5-small on {base.task} ({base.data_dir or 'packaged sample'}), batch {base.batch_size}, "
        f"max length {base.max_length}, seed {base.seed}, {training}, eval on the target languages "
        f"({results['xrobust'][0].get('eval_examples')} examples), {args.rounds} rounds, medians; {machine()}, "
        f"torch threads {results['xrobust'][0]['torch_threads']}"
        + (f"; xrobust path with {' '.join(args.override)}" if args.override else "")
        + f"\ntuned HF Trainer: {TUNED_FLAGS}\n"
    )
    print(table(summary, base.precision, args.override))
    print(
        f"\nsame weights, two evaluation paths: {agree['compared'] - agree['differ']}/{agree['compared']} "
        f"predictions identical; {agree['differ']} differ, largest reference margin among them "
        f"{agree['max_margin_of_differing']:.2e} (tolerance {margin_tolerance:g}); accuracy difference "
        f"{100 * agree['accuracy_difference']:.2f} points -> {'AGREE' if agree['ok'] else 'DISAGREE'}"
    )
    print(
        f"trained accuracy, xrobust minus the tuned HF Trainer: {100 * accuracy_gap:+.1f} points"
        + (
            f" (tolerance -{100 * args.accuracy_tolerance:.1f}) -> {'OK' if accuracy_ok else 'WORSE'}"
            if base.epochs
            else " (after a few steps both sit near chance; compare accuracy with --epochs 3)"
        )
    )
    if args.profile:
        profile = run_child(replace(specs["xrobust"], profile=True))
        print(f"\nxrobust training, by operator:\n{profile.get('train_profile')}")
        print(f"\nxrobust evaluation, by operator:\n{profile.get('eval_profile')}")
    if args.out:
        payload = {
            "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
            "summary": summary,
            "agreement": agree,
            "accuracy_gap": accuracy_gap,
            "accuracy_ok": accuracy_ok if base.epochs else None,
            "table": table(summary, base.precision, args.override),
            "runs": compact(results),
        }
        args.out.write_text(json.dumps(payload, indent=2) + "\n")
    return 0 if agree["ok"] and (accuracy_ok or not base.epochs) else 1


if __name__ == "__main__":
    sys.exit(main())
