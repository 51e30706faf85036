"""A sweep's jobs as Hydra's basic sweeper expands them: the override grammar (comma lists, glob(), range(),
choice()) over the sweeper's params followed by the command line's overrides (which win), split into one override
list per job in launch order. Hydra has no public API for the split, so its internal BasicSweeper is called here
only: xrobust-status, xrobust-plan -m and hydra/sweeper=halving all expand a sweep through this function."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.config_loader import ConfigLoader
from hydra.core.override_parser.overrides_parser import OverridesParser


def sweep_jobs(
    params: Mapping[str, Any] | None, arguments: Sequence[str], config_loader: ConfigLoader
) -> list[list[str]]:
    """Every job's overrides, in the order the basic sweeper launches them; `config_loader` resolves glob() over a
    config group's options."""
    parser = OverridesParser.create(config_loader=config_loader)
    given = [f"{key}={value}" for key, value in (params or {}).items()] + list(arguments)
    return [job for batch in BasicSweeper.split_arguments(parser.parse_overrides(given), None) for job in batch]
