"""The report's diagnostics files (issue #32), written only for a sweep whose jobs recorded read-outs:
alignment.md/.csv with the gap-vs-alignment correlation (alignment_correlation.csv, alignment_gap.png) and the
view by layer (alignment_layers.csv),
certified.md/.csv and substitution.md/.csv. Returns the files by name and the markdown for the console."""

from __future__ import annotations

from pathlib import Path

from xrobust.report.alignment_correlation import Correlation, correlations
from xrobust.report.alignment_layers import LAYER_CSV_COLUMNS, layer_tables
from xrobust.report.alignment_plot import estimate_text, gap_plot
from xrobust.report.collect import Job
from xrobust.report.diagnostics_read import PRETRAINED, TESTED, diagnosed
from xrobust.report.diagnostics_tables import ALIGNMENT_CSV_COLUMNS, CERTIFY_COLUMNS, alignment_tables, certify_tables
from xrobust.report.formatting import markdown_table, write_csv
from xrobust.report.substitution_table import SUBSTITUTION_COLUMNS, substitution_tables

CORRELATION_COLUMNS = [
    "task",
    "stage",
    "points",
    "pearson",
    "pearson_low",
    "pearson_high",
    "spearman",
    "spearman_low",
    "spearman_high",
    "note",
]


def correlation_rows(found: list[Correlation]) -> list[dict]:
    rows = []
    for c in found:
        row = dict(task=c.task, stage=c.stage, points=len(c.points), note=c.note)
        for name, estimate in (("pearson", c.pearson), ("spearman", c.spearman)):
            if estimate is not None:
                row |= {name: estimate.value, f"{name}_low": estimate.low, f"{name}_high": estimate.high}
        rows.append(row)
    return rows


def correlation_markdown(found: list[Correlation], n_boot: int, level: float) -> str:
    body = [
        [c.task, c.stage, str(len(c.points)), estimate_text("r", c.pearson), estimate_text("rho", c.spearman), c.note]
        for c in found
    ]
    table = markdown_table(["task", "alignment", "points", "Pearson", "Spearman", "note"], body, list("lllll") + ["l"])
    return (
        "## Transfer gap vs alignment\n\nOne point per target language and setting: English accuracy minus the "
        "language's (points) against its retrieval accuracy (%), means over seeds; correlations across the points "
        f"with {round(100 * level)}% intervals over {n_boot} resamples of test items (drawn jointly across "
        f"languages and models, seeds held fixed). A task's row pools every setting, so a model that both aligns "
        "and transfers better than another makes a correlation of its own; the rows `task: setting` take one "
        f"setting's languages alone. Figure: alignment_gap.png.\n\n{table}\n"
    )


Tables = dict[str, tuple[list[str], list[dict]]]


def diagnostics_files(
    jobs: list[Job], out: Path, layer: int | None, n_boot: int, seed: int, level: float, baseline: str = "none"
) -> tuple[dict[str, Path], str, Tables]:
    """Write every diagnostics table the sweep's read-outs allow (none without read-outs); returns the files, the
    markdown and each CSV's (columns, rows) by its file's stem, for --wandb."""
    found = diagnosed(jobs)
    files: dict[str, Path] = {}
    tables: Tables = {}
    printed = []
    if not found:
        return files, "", tables
    alignment_md, alignment_rows = alignment_tables(found, layer, baseline)
    if alignment_md:
        found_correlations = [
            c
            for stage in (TESTED, PRETRAINED)
            for c in correlations(found, stage, layer, n_boot, seed, level, baseline)
        ]
        within = [
            c
            for stage in (TESTED, PRETRAINED)
            for c in correlations(found, stage, layer, n_boot, seed, level, baseline, per_setting=True)
        ]
        by_layer_md, by_layer_rows = layer_tables(found, baseline)
        alignment_md += "\n" + correlation_markdown(found_correlations + within, n_boot, level)
        alignment_md += "\n" + by_layer_md
        files["alignment_md"] = out / "alignment.md"
        files["alignment_csv"] = out / "alignment.csv"
        files["alignment_correlation_csv"] = out / "alignment_correlation.csv"
        files["alignment_layers_csv"] = out / "alignment_layers.csv"
        tables["alignment"] = (ALIGNMENT_CSV_COLUMNS, alignment_rows)
        tables["alignment_layers"] = (LAYER_CSV_COLUMNS, by_layer_rows)
        tables["alignment_correlation"] = (CORRELATION_COLUMNS, correlation_rows(found_correlations + within))
        for name in ("alignment", "alignment_layers", "alignment_correlation"):
            write_csv(files[f"{name}_csv"], tables[name][1], tables[name][0])
        files["alignment_md"].write_text(alignment_md, encoding="utf-8")
        files["alignment_gap"] = gap_plot(found_correlations, out / "alignment_gap.png", level)
        printed.append(alignment_md)
    for name, (markdown, rows, columns) in {
        "certified": (*certify_tables(found, baseline), CERTIFY_COLUMNS),
        "substitution": (*substitution_tables(found, n_boot, seed, level, baseline), SUBSTITUTION_COLUMNS),
    }.items():
        if markdown:
            files[f"{name}_md"], files[f"{name}_csv"] = out / f"{name}.md", out / f"{name}.csv"
            write_csv(files[f"{name}_csv"], rows, columns)
            tables[name] = (columns, rows)
            files[f"{name}_md"].write_text(markdown, encoding="utf-8")
            printed.append(markdown)
    return files, "\n".join(printed), tables
