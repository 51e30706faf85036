"""The transfer-gap-vs-alignment figure (issue #32): one panel per task and stage, one point per target language
and setting (retrieval accuracy across, English-minus-language accuracy up), the correlations in the title."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from xrobust.report.alignment_correlation import Correlation  # noqa: E402
from xrobust.report.bootstrap import Estimate  # noqa: E402
from xrobust.report.identity import setting_text  # noqa: E402


def estimate_text(name: str, found: Estimate | None) -> str:
    if found is None:
        return f"{name} -"
    if np.isnan(found.low):
        return f"{name} {found.value:+.2f}"
    return f"{name} {found.value:+.2f} [{found.low:+.2f}, {found.high:+.2f}]"


def gap_plot(found: list[Correlation], path: Path, level: float) -> Path:
    """Scatter per task (rows) and stage (columns), one marker series per setting, language codes beside points."""
    tasks = list(dict.fromkeys(c.task for c in found))
    stages = list(dict.fromkeys(c.stage for c in found))
    fig, axes = plt.subplots(len(tasks), len(stages), figsize=(5.5 * len(stages), 4.2 * len(tasks)), squeeze=False)
    for correlation in found:
        ax = axes[tasks.index(correlation.task), stages.index(correlation.stage)]
        settings = list(dict.fromkeys(setting_text(p.setting) for p in correlation.points))
        for setting in settings:
            mine = [p for p in correlation.points if setting_text(p.setting) == setting]
            ax.scatter([p.retrieval for p in mine], [p.gap for p in mine], s=22, label=setting)
            for p in mine:
                ax.annotate(p.language, (p.retrieval, p.gap), fontsize=7, xytext=(3, 2), textcoords="offset points")
        ax.set_xlabel(f"retrieval accuracy, {correlation.stage} (%)")
        ax.set_ylabel("transfer gap: English minus language (points)")
        stats = f"{estimate_text('Pearson', correlation.pearson)}, {estimate_text('Spearman', correlation.spearman)}"
        ax.set_title(f"{correlation.task}: {stats}\n({round(100 * level)}% item-bootstrap intervals)", fontsize=9)
        ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
