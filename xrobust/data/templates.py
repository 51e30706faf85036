"""Prompt templates of a task for the text-to-text head (`model.head=seq2seq`): how one row becomes one input
string, and which strings its labels are scored as.

A task config's `templates` maps a name to `{input, verbalizer, language}`: `input` is a Python format string
over the row's fields (`xnli: premise: {premise} hypothesis: {hypothesis}`), `verbalizer` the label strings when
they differ from the task's own `verbalizer`, `language` the prompt's language (absent: English). The task's
`template` names the one a run uses. Everything is checked once, when the task config is read.
"""

from __future__ import annotations

import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from xrobust.errors import XrobustError

TEMPLATE_KEYS = ("input", "verbalizer", "language")


@dataclass(frozen=True)
class Template:
    name: str
    input: str
    # None: the task's verbalizer (or, for multiple choice, the row's choices).
    verbalizer: tuple[str, ...] | None = None
    # The prompt's language; None is English.
    language: str | None = None

    @property
    def fields(self) -> tuple[str, ...]:
        """The row fields the input names, in order of first use."""
        names = [name for _, name, _, _ in string.Formatter().parse(self.input) if name is not None]
        return tuple(dict.fromkeys(names))

    def render(self, row: Mapping[str, Any]) -> str:
        return self.input.format_map(row)


def parse_templates(raw: Any, where: str) -> dict[str, Template]:
    """`task.templates` as Template objects; one XrobustError line for a malformed entry or a format string that
    does not parse."""
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise XrobustError(f"{where}: task.templates must map a template name to {{input, verbalizer, language}}")
    templates = {}
    for name, entry in raw.items():
        key = f"task.templates.{name}"
        if isinstance(entry, str):
            entry = {"input": entry}
        unknown = sorted(set(entry) - set(TEMPLATE_KEYS)) if isinstance(entry, Mapping) else []
        if unknown:
            raise XrobustError(f"{where}: {key} has unknown key(s) {unknown}; allowed: {', '.join(TEMPLATE_KEYS)}")
        if not isinstance(entry, Mapping) or not isinstance(entry.get("input"), str) or not entry["input"].strip():
            raise XrobustError(f"{where}: {key}.input must be a non-empty format string")
        verbalizer = entry.get("verbalizer")
        language = entry.get("language")
        template = Template(
            name=str(name),
            input=entry["input"],
            verbalizer=tuple(str(v) for v in verbalizer) if verbalizer is not None else None,
            language=str(language) if language is not None else None,
        )
        try:
            list(string.Formatter().parse(template.input))
        except ValueError as error:
            raise XrobustError(f"{where}: {key}.input={template.input!r} is not a format string ({error})") from None
        templates[template.name] = template
    return templates


def check_fields(templates: Mapping[str, Template], fields: Sequence[str], where: str) -> None:
    """Every field a template names is a field of the task's rows (`fields`)."""
    for name, template in templates.items():
        missing = [f for f in template.fields if f not in fields]
        if missing:
            raise XrobustError(
                f"{where}: task.templates.{name}.input names {{{missing[0]}}}, not a field of the task's rows "
                f"(fields: {', '.join(fields)})"
            )


def check_verbalizer(verbalizer: Sequence[str] | None, num_labels: int, key: str, where: str) -> None:
    """A verbalizer has one distinct, non-empty string per label."""
    if verbalizer is None:
        return
    if len(verbalizer) != num_labels:
        raise XrobustError(
            f"{where}: {key} has {len(verbalizer)} strings, the task {num_labels} labels (one string per label_names "
            "entry, in its order)"
        )
    if len(set(verbalizer)) != len(verbalizer) or not all(v.strip() for v in verbalizer):
        raise XrobustError(f"{where}: {key}={list(verbalizer)} must hold distinct, non-empty strings")
