"""What a task is, as data: its languages, labels, text fields and where its splits come from."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import MISSING, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from xrobust.config.composition import schema_error
from xrobust.config.schemas import HUB_DATA_FILES, TaskConfig
from xrobust.data.templates import Template, check_fields, check_verbalizer, parse_templates
from xrobust.errors import XrobustError
from xrobust.kinds import TaskKind, get_kind

LOCAL_FORMATS = ("tsv", "jsonl")
# A Hub dataset id: the Hub refuses ids without a namespace (huggingface_hub raises HfUriError for them).
HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*")
# The fields a task config must give, non-empty.
REQUIRED = ("name", "kind", "label_names", "languages")


@dataclass(frozen=True)
class TaskSpec:
    """A task config validated once at start-up, so the data code never second-guesses it. Its fields are the
    schema's (TaskConfig, xrobust/config/schemas.py: their meaning and defaults), lists made tuples and the
    templates parsed."""

    name: str
    # A module of xrobust/kinds/ (pair, multiple_choice): `task_kind` is its object.
    kind: str
    packaged: bool
    hub_id: str | None
    hub_config: str | None
    hub_splits: dict[str, str]
    revision: str | None
    hub_data_files: str
    text_fields: tuple[str, ...]
    label_names: tuple[str, ...]
    label_aliases: dict[str, str]
    source_language: str
    source_tested: bool
    languages: tuple[str, ...]
    local_format: str
    verbalizer: tuple[str, ...] | None
    templates: dict[str, Template]
    template: str
    source_hub: dict[str, Any] | None
    choice_fields: tuple[str, ...]
    question_field: str | None
    question_prompts: dict[str, str]
    local_train_files: str | None
    sizes: dict[str, Any] | None

    @classmethod
    def from_config(cls, cfg: Any) -> TaskSpec:
        """Build from the task node (typed by TaskConfig, or a plain mapping of the same keys), then check what the
        types cannot: the kind's fields, the languages, aliases, formats, Hub ids, templates."""
        raw = OmegaConf.to_container(cfg, resolve=True) if OmegaConf.is_config(cfg) else dict(cfg)
        where = f"task '{raw.get('name', '?')}'"
        for key in REQUIRED:
            if not raw.get(key) or raw[key] == MISSING:
                raise XrobustError(f"{where}: field 'task.{key}' is missing or empty")
        config = typed_task(raw, where)
        try:
            kind = get_kind(config.kind)
        except XrobustError as error:
            raise XrobustError(f"{where}: {error}") from None
        values = {spec.name: _frozen(getattr(config, spec.name)) for spec in dataclasses.fields(config)}
        values["hub_data_files"] = config.hub_data_files or HUB_DATA_FILES  # null: the default pattern
        values["sizes"] = config.sizes or None
        spec = cls(**values | {"templates": parse_templates(config.templates, where)})
        spec.check(where)
        kind.validate(spec, where)
        # The text-to-text head's keys, once the kind has checked the fields they name.
        check_fields(spec.templates, spec.input_fields, where)
        check_verbalizer(spec.verbalizer, len(spec.label_names), "task.verbalizer", where)
        for name, template in spec.templates.items():
            check_verbalizer(template.verbalizer, len(spec.label_names), f"task.templates.{name}.verbalizer", where)
        return spec

    def check(self, where: str) -> None:
        """The rules between fields that no type says."""
        if self.source_tested != (self.source_language in self.languages):
            raise XrobustError(
                f"{where}: task.source_language={self.source_language!r} must be in task.languages exactly when "
                f"task.source_tested is true (it is {str(self.source_tested).lower()})"
            )
        if len(set(self.languages)) != len(self.languages):
            raise XrobustError(f"{where}: task.languages lists a language twice: {list(self.languages)}")
        for alias, target in self.label_aliases.items():
            if target not in self.label_names:
                raise XrobustError(f"{where}: label alias {alias!r} points to unknown label {target!r}")
        if self.local_format not in LOCAL_FORMATS:
            raise XrobustError(f"{where}: task.local_format={self.local_format!r}, expected one of {LOCAL_FORMATS}")
        if self.source_hub is not None:
            if not self.source_hub.get("id") or not self.source_hub.get("splits"):
                raise XrobustError(f"{where}: task.source_hub needs an id and splits")
            check_hub_id(str(self.source_hub["id"]), "task.source_hub.id", where)
        if self.hub_id:
            check_hub_id(self.hub_id, "task.hub_id", where)

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


def typed_task(raw: dict[str, Any], where: str) -> TaskConfig:
    """The task's keys as TaskConfig: defaults filled in, each value of its field's type; a key the schema does not
    have or a value of the wrong type is one line naming it."""
    try:
        return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(TaskConfig), raw))
    except OmegaConfBaseException as err:
        line = schema_error(err, prefix="task.")
        raise XrobustError(f"{where}: {line or err}") from None


def _frozen(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def is_local_folder(hub_id: str) -> bool:
    """A hub_id naming an existing folder is a local copy in the Hub layout; datasets reads it without the Hub."""
    return Path(hub_id).expanduser().is_dir()


def check_hub_id(hub_id: str, key: str, where: str) -> None:
    if not (HUB_ID.fullmatch(hub_id) or is_local_folder(hub_id)):
        raise XrobustError(
            f"{where}: {key}={hub_id!r} is neither a Hub dataset id (namespace/name, e.g. facebook/xnli) "
            "nor an existing folder"
        )
