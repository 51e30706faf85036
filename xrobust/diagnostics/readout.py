"""Readout: what every read-out returns, apart from hooks.py so the read-outs can build one without importing the
module that imports them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Readout:
    """One read-out's result: `summary` goes into results.json (with `seconds`), `rows` into <name>.tsv."""

    summary: dict[str, Any]
    rows: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
