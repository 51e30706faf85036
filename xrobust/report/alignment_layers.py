"""Alignment through the encoder's depth (issue #32): per task, a row per setting and recorded layer with the target
languages' mean retrieval accuracy and CKA, before fine-tuning and as tested, mean over seeds. alignment.md's
per-language tables read one layer (--alignment-layer); this view shows where along the depth fine-tuning moves
the languages apart, which one layer cannot."""

from __future__ import annotations

import numpy as np

from xrobust.report.diagnostics_read import ALIGNMENT, PRETRAINED, TESTED, Diagnosed
from xrobust.report.diagnostics_tables import groups, languages_of
from xrobust.report.formatting import markdown_table
from xrobust.report.identity import setting_text
from xrobust.report.tables import seed_text

LAYER_MEASURES = ("retrieval", "cka")
LAYER_CSV_COLUMNS = ["task", "setting", "layer", "seeds", "languages"] + [
    f"{measure}_{stage}" for measure in LAYER_MEASURES for stage in (PRETRAINED, TESTED)
]


def common_layers(runs: list[Diagnosed]) -> list[int]:
    """The layers every run of the setting recorded, in depth order."""
    recorded = [{int(layer) for layer in run.value(ALIGNMENT, "layers")} for run in runs]
    return sorted(set.intersection(*recorded))


def layer_rows(runs: list[Diagnosed]) -> tuple[list[str], dict[int, dict[str, float]]]:
    """(target languages, {layer: {measure_stage: mean over those languages and the runs}})."""
    langs = languages_of(runs, lambda run, lang: lang in run.value(ALIGNMENT, TESTED))
    rows = {}
    for layer in common_layers(runs):
        rows[layer] = {
            f"{measure}_{stage}": float(
                np.mean([run.alignment(stage, layer, lang)[measure] for run in runs for lang in langs])
            )
            for measure in LAYER_MEASURES
            for stage in (PRETRAINED, TESTED)
        }
    return langs, rows


def layer_tables(found: list[Diagnosed], baseline: str = "none") -> tuple[str, list[dict]]:
    """(markdown, tidy rows): one table per task, a row per setting and layer."""
    by_task: dict[str, list[list[str]]] = {}
    tidy = []
    for task, setting, runs in groups(found, ALIGNMENT, baseline):
        langs, rows = layer_rows(runs)
        seeds = ",".join(str(run.job.seed) for run in runs)
        label = f"{setting_text(setting)} ({seed_text(run.job.seed for run in runs)})"
        for layer, values in rows.items():
            tidy.append(
                dict(task=task, setting=setting_text(setting), layer=layer, seeds=seeds, languages=len(langs)) | values
            )
            cells = [f"{values[f'retrieval_{stage}']:.1f}" for stage in (PRETRAINED, TESTED)]
            cells += [f"{values[f'cka_{stage}']:.3f}" for stage in (PRETRAINED, TESTED)]
            by_task.setdefault(task, []).append([label, str(layer), *cells])
    if not by_task:
        return "", tidy
    header = ["setting", "layer", "retrieval % pre", "retrieval % tuned", "CKA pre", "CKA tuned"]
    sections = [
        f"### {task}\n\n{markdown_table(header, body, ['l', 'r', 'r', 'r', 'r', 'r'])}\n"
        for task, body in by_task.items()
    ]
    intro = (
        "## Alignment by layer\n\nThe target languages' mean retrieval accuracy and linear CKA with English at every "
        "recorded layer (0 = the embeddings), before fine-tuning (pre) and as tested (tuned), mean over seeds; "
        "alignment_layers.csv holds the same rows.\n\n"
    )
    return intro + "\n".join(sections), tidy
