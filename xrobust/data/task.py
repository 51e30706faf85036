"""What a task is, as data: its languages, labels, text fields and where its splits come from."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xrobust.data.templates import Template, check_fields, check_verbalizer, parse_templates
from xrobust.errors import XrobustError
from xrobust.kinds import TaskKind, get_kind

LOCAL_FORMATS = ("tsv", "jsonl")
# A Hub dataset id: the Hub refuses ids without a namespace (huggingface_hub raises HfUriError for them).
HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*")
# The Parquet layout of the Hub's datasets: <config>/<split>-00000-of-00001.parquet (more shards for big splits).
HUB_DATA_FILES = "{config}/{split}-*.parquet"


@dataclass(frozen=True)
class TaskSpec:
    """A task config validated once at start-up, so the data code never second-guesses it."""

    name: str
    # A module of xrobust/kinds/ (pair, multiple_choice): `task_kind` is its object.
    kind: str
    label_names: tuple[str, ...]
    languages: tuple[str, ...]
    source_language: str = "en"
    # False when the task has no source-language test set (XCOPA, AmericasNLI): then it is not in `languages`.
    source_tested: bool = True
    text_fields: tuple[str, ...] = ("premise", "hypothesis")
    label_aliases: dict[str, str] = field(default_factory=dict)
    packaged: bool = False
    # A Hub dataset id (namespace/name) or a local folder in the same layout (a mirror or a downloaded copy).
    hub_id: str | None = None
    hub_config: str | None = None
    hub_splits: dict[str, str] = field(default_factory=dict)
    # The Hub commit (or branch, tag) of hub_id to load; None means the newest.
    revision: str | None = None
    # Which files of the repo hold one split: only those are downloaded and prepared.
    hub_data_files: str = HUB_DATA_FILES
    # English data from another hub dataset ({id, config, splits, revision}), e.g. COPA for XCOPA.
    source_hub: dict[str, Any] | None = None
    # Multiple choice: the context is text_fields[0] (plus the question's prompt), each choice one candidate.
    choice_fields: tuple[str, ...] = ()
    question_field: str | None = None
    question_prompts: dict[str, str] = field(default_factory=dict)
    local_format: str = "tsv"
    # A glob for the English training files when they are several, e.g. XCOPA's train-en-from-*.jsonl.
    local_train_files: str | None = None
    # The text-to-text head (model.head=seq2seq; xrobust/data/templates.py): the label strings (None: label_names),
    # prompt templates by name, and the name a run uses.
    verbalizer: tuple[str, ...] | None = None
    templates: dict[str, Template] = field(default_factory=dict)
    template: str = "mt5"
    # A Hub task's splits as xrobust-plan plans them: examples and mean tokens (e.g. conf/task/xnli.yaml; checked
    # by xrobust/plan/data.py). Training never reads them.
    sizes: dict[str, Any] | None = None

    @classmethod
    def from_config(cls, cfg: Any) -> TaskSpec:
        raw = dict(cfg)
        where = f"task '{raw.get('name', '?')}'"
        for key in ("name", "kind", "label_names", "languages"):
            if not raw.get(key):
                raise XrobustError(f"{where}: field 'task.{key}' is missing or empty")
        try:
            kind = get_kind(str(raw["kind"]))
        except XrobustError as error:
            raise XrobustError(f"{where}: {error}") from None
        languages = tuple(raw["languages"])
        source = raw.get("source_language", "en")
        source_tested = bool(raw.get("source_tested", True))
        if source_tested != (source in languages):
            raise XrobustError(
                f"{where}: task.source_language={source!r} must be in task.languages exactly when "
                f"task.source_tested is true (it is {str(source_tested).lower()})"
            )
        if len(set(languages)) != len(languages):
            raise XrobustError(f"{where}: task.languages lists a language twice: {list(languages)}")
        labels = tuple(str(x) for x in raw["label_names"])
        aliases = {str(k): str(v) for k, v in (raw.get("label_aliases") or {}).items()}
        for alias, target in aliases.items():
            if target not in labels:
                raise XrobustError(f"{where}: label alias {alias!r} points to unknown label {target!r}")
        local_format = str(raw.get("local_format") or "tsv")
        if local_format not in LOCAL_FORMATS:
            raise XrobustError(f"{where}: task.local_format={local_format!r}, expected one of {LOCAL_FORMATS}")
        source_hub = raw.get("source_hub")
        if source_hub is not None:
            source_hub = dict(source_hub)
            if not source_hub.get("id") or not source_hub.get("splits"):
                raise XrobustError(f"{where}: task.source_hub needs an id and splits")
            source_hub["splits"] = dict(source_hub["splits"])
            check_hub_id(str(source_hub["id"]), "task.source_hub.id", where)
        if raw.get("hub_id"):
            check_hub_id(str(raw["hub_id"]), "task.hub_id", where)
        verbalizer = raw.get("verbalizer")
        spec = cls(
            name=str(raw["name"]),
            kind=str(raw["kind"]),
            label_names=labels,
            languages=languages,
            source_language=source,
            source_tested=source_tested,
            text_fields=tuple(raw.get("text_fields") or ("premise", "hypothesis")),
            label_aliases=aliases,
            packaged=bool(raw.get("packaged", False)),
            hub_id=raw.get("hub_id"),
            hub_config=raw.get("hub_config"),
            hub_splits=dict(raw.get("hub_splits") or {}),
            revision=str(raw["revision"]) if raw.get("revision") else None,
            hub_data_files=str(raw.get("hub_data_files") or HUB_DATA_FILES),
            source_hub=source_hub,
            choice_fields=tuple(raw.get("choice_fields") or ()),
            question_field=raw.get("question_field"),
            question_prompts={str(k): str(v) for k, v in (raw.get("question_prompts") or {}).items()},
            local_format=local_format,
            local_train_files=raw.get("local_train_files"),
            verbalizer=tuple(str(v) for v in verbalizer) if verbalizer is not None else None,
            templates=parse_templates(raw.get("templates"), where),
            template=str(raw.get("template") or "mt5"),
            sizes=dict(raw["sizes"]) if raw.get("sizes") else None,
        )
        kind.validate(spec, where)
        # The text-to-text head's keys, once the kind has checked the fields they name.
        check_fields(spec.templates, spec.input_fields, where)
        check_verbalizer(spec.verbalizer, len(labels), "task.verbalizer", where)
        for name, template in spec.templates.items():
            check_verbalizer(template.verbalizer, len(labels), f"task.templates.{name}.verbalizer", where)
        return spec

    @property
    def target_languages(self) -> tuple[str, ...]:
        return tuple(lang for lang in self.languages if lang != self.source_language)

    def label_index(self, raw: str) -> int | None:
        """Map a file's label (name, alias or integer index) to its index; None when unknown. An index is ASCII
        digits only: str.isdigit() also takes `١` (read as 1) and `²` (which int() refuses)."""
        raw = raw.strip()
        name = self.label_aliases.get(raw, raw)
        if name in self.label_names:
            return self.label_names.index(name)
        if raw.isascii() and raw.isdigit() and int(raw) < len(self.label_names):
            return int(raw)
        return None

    @property
    def task_kind(self) -> TaskKind:
        """The kind object: how this task's rows are encoded, batched, modelled and scored."""
        return get_kind(self.kind)

    @property
    def input_fields(self) -> tuple[str, ...]:
        """Every column an example needs besides its label."""
        return (*self.text_fields, self.question_field) if self.question_field else self.text_fields

    def prompt_template(self) -> Template:
        """The template `task.template` names; one XrobustError line when the task has none of that name."""
        if self.template not in self.templates:
            have = ", ".join(self.templates) or "none"
            raise XrobustError(
                f"task '{self.name}': task.template={self.template!r} names no entry of task.templates (it has: "
                f"{have}); model.head=seq2seq formats every row with it"
            )
        return self.templates[self.template]

    def label_strings(self) -> tuple[str, ...]:
        """What the text-to-text head scores each label as: the chosen template's verbalizer, else the task's,
        else the label names."""
        return self.prompt_template().verbalizer or self.verbalizer or self.label_names

    def check_language(self, lang: str) -> None:
        """The task's test languages and its source language (which need not be tested, e.g. XCOPA)."""
        if lang not in self.languages and lang != self.source_language:
            raise XrobustError(
                f"language {lang!r} is not part of task '{self.name}' (languages: {', '.join(self.languages)})"
            )


def is_local_folder(hub_id: str) -> bool:
    """A hub_id naming an existing folder is a local copy in the Hub layout; datasets reads it without the Hub."""
    return Path(hub_id).expanduser().is_dir()


def check_hub_id(hub_id: str, key: str, where: str) -> None:
    if not (HUB_ID.fullmatch(hub_id) or is_local_folder(hub_id)):
        raise XrobustError(
            f"{where}: {key}={hub_id!r} is neither a Hub dataset id (namespace/name, e.g. facebook/xnli) "
            "nor an existing folder"
        )
