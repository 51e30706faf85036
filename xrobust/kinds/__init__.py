"""Task kinds by name: `task.kind: pair` is the module xrobust/kinds/pair.py and its `KIND` object, so a new
kind is one module here plus the task YAMLs that name it."""

from __future__ import annotations

import importlib
import pkgutil

from xrobust.errors import XrobustError
from xrobust.kinds.base import TaskKind

__all__ = ["TaskKind", "available_kinds", "get_kind"]


def available_kinds() -> list[str]:
    """The kind modules of this package (every module but `base`)."""
    return sorted(m.name for m in pkgutil.iter_modules(__path__) if m.name != "base" and not m.name.startswith("_"))


def get_kind(name: str) -> TaskKind:
    """The `KIND` of module xrobust.kinds.<name>; one XrobustError line naming the kinds there are otherwise."""
    kinds = available_kinds()
    if name not in kinds:
        raise XrobustError(f"task.kind={name!r} is not a task kind (available: {', '.join(kinds)}: xrobust/kinds/)")
    kind = getattr(importlib.import_module(f"{__name__}.{name}"), "KIND", None)
    if not isinstance(kind, TaskKind):
        raise XrobustError(f"task.kind={name!r}: xrobust/kinds/{name}.py defines no KIND (a TaskKind instance)")
    return kind
