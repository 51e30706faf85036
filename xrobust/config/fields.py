"""Refuse a bad config value with one line naming the field, for the root config and the config groups alike."""

from __future__ import annotations

import dataclasses
import math
import typing
from collections.abc import Callable, Mapping
from typing import Any, Literal

from omegaconf import MISSING

from xrobust.errors import XrobustError

# How a field's type reads in an error line: `must be a finite number > 0`.
KIND_NAMES = {bool: "true or false", int: "an integer", float: "a finite number"}
# A real number as the YAML or the command line gives it, for a schema field: 2 stays 2 (a float field would make it
# 2.0, and change the config hash of a job that swept optim.lr_scale=0.5,1,2); a bool or a string is refused.
Number = int | float


def ranged(rule: str, ok: Callable[[Any], bool]) -> Any:
    """A schema field the YAML gives, with its range: `rule` says it in words for the error line (check_ranges)."""
    return dataclasses.field(default=MISSING, metadata={"rule": rule, "ok": ok})


def require(ok: bool, field: str, value: Any, rule: str, group: str | None = None) -> None:
    """`invalid config: optim.lr=0 (must be > 0)`; with a group the field is relative to it:
    `invalid noise config: noise.eps=-1.0 (must be >= 0)`."""
    if not ok:
        where = f"{group} config: {group}.{field}" if group else f"config: {field}"
        raise XrobustError(f"invalid {where}={value!r} ({rule})")


def typed(value: Any, field: str, kind: type, rule: str = "", ok: Callable[[Any], bool] = lambda _: True) -> None:
    """One command-line value against its type and range: `optim.lr=abc`, `data.batch_size=2.5`, `optim.lr=inf`
    get one line naming the key. bool is no number here; an int is a float; floats must be finite."""
    if kind is bool:
        fits = isinstance(value, bool)
    elif kind is int:
        fits = isinstance(value, int) and not isinstance(value, bool)
    else:
        fits = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    require(fits and ok(value), field, value, f"must be {KIND_NAMES[kind]}{' ' + rule if rule else ''}")


def check_fields(instance: Any, group: str | None = None, prefix: str = "") -> None:
    """Coerce every constructor field of a dataclass to its annotation, refusing what does not fit.

    YAML may give 1 for a float; bool is no int here; a `Literal` lists the allowed strings; a nested dataclass
    may come as a mapping (None for its defaults) and is checked the same way, its fields named `outer.inner`.
    Other annotations (`str | None`, lists) are left to the class.
    """
    hints = typing.get_type_hints(type(instance))
    for spec in dataclasses.fields(instance):
        if spec.init:
            name = prefix + spec.name
            setattr(instance, spec.name, _coerce(hints[spec.name], getattr(instance, spec.name), name, group))


def _coerce(hint: Any, value: Any, name: str, group: str | None) -> Any:
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if hint is float:
        require(number, name, value, "must be a number", group)
        return float(value)
    if hint is int:
        require(number and isinstance(value, int), name, value, "must be an integer", group)
        return value
    if hint is bool:
        require(isinstance(value, bool), name, value, "must be a bool", group)
        return value
    if typing.get_origin(hint) is Literal:
        allowed = typing.get_args(hint)
        require(value in allowed, name, value, f"must be one of {', '.join(allowed)}", group)
        return str(value)
    if dataclasses.is_dataclass(hint):
        if value is None or isinstance(value, Mapping):
            keys = [spec.name for spec in dataclasses.fields(hint) if spec.init]
            unknown = sorted(set(value or {}) - set(keys))
            require(not unknown, name, unknown, f"unknown key(s); allowed: {', '.join(keys)}", group)
            value = hint(**(value or {}))
        require(isinstance(value, hint), name, value, "must be a mapping", group)
        check_fields(value, group, f"{name}.")
    return value
