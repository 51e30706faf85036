"""xrobust against the Hugging Face Trainer and the pad-to-128 recipe: examples/s, peak memory, same answers.

    python -m benchmarks.throughput [--steps 20] [--rounds 3] [--max-eval-examples 0] [--out bench.json]

Three paths on the embedded me5-small and ../shared/data/xnli (train-en; the 14 target dev files), batch 32,
max length 128, seed 1, the same number of training steps: `xrobust` (our defaults, composed from conf/),
`hf` (Trainer + DataCollatorWithPadding, otherwise its defaults: every parameter trained, no length
grouping) and `pad128` (the same Trainer, every pair padded to 128). Each run is a child process, the paths
alternate within rounds, and the table shows medians over rounds. Without ../shared/data it runs on the
packaged sample (task=sample).

Correctness, in the same run: the weights xrobust trained in round 1 are evaluated again through the HF
Trainer's evaluation; every prediction must match, except where the reference's top two logits lie within
--margin-tolerance (different padding and batch order change the logits by float rounding, ~1e-6, so only
a near-tie may flip). Each path's own accuracy is reported too; with --epochs (full training instead of
--steps) it is the accuracy comparison, and xrobust must reach at least the HF Trainer's target mean minus
--accuracy-tolerance. `--override KEY=VALUE` changes the xrobust path only (an opt-in lever such as
trainer.precision=bf16-mixed; lower precision moves logits by ~1e-2, so widen --margin-tolerance with it).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

from benchmarks.paths import XNLI, Spec
from benchmarks.rounds import alternate, compact, fmt, machine, markdown_table, median, ratio, run_child

PATHS = {
    "xrobust": "xrobust (defaults)",
    "hf": "HF Trainer + DataCollatorWithPadding",
    "pad128": "pad to 128 (XTREME / Robust-XLT)",
}


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
    )


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


def table(summary: dict[str, dict], overrides: list[str] = ()) -> str:
    hf, pad = summary["hf"], summary["pad128"]
    names = PATHS | ({"xrobust": f"xrobust ({' '.join(overrides)})"} if overrides else {})
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
                f"{fmt(ratio(s['train_examples_per_s'], hf['train_examples_per_s']), '.2f', 'x')} / "
                f"{fmt(ratio(s['eval_examples_per_s'], hf['eval_examples_per_s']), '.2f', 'x')}",
                f"{fmt(ratio(s['train_examples_per_s'], pad['train_examples_per_s']), '.2f', 'x')} / "
                f"{fmt(ratio(s['eval_examples_per_s'], pad['eval_examples_per_s']), '.2f', 'x')}",
            ]
        )
    header = ["path", "train ex/s", "eval ex/s", "train tok/ex", "eval tok/ex", "peak RSS MB", "target acc %"]
    return markdown_table(header + ["vs HF (train / eval)", "vs pad-128 (train / eval)"], rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_arguments(parser)
    parser.add_argument("--margin-tolerance", type=float, default=1e-3)
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
    specs["xrobust"] = replace(specs["xrobust"], overrides=list(args.override))
    with tempfile.TemporaryDirectory(prefix="xrobust-bench-weights-") as weights:
        results = alternate(specs, args.rounds, first_round={"xrobust": {"save_model_dir": weights}})
        print("agreement: xrobust's trained weights through the HF Trainer's evaluation", file=sys.stderr)
        same_weights = run_child(replace(base, path="hf", steps=0, epochs=0, model_dir=weights))
    agree = agreement(results["xrobust"][0], same_weights, args.margin_tolerance)
    summary = summarise(results)
    accuracy_gap = summary["xrobust"]["target_mean"] - summary["hf"]["target_mean"]
    accuracy_ok = accuracy_gap >= -args.accuracy_tolerance

    training = f"{base.epochs} epochs" if base.epochs else f"{base.steps} steps ({base.warmup_steps} untimed)"
    print(
        f"\nme5-small on {base.task} ({base.data_dir or 'packaged sample'}), batch {base.batch_size}, "
        f"max length {base.max_length}, seed {base.seed}, {training}, eval on the target languages "
        f"({results['xrobust'][0].get('eval_examples')} examples), {args.rounds} rounds, medians; {machine()}, "
        f"torch threads {results['xrobust'][0]['torch_threads']}"
        + (f"; xrobust path with {' '.join(args.override)}" if args.override else "")
        + "\n"
    )
    print(table(summary, args.override))
    print(
        f"\nsame weights, two evaluation paths: {agree['compared'] - agree['differ']}/{agree['compared']} "
        f"predictions identical; {agree['differ']} differ, largest reference margin among them "
        f"{agree['max_margin_of_differing']:.2e} (tolerance {args.margin_tolerance:g}); accuracy difference "
        f"{100 * agree['accuracy_difference']:.2f} points -> {'AGREE' if agree['ok'] else 'DISAGREE'}"
    )
    print(
        f"trained accuracy, xrobust minus HF Trainer: {100 * accuracy_gap:+.1f} points"
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
            "table": table(summary, args.override),
            "runs": compact(results),
        }
        args.out.write_text(json.dumps(payload, indent=2) + "\n")
    return 0 if agree["ok"] and (accuracy_ok or not base.epochs) else 1


if __name__ == "__main__":
    sys.exit(main())
