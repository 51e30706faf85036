"""`xrobust-report SWEEP [--out DIR] [--wandb] [--n-boot 2000] [--seed 0]`: tables, size differences, figures.

Writes into DIR (default SWEEP/report): results_tidy.csv, results.md, size_diff.csv, size_diff.md,
heatmap.png, size_diff.png, and groups.md for jobs run as a task group; prints the markdown tables.
A folder without results.json, or a results.json that cannot be read, gets one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from xrobust.errors import XrobustError
from xrobust.report.collect import collect
from xrobust.report.compare import compare
from xrobust.report.groups import group_markdown, group_scores
from xrobust.report.plots import heatmap, size_diff_plot
from xrobust.report.tables import (
    SIZE_DIFF_COLUMNS,
    TIDY_COLUMNS,
    generalized_markdown,
    results_markdown,
    size_diff_markdown,
    size_diff_rows,
    tidy_rows,
    write_csv,
)

LEVEL = 0.95


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="xrobust-report",
        description="Per-language accuracy tables and larger-minus-smaller model differences with paired "
        "bootstrap intervals, for every job (results.json) below a sweep folder.",
    )
    parser.add_argument("sweep", type=Path, help="a sweep folder, e.g. multirun/2025-01-31/12-00-00")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: SWEEP/report)")
    parser.add_argument(
        "--wandb", action="store_true", help="also log tables and figures to W&B (offline unless WANDB_MODE is set)"
    )
    parser.add_argument("--n-boot", type=int, default=2000, help="bootstrap resamples (default 2000)")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap random seed (default 0)")
    parser.add_argument("--baseline", default="none", help="noise the size-gap changes are measured against")
    args = parser.parse_args(argv)
    if args.n_boot < 1:
        parser.error("--n-boot must be >= 1")
    return args


def report(args: argparse.Namespace) -> dict[str, Path]:
    """Write every output file; returns them by name. Prints the markdown tables."""
    out = args.out if args.out is not None else args.sweep / "report"
    jobs = collect(args.sweep)
    files: dict[str, Path] = {}
    tidy = tidy_rows(jobs)
    files["results_tidy"] = out / "results_tidy.csv"
    write_csv(files["results_tidy"], tidy, TIDY_COLUMNS)
    results_md = results_markdown(jobs, args.baseline)
    generalized_md = generalized_markdown(jobs, args.baseline)
    if generalized_md:
        results_md += "\n" + generalized_md
    files["results_md"] = out / "results.md"
    files["results_md"].write_text(results_md, encoding="utf-8")
    files["heatmap"] = heatmap(jobs, out / "heatmap.png", args.baseline)
    print(results_md)
    groups = group_scores(jobs)
    if groups:
        files["groups_md"] = out / "groups.md"
        files["groups_md"].write_text(group_markdown(groups), encoding="utf-8")
        print(group_markdown(groups))

    comparisons, notes = compare(jobs, n_boot=args.n_boot, seed=args.seed, baseline=args.baseline, level=LEVEL)
    diff_rows = size_diff_rows(comparisons)
    files["size_diff"] = out / "size_diff.csv"
    write_csv(files["size_diff"], diff_rows, SIZE_DIFF_COLUMNS)
    diff_md = size_diff_markdown(comparisons, args.n_boot, LEVEL, notes)
    files["size_diff_md"] = out / "size_diff.md"
    files["size_diff_md"].write_text(diff_md, encoding="utf-8")
    files["size_diff_plot"] = size_diff_plot(comparisons, out / "size_diff.png")
    print(diff_md)

    if args.wandb:
        from xrobust.report.wandb_tables import upload

        run_dir = upload(
            out,
            tables={"results_tidy": (TIDY_COLUMNS, tidy), "size_diff": (SIZE_DIFF_COLUMNS, diff_rows)},
            images={"heatmap": files["heatmap"], "size_diff_plot": files["size_diff_plot"]},
            group=str(args.sweep),
            config={"sweep": str(args.sweep), "n_boot": args.n_boot, "seed": args.seed, "level": LEVEL},
        )
        print(f"W&B run: {run_dir}")
    for path in files.values():
        print(f"wrote {path}")
    return files


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    try:
        report(args)
    except XrobustError as err:
        print(f"xrobust-report: error: {err}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
