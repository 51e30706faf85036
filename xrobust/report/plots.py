"""PNG figures: the headline-metric heatmap (language x configuration) and the size difference with its intervals."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from xrobust.report.bootstrap import ALL_MEAN, TARGET_MEAN  # noqa: E402
from xrobust.report.collect import Job, task_metric  # noqa: E402
from xrobust.report.contrast_estimate import SIZE, Comparison  # noqa: E402
from xrobust.report.identity import MODEL, setting_text  # noqa: E402
from xrobust.report.item_rows import ACCURACY  # noqa: E402
from xrobust.report.tables import ordered_settings, runs_of  # noqa: E402


def heatmap(jobs: list[Job], path: Path, baseline: str = "none") -> Path:
    """One panel per task: rows languages (then the target mean), columns model/noise, cells the task's metric in %."""
    by_task: dict[str, list[Job]] = defaultdict(list)
    for job in jobs:
        by_task[job.task].append(job)
    tasks = sorted(by_task)
    panels = []
    for task in tasks:
        task_jobs = by_task[task]
        languages = list(dict.fromkeys(lang for job in task_jobs for lang in job.languages))
        source = task_jobs[0].source_language
        targets = [lang for lang in languages if lang != source]
        configs, columns = [], []
        for setting in ordered_settings(task_jobs, baseline):
            runs = runs_of(task_jobs, setting)
            acc = [np.mean([job.accuracy.get(lang, np.nan) for job in runs]) for lang in languages]
            acc.append(np.nanmean([a for lang, a in zip(languages, acc, strict=False) if lang in targets]))
            columns.append(acc)
            seeds = [f"({len(runs)} seeds)"] if len(runs) > 1 else []
            rest = [setting_text({k: v}) for k, v in setting.items() if k != MODEL]
            configs.append("\n".join([setting[MODEL], *rest, *seeds]))
        panels.append((task, [*languages, "target mean"], configs, 100 * np.array(columns).T))
    longest = max(len(line) for p in panels for config in p[2] for line in config.splitlines())
    width = max(4.0, max(1.1, 0.07 * longest) * max(len(p[2]) for p in panels) + 1.5)
    lines = max(config.count("\n") for p in panels for config in p[2])  # tick labels: one line per key
    height = sum(0.45 * len(p[1]) + 1.3 + 0.2 * lines for p in panels)
    fig, axes = plt.subplots(len(panels), 1, figsize=(width, height), squeeze=False)
    for ax, (task, rows, configs, values) in zip(axes[:, 0], panels, strict=True):
        image = ax.imshow(values, cmap="viridis", aspect="auto")
        ax.set_xticks(range(len(configs)), configs, fontsize=8)
        ax.set_yticks(range(len(rows)), rows, fontsize=9)
        ax.axhline(len(rows) - 1.5, color="white", linewidth=2)
        middle = np.nanmean(values)
        for (r, c), value in np.ndenumerate(values):
            if np.isfinite(value):
                color = "black" if value > middle else "white"
                ax.text(c, r, f"{value:.1f}", ha="center", va="center", fontsize=8, color=color)
        ax.set_title(f"{task}: test {task_metric(by_task[task])} (%)", fontsize=10)
        fig.colorbar(image, ax=ax, fraction=0.04, pad=0.02)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def size_diff_plot(comparisons: list[Comparison], path: Path) -> Path:
    """One panel per task and model pair: larger minus smaller per language, one series per noise, CI bars."""
    groups: dict[tuple, list[Comparison]] = defaultdict(list)
    for comp in comparisons:
        if comp.kind == SIZE and comp.measure == ACCURACY:
            groups[(comp.task, comp.larger, comp.smaller)].append(comp)
    n_panels = max(1, len(groups))
    fig, axes = plt.subplots(n_panels, 1, figsize=(9.5, 3.6 * n_panels), squeeze=False)
    if not groups:
        axes[0, 0].text(0.5, 0.5, "no size comparison (one model per task)", ha="center", va="center")
        axes[0, 0].set_axis_off()
    for ax, ((task, larger, smaller), comps) in zip(axes[:, 0], groups.items(), strict=False):
        columns = comps[0].columns
        x = np.arange(len(columns))
        width = 0.8 / len(comps)
        for i, comp in enumerate(comps):
            est = [comp.estimates[col] for col in columns]
            values = np.array([100 * e.value for e in est])
            errors = np.array([[100 * (e.value - e.low) for e in est], [100 * (e.high - e.value) for e in est]])
            ax.errorbar(
                x + (i - (len(comps) - 1) / 2) * width,
                values,
                yerr=errors,
                fmt="o",
                capsize=3,
                markersize=4,
                label=f"{setting_text(comp.condition)} (seeds {','.join(map(str, comp.seeds))})",
            )
        ax.axhline(0, color="grey", linewidth=0.8)
        ax.axvline(len(columns) - 2.5, color="grey", linewidth=0.5, linestyle=":")
        names = {TARGET_MEAN: "target\nmean", ALL_MEAN: "all-lang.\nmean"}
        ax.set_xticks(x, [names.get(c, c) for c in columns])
        ax.set_ylabel(f"{comps[0].metric} difference (points)")
        level = int(round(100 * (1 - comps[0].alpha)))
        ax.set_title(f"{task}: {larger} minus {smaller}, {level}% bootstrap intervals (seeds and items)", fontsize=10)
        ax.legend(fontsize=8, title="setting", title_fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
