"""`--latex`: the score tables (each task's headline metric) and difference tables as booktabs LaTeX
(tables.tex), ready for a paper.

Cells and marks are the markdown's: scores in %, differences in points with their interval, bold where the
row-adjusted p-value is below 1 - level; the caption carries the markdown legend. Needs \\usepackage{booktabs}
and graphicx (each table is scaled to the text width).
"""

from __future__ import annotations

from collections import defaultdict

from xrobust.report.collect import Job, task_metric
from xrobust.report.contrast_estimate import NOISE_CHANGE, Comparison
from xrobust.report.diff_tables import COLUMN_TITLES, MEASURE_TITLES, legend
from xrobust.report.identity import MODEL, NOISE
from xrobust.report.sizes import human_params
from xrobust.report.tables import accuracy_rows, by_task, extra_keys, majority_row

SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\~{}",
    "^": r"\^{}",
    "<": "$<$",
    ">": "$>$",
    "±": r"$\pm$",
}


def escape(text: str) -> str:
    """Plain text (names, captions) as LaTeX text; markdown's bold marker is dropped."""
    return "".join(SPECIAL.get(char, char) for char in text.replace("**Bold**", "Bold"))


def signed(value: float) -> str:
    return f"${100 * value:+.1f}$"


def table(header: list[str], rows: list[list[str]], align: str, caption: str) -> str:
    lines = [
        r"\begin{table*}[t]",
        r"\centering",
        r"\resizebox{\textwidth}{!}{%",
        rf"\begin{{tabular}}{{{align}}}",
        r"\toprule",
        " & ".join(header) + r" \\",
        r"\midrule",
        *(" & ".join(row) + r" \\" for row in rows),
        r"\bottomrule",
        r"\end{tabular}}",
        rf"\caption{{{caption}}}",
        r"\end{table*}",
    ]
    return "\n".join(lines)


def accuracy_table(task: str, task_jobs: list[Job], baseline: str) -> str:
    languages, targets, rows = accuracy_rows(task_jobs, baseline)
    keys = [MODEL, "params", NOISE, *extra_keys(task_jobs)]
    header = [escape(k) for k in keys] + [escape(lang) for lang in languages] + ["target mean", "all-lang. mean"]

    def pct(value):
        return "" if value is None else f"{100 * value:.1f}"

    body = [
        [escape(row["labels"].get(k, row["params"] if k == "params" else "")) for k in keys]
        + [pct(row["accuracy"][lang]) for lang in languages]
        + [pct(row["target_mean"]), pct(row["all_mean"])]
        for row in rows
    ]
    base = majority_row(task_jobs, languages, targets)
    if base is not None:
        body.append(["majority class", *("" for _ in keys[1:]), *(pct(base[lang]) for lang in languages)])
        body[-1] += [pct(base.get("target_mean")), pct(base["all_mean"])]
    caption = escape(
        f"{task}: test {task_metric(task_jobs)} (%), mean over seeds "
        f"{','.join(map(str, sorted({j.seed for j in task_jobs})))}; "
        f"target mean over the {len(targets)} languages other than {task_jobs[0].source_language}; all-language "
        "mean over every language (the XTREME convention)."
    )
    return table(header, body, "l" * len(keys) + "r" * (len(languages) + 2), caption)


def diff_cell(comp: Comparison, col: str) -> str:
    est = comp.estimates[col]
    value = signed(est.value)
    if comp.significant(col):
        value = rf"$\mathbf{{{100 * est.value:+.1f}}}$"
    std = comp.seed_std.get(col)
    spread = rf"{{\scriptsize$\pm${100 * std:.1f}}}" if std is not None else ""
    return rf"{value}{spread} {{\scriptsize[{signed(est.low)}, {signed(est.high)}]}}"


def diff_table(comps: list[Comparison], n_boot: int) -> str:
    first = comps[0]
    keys = list(first.condition)
    pair = first.axis != MODEL
    header = [escape(k) for k in keys] + (["contrast"] if pair else []) + ["seeds"]
    header += [escape(COLUMN_TITLES.get(c, c)) for c in first.columns]
    body = [
        [escape(c.condition[k]) for k in keys]
        + ([escape(f"{c.first} - {c.second}")] if pair else [])
        + [",".join(map(str, c.seeds))]
        + [diff_cell(c, col) for col in first.columns]
        for c in comps
    ]
    if pair:
        what = f"contrasts along {first.axis} (first minus second)"
    else:
        what = f"{first.first} ({human_params(first.first_size.total)}) minus {first.second}"
        what += f" ({human_params(first.second_size.total)})"
    if first.kind == NOISE_CHANGE:
        what = f"change of the gap {what} under each noise, relative to {first.baseline}"
    caption = f"{first.task}{MEASURE_TITLES[first.measure]}: {what}. " + legend(
        comps, n_boot, "as in the title", p_table=False
    )
    return table(header, body, "l" * (len(keys) + 1 + pair) + "r" * len(first.columns), escape(caption))


def latex_tables(jobs: list[Job], comparisons: list[Comparison], n_boot: int, baseline: str = "none") -> str:
    """Every accuracy table, then every difference table (one per task, measure, pair and kind)."""
    parts = [
        "% xrobust-report --latex: needs \\usepackage{booktabs} and \\usepackage{graphicx}",
        *(accuracy_table(task, task_jobs, baseline) for task, task_jobs in by_task(jobs).items()),
    ]
    groups: dict[tuple, list[Comparison]] = defaultdict(list)
    for comp in comparisons:
        pair = (comp.first, comp.second) if comp.axis == MODEL else ()
        groups[(comp.task, comp.measure, comp.axis, comp.kind, *pair)].append(comp)
    parts += [diff_table(comps, n_boot) for comps in groups.values()]
    return "\n\n".join(parts) + "\n"
