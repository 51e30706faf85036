"""`xrobust-report SWEEP [--out DIR] [--compare model|noise|KEY] [--pairs A:B,...] [--select-on dev-en] ...`:
tables, differences with intervals and corrected significance, figures.

Writes into DIR (default SWEEP/report): results_tidy.csv, results.md, size_diff.csv, size_diff.md,
heatmap.png, size_diff.png, tables.tex with --latex, selection.md with --select-on, groups.md for jobs run as
a task group, templates.md/.csv for a prompt-template sweep (median and max over templates), and for jobs with
diagnostic read-outs alignment.md/.csv, alignment_correlation.csv, alignment_gap.png, certified.md/.csv and
substitution.md/.csv (docs/diagnostics.md); prints the
markdown tables. A folder without results.json, or a results.json that cannot be read, gets one line on stderr and
exit status 2. Every job without results (failed, interrupted, never started) gets a
line on stderr; a requested cell (a job's overrides less its seed) with no finished job ends in exit status 1.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from xrobust.errors import XrobustError
from xrobust.report.collect import Job, collect
from xrobust.report.contrast_estimate import Options
from xrobust.report.corrections import CORRECTIONS, HOLM
from xrobust.report.coverage import coverage
from xrobust.report.diagnostics_report import diagnostics_files
from xrobust.report.diff_tables import size_diff_columns, size_diff_markdown, size_diff_rows
from xrobust.report.formatting import write_csv
from xrobust.report.groups import group_markdown, group_scores
from xrobust.report.identity import MODEL, NOISE
from xrobust.report.item_rows import ACCURACY, GENERALIZED, PERTURBED
from xrobust.report.pairing import compare
from xrobust.report.plots import heatmap, size_diff_plot
from xrobust.report.readouts import classifier_notes
from xrobust.report.seeds import common_seeds
from xrobust.report.selection import SELECT_ON, select, selection_markdown
from xrobust.report.sizes import basis_text, model_sizes, parse_pairs
from xrobust.report.tables import (
    by_task,
    contamination_notes,
    generalized_markdown,
    results_markdown,
    tidy_columns,
    tidy_rows,
)
from xrobust.report.templates import template_tables

COMPARE_HELP = (
    "the axis of the difference tables: 'model' (default: size gaps, larger minus smaller within each "
    "model.family, and how each noise changes them), 'noise' (each noise minus --baseline), or any config key "
    "that tells the sweep's jobs apart, e.g. noise.eps or optim.lr (each value minus the first in sorted order)"
)
PAIRS_HELP = (
    "FIRST:SECOND[,...]: the pairs to contrast along --compare, each read as FIRST minus SECOND: model names "
    "(e.g. xlmr-xxl:xlmr-large,mt0-xxl:mt0-large, across families too), noise names (rs_rp:none) or values of "
    "the key (0.9:0.5). Default: within-family larger:smaller pairs; each noise against --baseline; each value "
    "against the first"
)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="xrobust-report",
        description="Per-language accuracy tables and paired differences (larger minus smaller model by default) "
        "with intervals over seeds (t(k - 1)) and test items (drawn jointly across parallel test sets) and "
        "significance (from 3 seeds on) corrected across each row's languages, for every job (results.json) below a "
        "sweep folder.",
    )
    parser.add_argument("sweep", type=Path, help="a sweep folder, e.g. multirun/2025-01-31/12-00-00")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: SWEEP/report)")
    parser.add_argument(
        "--wandb", action="store_true", help="also log tables and figures to W&B (offline unless WANDB_MODE is set)"
    )
    parser.add_argument("--n-boot", type=int, default=2000, help="bootstrap resamples (default 2000)")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap random seed (default 0)")
    parser.add_argument("--level", type=float, default=0.95, help="interval level; bold below p = 1 - level")
    parser.add_argument("--baseline", default="none", help="noise the changes are measured against (default none)")
    parser.add_argument("--compare", default=MODEL, metavar="model|noise|KEY", help=COMPARE_HELP)
    parser.add_argument("--pairs", default=None, metavar="FIRST:SECOND,...", help=PAIRS_HELP)
    parser.add_argument(
        "--correction",
        choices=sorted(CORRECTIONS),
        default=HOLM,
        help="adjustment of each row's p-values across its languages and mean: holm (default, family-wise error), "
        "bh (Benjamini-Hochberg, false discovery rate) or none",
    )
    parser.add_argument(
        "--permutations",
        type=int,
        default=0,
        metavar="N",
        help="also a paired sign-flip permutation test per cell with N permutations (p-values beside the "
        "bootstrap's; 0 = off)",
    )
    parser.add_argument(
        "--select-on",
        choices=SELECT_ON,
        default=None,
        help="per task and setting (model, noise and its method keys), keep only the learning rate (optim.lr, "
        "optim.lr_scale) whose selected checkpoints scored best on English dev on average over the seeds, before any "
        "table; selection.md says which one each cell used",
    )
    parser.add_argument(
        "--select-over",
        default=None,
        metavar="KEY,...",
        help="with --select-on: further keys chosen on English dev beside the learning rate (default: none)",
    )
    parser.add_argument("--latex", action="store_true", help="also write tables.tex (booktabs)")
    parser.add_argument(
        "--alignment-layer",
        type=int,
        default=None,
        metavar="N",
        help="the layer the alignment tables and gap plot read (default: each job's last recorded layer)",
    )
    args = parser.parse_args(argv)
    if args.n_boot < 1:
        parser.error("--n-boot must be >= 1")
    if not 0.5 <= args.level < 1:
        parser.error("--level must lie in [0.5, 1)")
    if args.permutations < 0:
        parser.error("--permutations must be >= 0")
    args.select_over = [key for key in (args.select_over or "").split(",") if key]
    try:
        args.pairs = parse_pairs(args.pairs)
    except ValueError as err:
        parser.error(str(err))
    return args


def differences(jobs: list[Job], args: argparse.Namespace) -> tuple[list, list[str], dict[str, str]]:
    """Every contrast along --compare for the standard read-out, then for the perturbed and generalized
    read-outs (when the model axis is compared, also each noise minus the baseline there)."""
    options = Options(args.n_boot, args.seed, args.level, args.correction, args.permutations)
    common = dict(baseline=args.baseline, options=options)
    comparisons, notes = compare(jobs, axis=args.compare, pairs=args.pairs, measure=ACCURACY, **common)
    for measure in (PERTURBED, GENERALIZED):
        if not any(job.has(measure) for job in jobs):
            continue
        found, more = compare(jobs, axis=args.compare, pairs=args.pairs, measure=measure, **common)
        comparisons += found
        notes += more
        if args.compare == MODEL:
            found, more = compare(jobs, axis=NOISE, measure=measure, **common)
            comparisons += found
            notes += more
    basis = {}
    if args.compare == MODEL:
        basis = {task: basis_text(model_sizes(mine), args.pairs is not None) for task, mine in by_task(jobs).items()}
    return comparisons, list(dict.fromkeys(notes)), basis


def report(args: argparse.Namespace) -> dict[str, Path]:
    """Write every output file; returns them by name. Prints the markdown tables."""
    out = args.out if args.out is not None else args.sweep / "report"
    jobs = collect(args.sweep)
    files: dict[str, Path] = {}
    if args.select_on:
        jobs, choices = select(jobs, keep_apart=args.compare, select_over=args.select_over)
        selection_md = selection_markdown(choices, args.select_on)
        files["selection_md"] = out / "selection.md"
        files["selection_md"].parent.mkdir(parents=True, exist_ok=True)
        files["selection_md"].write_text(selection_md, encoding="utf-8")
        print(selection_md)
    jobs, table_notes = common_seeds(jobs)
    table_notes += classifier_notes(jobs) + contamination_notes(jobs)
    for note in table_notes:
        print(f"xrobust-report: note: {note}", file=sys.stderr)
    tidy, tidy_header = tidy_rows(jobs), tidy_columns(jobs)
    files["results_tidy"] = out / "results_tidy.csv"
    write_csv(files["results_tidy"], tidy, tidy_header)
    results_md = results_markdown(jobs, args.baseline)
    generalized_md = generalized_markdown(jobs, args.baseline)
    if generalized_md:
        results_md += "\n" + generalized_md
    if table_notes:
        results_md += "\nNotes:\n\n" + "".join(f"- {note}\n" for note in table_notes)
    files["results_md"] = out / "results.md"
    files["results_md"].write_text(results_md, encoding="utf-8")
    files["heatmap"] = heatmap(jobs, out / "heatmap.png", args.baseline)
    print(results_md)
    files |= template_tables(jobs, out)
    groups = group_scores(jobs)
    if groups:
        groups_md = group_markdown(groups, {job.task: job.metric for job in jobs})
        files["groups_md"] = out / "groups.md"
        files["groups_md"].write_text(groups_md, encoding="utf-8")
        print(groups_md)

    comparisons, notes, basis = differences(jobs, args)
    diff_rows, diff_header = size_diff_rows(comparisons), size_diff_columns(comparisons)
    files["size_diff"] = out / "size_diff.csv"
    write_csv(files["size_diff"], diff_rows, diff_header)
    diff_md = size_diff_markdown(comparisons, args.n_boot, args.level, table_notes + notes, basis)
    files["size_diff_md"] = out / "size_diff.md"
    files["size_diff_md"].write_text(diff_md, encoding="utf-8")
    files["size_diff_plot"] = size_diff_plot(comparisons, out / "size_diff.png")
    print(diff_md)
    found, diagnostics_md, diagnostics_tables = diagnostics_files(
        jobs, out, args.alignment_layer, args.n_boot, args.seed, args.level, args.baseline
    )
    files |= found
    if diagnostics_md:
        print(diagnostics_md)
    if args.latex:
        from xrobust.report.latex import latex_tables

        files["latex"] = out / "tables.tex"
        files["latex"].write_text(latex_tables(jobs, comparisons, args.n_boot, args.baseline), encoding="utf-8")

    if args.wandb:
        from xrobust.report.wandb_tables import upload

        run_dir = upload(
            out,
            tables={"results_tidy": (tidy_header, tidy), "size_diff": (diff_header, diff_rows)} | diagnostics_tables,
            images={"heatmap": files["heatmap"], "size_diff_plot": files["size_diff_plot"]}
            | ({"alignment_gap": files["alignment_gap"]} if "alignment_gap" in files else {}),
            group=str(args.sweep),
            config={
                "sweep": str(args.sweep),
                "n_boot": args.n_boot,
                "seed": args.seed,
                "level": args.level,
                "compare": args.compare,
                "correction": args.correction,
            },
        )
        print(f"W&B run: {run_dir}")
    for path in files.values():
        print(f"wrote {path}")
    return files


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    try:
        gaps = coverage(args.sweep)
        for line in gaps.unfinished:
            print(f"xrobust-report: {line}", file=sys.stderr)
        report(args)
    except XrobustError as err:
        print(f"xrobust-report: error: {err}", file=sys.stderr)
        sys.exit(2)
    if gaps.empty_cells:
        cells = "; ".join(gaps.empty_cells)
        print(
            f"xrobust-report: error: no finished job for {len(gaps.empty_cells)} requested cell(s): {cells}",
            file=sys.stderr,
        )
        sys.exit(1)


if __name__ == "__main__":
    main()
