"""TaskFields: what a task kind (xrobust/kinds/) reads of a task, as a Protocol that TaskSpec (task.py)
satisfies. The kinds type their hooks with it rather than importing task.py, which looks the kinds up
(get_kind): no import cycle between the two."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from xrobust.data.templates import Template


class TaskFields(Protocol):
    """The validated task fields and template look-ups a kind's validate/encode/candidates/extra test set hooks use."""

    @property
    def name(self) -> str: ...

    @property
    def kind(self) -> str: ...

    @property
    def languages(self) -> tuple[str, ...]: ...

    @property
    def text_fields(self) -> tuple[str, ...]: ...

    @property
    def label_names(self) -> tuple[str, ...]: ...

    @property
    def verbalizer(self) -> tuple[str, ...] | None: ...

    @property
    def templates(self) -> Mapping[str, Template]: ...

    @property
    def choice_fields(self) -> tuple[str, ...]: ...

    @property
    def question_field(self) -> str | None: ...

    @property
    def question_prompts(self) -> Mapping[str, str]: ...

    def prompt_template(self) -> Template: ...

    def label_strings(self) -> tuple[str, ...]: ...

    def check_language(self, lang: str) -> None: ...
