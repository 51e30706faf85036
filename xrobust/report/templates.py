"""Prompt-template sweeps (`task.template=a,b,c`): per setting, task and language, the median and the maximum
accuracy over the templates, naming them. A prompted zero-shot score depends on the prompt, so one template's
number is neither typical nor the best the model does; xmtf reports the median and the best over its prompts.

Each language is summarised over the English templates (a template config without `language`), and separately
over the templates written in that language (`language: <lang>`, e.g. xP3mt's machine-translated prompts), the
two conditions xmtf compares; a prompt in a third language is left out of both. Seeds are averaged per template.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from pathlib import Path

from xrobust.report.collect import Job
from xrobust.report.formatting import markdown_table, pct, write_csv
from xrobust.report.identity import setting_text
from xrobust.run.run_result import HEADLINE

TEMPLATE = "task.template"
ENGLISH = "en"
TARGETS_MEAN = "targets mean"
TEMPLATE_COLUMNS = ["task", "setting", "lang", "prompts", "templates", "median", "max", "best", "names"]


def template_language(job: Job, name: str) -> str:
    """The language the job's template is written in (its config's task.templates.<name>.language; English when
    it has none)."""
    value = job.flat_config.get(f"task.templates.{name}.language")
    return ENGLISH if value in (None, "null", "") else value


def _groups(jobs: list[Job]) -> dict[tuple[str, str], dict[str, list[Job]]]:
    """{(task, setting without the template): {template: its jobs (one per seed)}}, for jobs a template sets apart."""
    groups: dict[tuple[str, str], dict[str, list[Job]]] = defaultdict(lambda: defaultdict(list))
    for job in jobs:
        if TEMPLATE not in job.setting:
            continue
        rest = {key: value for key, value in job.labels.items() if key != TEMPLATE}
        groups[(job.task, setting_text(rest))][job.setting[TEMPLATE]].append(job)
    return groups


def _mean_accuracy(jobs: list[Job]) -> dict[str, float]:
    """Per language, the template's accuracy averaged over its seeds, and the mean over the target languages."""
    out = {}
    for lang in dict.fromkeys(lang for job in jobs for lang in job.accuracy):
        values = [job.accuracy[lang] for job in jobs if lang in job.accuracy]
        out[lang] = sum(values) / len(values)
    source = jobs[0].source_language
    targets = [acc for lang, acc in out.items() if lang != source]
    if targets:
        out[TARGETS_MEAN] = sum(targets) / len(targets)
    return out


def _summary(scores: dict[str, float]) -> dict:
    best = max(scores.values())
    return {
        "templates": len(scores),
        "median": statistics.median(scores.values()),
        "max": best,
        "best": "/".join(name for name, score in sorted(scores.items()) if score == best),
        "names": ",".join(sorted(scores)),
    }


def template_rows(jobs: list[Job]) -> list[dict]:
    """One row per (task, setting, language, prompt language) of every template sweep; empty without one."""
    rows = []
    for (task, setting), by_template in sorted(_groups(jobs).items()):
        if len(by_template) < 2:
            continue
        accuracy = {name: _mean_accuracy(mine) for name, mine in by_template.items()}
        language = {name: template_language(mine[0], name) for name, mine in by_template.items()}
        langs = dict.fromkeys(lang for scores in accuracy.values() for lang in scores if lang != TARGETS_MEAN)
        for lang in [*langs, TARGETS_MEAN]:
            for prompts in dict.fromkeys((ENGLISH, lang)):
                if prompts == TARGETS_MEAN:
                    continue
                scores = {
                    name: accuracy[name][lang]
                    for name in by_template
                    if language[name] == prompts and lang in accuracy[name]
                }
                if scores:
                    rows.append({"task": task, "setting": setting, "lang": lang, "prompts": prompts} | _summary(scores))
    return rows


def templates_markdown(rows: list[dict], metrics: dict[str, str] | None = None) -> str:
    """Per task, the median and max over templates (in %, of the task's headline metric: `metrics`, accuracy where
    it names none) and the best template, per language."""
    if not rows:
        return ""
    parts = []
    for task in dict.fromkeys(row["task"] for row in rows):
        mine = [row for row in rows if row["task"] == task]
        body = [
            [
                row["setting"],
                row["lang"],
                row["prompts"],
                str(row["templates"]),
                pct(row["median"]),
                pct(row["max"]),
                row["best"],
            ]
            for row in mine
        ]
        names = "; ".join(
            dict.fromkeys(f"{row['setting']}: {row['names']}" for row in mine if row["prompts"] == ENGLISH)
        )
        header = ["setting", "lang", "prompts in", "templates", "median %", "max %", "best template"]
        parts.append(
            f"## {task}: {(metrics or {}).get(task, HEADLINE)} over prompt templates\n\nEnglish templates ({names}); "
            "a language's own templates (`language:` in the task config) are summarised apart.\n\n"
            + markdown_table(header, body, ["l", "l", "l", "r", "r", "r", "l"])
            + "\n"
        )
    return "\n".join(parts)


def template_tables(jobs: list[Job], out: Path) -> dict[str, Path]:
    """templates.csv and templates.md into `out` (the markdown printed) when the jobs hold a template sweep."""
    rows = template_rows(jobs)
    if not rows:
        return {}
    files = {"templates": out / "templates.csv", "templates_md": out / "templates.md"}
    write_csv(files["templates"], rows, TEMPLATE_COLUMNS)
    text = templates_markdown(rows, {job.task: job.metric for job in jobs})
    files["templates_md"].write_text(text, encoding="utf-8")
    print(text)
    return files
