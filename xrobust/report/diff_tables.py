"""The difference tables: size_diff.csv (fractions, one row per contrast x column) and size_diff.md (points).

Markdown: per task, measure and pair (along `model`) or per task, measure and axis (otherwise), a table of the
contrasts with their intervals, bold where the row-adjusted p-value is below 1 - level, then the raw and
adjusted p-values. The legend says what the interval covers, and of which metric (the task's headline one: a
difference is of one metric, item_contrasts.Grid refuses two).
"""

from __future__ import annotations

from collections import defaultdict

from xrobust.report.bootstrap import ALL_MEAN, MIN_SEEDS, TARGET_MEAN
from xrobust.report.contrast_estimate import INDEPENDENT, JOINT, MIXED_MEAN, NOISE_CHANGE, SIZE, Comparison
from xrobust.report.corrections import CORRECTION_NAMES
from xrobust.report.formatting import markdown_table, p_text
from xrobust.report.identity import MODEL
from xrobust.report.item_rows import ACCURACY, GENERALIZED, PERTURBED
from xrobust.report.sizes import human_params
from xrobust.run.run_result import HEADLINE

SIZE_DIFF_COLUMNS = [
    "task",
    "kind",
    "noise",
    "baseline",
    "larger",
    "smaller",
    "larger_params",
    "smaller_params",
    "lang",
    "diff",
    "ci_low",
    "ci_high",
    "seed_std",
    "n_seeds",
    "seeds",
    "n_items",
    "larger_accuracy",
    "smaller_accuracy",
    "measure",
    "axis",
    "setting",
    "larger_non_embedding",
    "smaller_non_embedding",
    "resampling",
    "p",
    "p_adjusted",
    "correction",
    "significant",
    "p_perm",
    "p_perm_adjusted",
]
MEASURE_TITLES = {
    ACCURACY: "",
    PERTURBED: ", perturbed read-out (eval.perturbed: clean classifier, noisy test input)",
    GENERALIZED: ", generalized setting (mixed-pair mean: sentence 1 in A, sentence 2 in B)",
}
COLUMN_TITLES = {TARGET_MEAN: "target mean", ALL_MEAN: "all-language mean", MIXED_MEAN: "mixed-pair mean"}


def size_diff_columns(comparisons: list[Comparison]) -> list[str]:
    """SIZE_DIFF_COLUMNS with each side's score column per headline metric of the comparisons (larger_f1, ...);
    each row fills its own metric's (SIZE_DIFF_COLUMNS itself when every one is accuracy)."""
    metrics = list(dict.fromkeys(comp.metric for comp in comparisons)) or [HEADLINE]
    named = {f"{side}_{HEADLINE}": [f"{side}_{metric}" for metric in metrics] for side in ("larger", "smaller")}
    return [name for column in SIZE_DIFF_COLUMNS for name in named.get(column, [column])]


def setting_text(labels: dict[str, str]) -> str:
    return ", ".join(f"{k}={v}" for k, v in labels.items())


def size_diff_rows(comparisons: list[Comparison]) -> list[dict]:
    """One row per comparison x column (test set or mean); fractions, not points. `larger`/`smaller` hold the
    first and second side of the contrast (models along --compare model, else the compared values); the standard
    read-out's measure is the metric's name (accuracy, or the kind's headline metric)."""
    rows = []
    for comp in comparisons:
        for col in comp.columns:
            est = comp.estimates[col]
            rows.append(
                {
                    "task": comp.task,
                    "kind": comp.kind,
                    "noise": comp.noise,
                    "baseline": comp.baseline,
                    "larger": comp.first,
                    "smaller": comp.second,
                    "larger_params": comp.larger_params,
                    "smaller_params": comp.smaller_params,
                    "lang": col,
                    "diff": est.value,
                    "ci_low": est.low,
                    "ci_high": est.high,
                    "seed_std": comp.seed_std.get(col),
                    "n_seeds": len(comp.seeds),
                    "seeds": " ".join(str(s) for s in comp.seeds),
                    "n_items": comp.n_items_of(col),
                    f"larger_{comp.metric}": comp.first_accuracy.get(col),
                    f"smaller_{comp.metric}": comp.second_accuracy.get(col),
                    "measure": comp.metric if comp.measure == ACCURACY else comp.measure,
                    "axis": comp.axis,
                    "setting": setting_text(comp.condition),
                    "larger_non_embedding": comp.first_size.body if comp.first_size else None,
                    "smaller_non_embedding": comp.second_size.body if comp.second_size else None,
                    "resampling": comp.resampling,
                    "p": comp.p[col],
                    "p_adjusted": comp.p_adjusted[col],
                    "correction": comp.correction,
                    "significant": comp.significant(col) if comp.assessed else "n/a",
                    "p_perm": (comp.p_perm or {}).get(col),
                    "p_perm_adjusted": (comp.p_perm_adjusted or {}).get(col),
                }
            )
    return rows


def diff_cell(comp: Comparison, col: str) -> str:
    """'+3.0 [-4.5, +10.6]' in points; '± std' over seeds when there are several; bold when significant after
    the row's correction."""
    est = comp.estimates[col]
    text = f"{100 * est.value:+.1f}"
    std = comp.seed_std.get(col)
    if std is not None:
        text += f" ± {100 * std:.1f}"
    text += f" [{100 * est.low:+.1f}, {100 * est.high:+.1f}]"
    return f"**{text}**" if comp.significant(col) else text


def p_cell(comp: Comparison, col: str) -> str:
    if not comp.assessed:
        return "n/a"
    text = f"{p_text(comp.p[col])} / {p_text(comp.p_adjusted[col])}"
    if comp.p_perm is not None:
        text += f"; perm {p_text(comp.p_perm[col])} / {p_text(comp.p_perm_adjusted[col])}"
    return text


def legend(comps: list[Comparison], n_boot: int, what: str, p_table: bool = True) -> str:
    """What a cell is, what its interval covers, what bold means."""
    first = comps[0]
    level, name = int(round(100 * (1 - first.alpha))), CORRECTION_NAMES[first.correction]
    resampling = {comp.resampling for comp in comps}
    if resampling == {JOINT}:
        items = (
            "test items drawn jointly across the test sets (parallel sets: an item and its translations stay together)"
        )
    elif resampling == {INDEPENDENT}:
        items = "test items drawn within each test set (the sets are not parallel, or there is one)"
    else:
        items = "test items drawn jointly across parallel test sets, within each set otherwise (see size_diff.csv)"
    n_seeds = {len(comp.seeds) for comp in comps}
    seed_lists = sorted({",".join(map(str, comp.seeds)) for comp in comps})
    if n_seeds == {1}:
        seeds = f"One seed ({seed_lists[0]}): the interval covers test-set sampling only, not training randomness."
    else:
        seeds = (
            f"Seeds {' / '.join(seed_lists)}: the interval adds a t(k - 1) seed part (k seeds, the spread of the "
            "per-seed differences) to the test-item part, so a few seeds give a wide interval."
        )
    if min(n_seeds) < MIN_SEEDS:
        seeds += (
            f" Rows with fewer than {MIN_SEEDS} seeds: significance n/a (never bold): one or two seeds cannot tell "
            "a size gap from training randomness."
        )
    if len(first.columns) > 1:
        bold = f"{name}-adjusted p < {first.alpha:.2f} over the {len(first.columns)} cells of the row"
    else:
        bold = f"p < {first.alpha:.2f} (one cell per row: nothing to adjust)"
    perm = " (perm: paired sign-flip permutation test, given the trained models)" if first.p_perm is not None else ""
    p_values = f" p-values below as raw / adjusted{perm}." if p_table else ""
    means = ""
    if ALL_MEAN in first.columns:
        means = (
            f" target mean: over the languages other than {first.source_language}; all-language mean: over every "
            f"language, {first.source_language} included (the XTREME convention)."
        )
    return (
        f"Cells: {first.metric} difference in points, {what}, on the same test items, mean over seeds.{means} "
        f"Brackets: {level}% percentile interval ({n_boot} resamples) of {items}, plus the seed part. {seeds} ± = "
        f"standard deviation of the per-seed difference (descriptive, several seeds only). **Bold**: {bold}; the "
        f"interval itself is not adjusted.{p_values}"
    )


def _table(comps: list[Comparison], label_keys: list[str], with_pair: bool) -> tuple[str, str]:
    columns = comps[0].columns
    header = [*label_keys, *(["contrast"] if with_pair else []), "seeds", *(COLUMN_TITLES.get(c, c) for c in columns)]
    align = [*("l" for _ in label_keys), *(["l"] if with_pair else []), "l", *("r" for _ in columns)]

    def rows(cell) -> list[list[str]]:
        return [
            [comp.condition.get(k, "") for k in label_keys]
            + ([f"{comp.first} - {comp.second}"] if with_pair else [])
            + [",".join(map(str, comp.seeds)), *(cell(comp, col) for col in columns)]
            for comp in comps
        ]

    return markdown_table(header, rows(diff_cell), align), markdown_table(header, rows(p_cell), align)


def _section(title: str, comps: list[Comparison], n_boot: int, what: str | None, with_pair: bool, notes=()):
    """Title, notes, legend (what=None: 'as above'), the table and its p-values."""
    label_keys = list(comps[0].condition)
    table, p_table = _table(comps, label_keys, with_pair)
    text = legend(comps, n_boot, what) if what else "Brackets, ±, bold and p-values as in the table above."
    return [title, *notes, text, table, "p-values (raw / adjusted):", p_table]


def size_diff_markdown(comparisons: list[Comparison], n_boot: int, level: float = 0.95, notes=(), basis=None) -> str:
    """Per task, measure and pair: the contrast per setting, then (model axis) how each noise changes the gap.
    basis: {task: sentence on what 'larger' means there} for the model axis."""
    groups: dict[tuple, list[Comparison]] = defaultdict(list)
    for comp in comparisons:
        pair = (comp.first, comp.second) if comp.axis == MODEL else ()
        groups[(comp.task, comp.measure, comp.axis, *pair)].append(comp)
    sections = []
    for (task, measure, axis, *pair), comps in groups.items():
        head = f"## {task}{MEASURE_TITLES[measure]}: "
        if axis != MODEL:
            sections.append(
                "\n\n".join(_section(f"{head}contrasts along {axis}", comps, n_boot, "first minus second", True))
            )
            continue
        first, second = comps[0].first_size, comps[0].second_size
        title = f"{head}{pair[0]} ({human_params(first.total)}) minus {pair[1]} ({human_params(second.total)})"
        extra = []
        if first.body is not None and second.body is not None:
            extra.append(f"Non-embedding (body) parameters: {human_params(first.body)} vs {human_params(second.body)}.")
        if basis and task in basis:
            extra.append(basis[task])
        size = [c for c in comps if c.kind == SIZE]
        change = [c for c in comps if c.kind == NOISE_CHANGE]
        part = _section(title, size, n_boot, "first minus second model", False, extra) if size else [title, "(none)"]
        if change:
            baseline = change[0].baseline
            part += [
                f"### Change of the size gap under noise: (larger - smaller)[noise] - (larger - smaller)[{baseline}]",
                "Positive: the noise widens the first model's lead; the bootstrap draws the same seeds and items in "
                "all four runs.",
                *_section("", change, n_boot, None if size else "gap minus baseline gap", False)[1:],
            ]
        sections.append("\n\n".join(part))
    if notes:
        sections.append("Notes:\n\n" + "\n".join(f"- {note}" for note in notes))
    if not sections:
        return "No size comparison: the sweep holds one model per task.\n"
    return "\n\n".join(sections) + "\n"
