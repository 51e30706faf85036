"""Packed batches (data.packing=true) against the padded default, side by side in one run: examples/s, real
(unpadded) tokens/s and the tokens computed per real token, in training and in evaluation.

    python -m benchmarks.packed_vs_padded [--steps 20] [--rounds 3] [--accelerator gpu] [--check] [--out FILE]

The measured path and settings of benchmarks/levers.py (me5-small on ../shared/data/xnli, else the packaged sample;
one child process per run, the two alternating round by round, medians). `make bench` prints this table from the
levers' own runs (the default and its `data.packing=true` lever); `make gpu-check` runs this module with
--accelerator gpu --check for its packed-vs-padded line. --check: exit 1 unless both scored the same examples and
packing computed fewer tokens per real token than padding (it packs at all).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace

from benchmarks.measure import Spec
from benchmarks.rounds import alternate, compact, fmt, machine, markdown_table, median, ratio
from benchmarks.throughput import add_common_arguments, base_spec

PACKING = "data.packing=true"
HEADER = [
    "batches",
    "train ex/s",
    "train real tokens/s",
    "train tokens computed per real token",
    "eval ex/s",
    "eval real tokens/s",
    "eval tokens computed per real token",
]


def packed(spec: Spec) -> Spec:
    return replace(spec, overrides=[*spec.overrides, PACKING])


def on_gpu(spec: Spec, precision: str) -> Spec:
    """The same run on one GPU (trainer.accelerator=gpu), at `precision` ("native": what the GPU resolves to)."""
    from xrobust.config.resolvers import native_precision

    chosen = native_precision("gpu") if precision == "native" else precision
    return replace(spec, overrides=[*spec.overrides, "trainer.accelerator=gpu"], precision=chosen)


def figures(runs: list[dict]) -> dict[str, float | None]:
    """The medians a row shows, in COLUMNS order; tokens computed per real token: padded (rows x width) over real."""
    out = {}
    for part in ("train", "eval"):
        out[f"{part}_examples_per_s"] = median(runs, f"{part}_examples_per_s")
        out[f"{part}_real_tokens_per_s"] = median(runs, f"{part}_real_tokens_per_s")
        out[f"{part}_computed_per_real"] = ratio(
            median(runs, f"{part}_padded_per_example"), median(runs, f"{part}_real_per_example")
        )
    return out


def rows(padded_runs: list[dict], packed_runs: list[dict]) -> list[list[str]]:
    """The padded default, the packed run, and packed over padded."""
    padded, packing = figures(padded_runs), figures(packed_runs)

    def row(label: str, values: dict, suffix: str = "") -> list[str]:
        return [
            label,
            *(fmt(v, ".2f" if suffix or k.endswith("per_real") else ".1f", suffix) for k, v in values.items()),
        ]

    return [
        row("padded (the default: each batch padded to its longest)", padded),
        row(f"packed (`{PACKING}`)", packing),
        row("packed / padded", {k: ratio(packing[k], padded[k]) for k in padded}, "x"),
    ]


def summary(padded_runs: list[dict], packed_runs: list[dict]) -> str:
    """One line: packed vs padded, training and evaluation."""
    padded, packing = figures(padded_runs), figures(packed_runs)

    def pair(key: str, spec: str = ".0f") -> str:
        gain = ratio(packing[key], padded[key])
        return f"{fmt(packing[key], spec)} vs {fmt(padded[key], spec)} ({fmt(gain, '.2f', 'x')})"

    return (
        f"train {pair('train_examples_per_s')} ex/s, {pair('train_real_tokens_per_s')} real tokens/s; "
        f"eval {pair('eval_examples_per_s')} ex/s; tokens computed per real token "
        f"{fmt(packing['train_computed_per_real'], '.2f')} vs {fmt(padded['train_computed_per_real'], '.2f')}"
    )


def problems(padded_runs: list[dict], packed_runs: list[dict]) -> str | None:
    """What --check refuses: examples scored differently, or packing computing as many tokens as padding."""
    scored = {median(runs, "eval_examples") for runs in (padded_runs, packed_runs)}
    if len(scored) != 1:
        return f"evaluation scored {sorted(scored)} examples, padded and packed"
    computed = [figures(runs)["train_computed_per_real"] for runs in (padded_runs, packed_runs)]
    if None in computed or computed[1] >= computed[0]:
        return f"tokens computed per real token: {computed[1]} packed, not below {computed[0]} padded"
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_arguments(parser)
    parser.add_argument("--accelerator", choices=["cpu", "gpu"], default="cpu", help="where both runs train")
    parser.add_argument("--check", action="store_true", help="exit 1 if packing did not pack or lost examples")
    args = parser.parse_args(argv)
    base = base_spec(args)
    if args.accelerator == "gpu":
        base = on_gpu(base, args.precision)
    results = alternate({"padded": base, "packed": packed(base)}, args.rounds)
    print(
        f"\npacked vs padded batches: me5-small on {base.task}, batch {base.batch_size}, max length "
        f"{base.max_length}, {base.steps} steps ({base.warmup_steps} untimed), {args.accelerator}, {base.precision}, "
        f"{args.rounds} rounds, medians; {machine()}\n"
    )
    print(markdown_table(HEADER, rows(results["padded"], results["packed"])))
    line = summary(results["padded"], results["packed"])
    print(f"\npacked vs padded: {line}")
    if args.out:
        payload = {
            "settings": {k: str(v) for k, v in vars(args).items()},
            "padded": figures(results["padded"]),
            "packed": figures(results["packed"]),
            "summary": line,
            "runs": compact(results),
        }
        args.out.write_text(json.dumps(payload, indent=2) + "\n")
    problem = problems(results["padded"], results["packed"]) if args.check else None
    if problem:
        print(f"packed vs padded: FAILED: {problem}")
    return 1 if problem else 0


if __name__ == "__main__":
    sys.exit(main())
