"""Hydra refuses an override the schemas (xrobust/config/schemas.py) do not take while it composes, before any
xrobust code runs; this turns that refusal into the project's one `xrobust: error:` line naming the key, exit 2."""

from __future__ import annotations

import dataclasses
import difflib
import functools
import os
import sys
import types
import typing
from collections.abc import Callable
from typing import Any

from hydra._internal.utils import run_and_report
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException, ValidationError

from xrobust import console
from xrobust.config.fields import KIND_NAMES
from xrobust.config.schemas import STORED, hints
from xrobust.errors import XrobustError

# Hydra prints an error and exits 1 unless this is set; then it raises, and the entry point words the error.
FULL_ERROR = "HYDRA_FULL_ERROR"


def schema_error(err: BaseException, prefix: str = "") -> XrobustError | None:
    """The one-line error for a composition error the schemas caused (a wrong type, a key no schema has); None
    for any other error, which Hydra reports as before. `prefix` places a node typed on its own (`task.`)."""
    cause = _omegaconf_cause(err)
    schema = getattr(cause, "object_type", None)
    if cause is None or schema not in _all_schemas(stored for _, _, stored in STORED) or not cause.full_key:
        return None
    key = prefix + str(cause.full_key)
    parent, _, leaf = key.rpartition(".")
    if isinstance(cause, ValidationError):
        return XrobustError(f"invalid config: {key}={cause.value!r} (must be {_expected(schema, leaf)})")
    names = [spec.name for spec in dataclasses.fields(schema)]
    near = difflib.get_close_matches(leaf, names, n=1)
    hint = f"; did you mean {parent + '.' if parent else ''}{near[0]}?" if near else f"; it has: {', '.join(names)}"
    owner = parent or "the root config"
    return XrobustError(f"invalid config: {key} is not a config key ({owner} has no {leaf!r}{hint})")


def schema_errors(main: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a `hydra.main` entry point: a schema's refusal is one line and exit 2; every other error as Hydra
    reports it."""

    @functools.wraps(main)
    def entry(*args: Any, **kwargs: Any) -> Any:
        asked = os.environ.get(FULL_ERROR)
        os.environ[FULL_ERROR] = "1"
        try:
            return main(*args, **kwargs)
        except Exception as err:
            line = schema_error(err)
            if line is not None:
                console.say(f"xrobust: error: {line}")
                sys.exit(2)
            if asked is not None:
                raise
            del os.environ[FULL_ERROR]
            return run_and_report(functools.partial(_reraise, err))
        finally:
            _restore(asked)

    return entry


def _reraise(err: Exception) -> None:
    raise err


def _restore(asked: str | None) -> None:
    if asked is None:
        os.environ.pop(FULL_ERROR, None)
    else:
        os.environ[FULL_ERROR] = asked


def _omegaconf_cause(err: BaseException) -> OmegaConfBaseException | None:
    """The key or type error in `err`'s chain (Hydra raises its own exception from OmegaConf's)."""
    seen: BaseException | None = err
    while seen is not None:
        if isinstance(seen, ValidationError | ConfigKeyError | ConfigAttributeError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _all_schemas(schemas: Any) -> list[type]:
    found = []
    for schema in schemas:
        found.append(schema)
        found.extend(_all_schemas(h for h in typing.get_type_hints(schema).values() if dataclasses.is_dataclass(h)))
    return found


def _expected(schema: type, name: str) -> str:
    """What the schema's field takes, in the words of the start-up checks: `a finite number > 0`, `an integer >= 1`."""
    spec = {spec.name: spec for spec in dataclasses.fields(schema)}.get(name)
    if spec is None:
        return "a value of its type"
    hint = hints(schema)[name]
    rule = spec.metadata.get("rule")
    union = typing.get_origin(hint) in (typing.Union, types.UnionType)
    kinds = [arg for arg in typing.get_args(hint) if arg is not type(None)] if union else [hint]
    optional = union and len(kinds) < len(typing.get_args(hint))
    kind = " or ".join(_kind_name(kind) for kind in kinds)
    return f"{kind}{' ' + rule if rule else ''}{' or null' if optional else ''}"


def _kind_name(kind: Any) -> str:
    origin = typing.get_origin(kind) or kind
    return KIND_NAMES.get(kind) or {list: "a list", dict: "a mapping"}.get(origin) or "a string"
