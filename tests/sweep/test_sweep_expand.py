"""One sweep expansion (xrobust/sweep/expand.py) behind xrobust-status, xrobust-plan -m and hydra/sweeper=halving:
the sweeper's params first, the command line's overrides winning, jobs in the basic sweeper's launch order."""

from __future__ import annotations

from pathlib import Path

from hydra._internal.config_loader_impl import ConfigLoaderImpl
from hydra._internal.utils import create_config_search_path

from xrobust.config.checks import CONF_DIR
from xrobust.sweep.expand import sweep_jobs

ROOT = Path(__file__).resolve().parents[2]


def loader() -> ConfigLoaderImpl:
    return ConfigLoaderImpl(config_search_path=create_config_search_path(f"file://{CONF_DIR}"))


def test_params_then_command_line_in_launch_order():
    jobs = sweep_jobs({"seed": "1,2", "optim.lr_scale": "0.5,1"}, ["model=xlmr-base"], loader())
    assert jobs == [
        ["seed=1", "optim.lr_scale=0.5", "model=xlmr-base"],
        ["seed=1", "optim.lr_scale=1", "model=xlmr-base"],
        ["seed=2", "optim.lr_scale=0.5", "model=xlmr-base"],
        ["seed=2", "optim.lr_scale=1", "model=xlmr-base"],
    ]


def test_the_command_line_wins_over_the_params():
    assert sweep_jobs({"seed": "1,2"}, ["seed=3"], loader()) == [["seed=3"]]
    assert sweep_jobs(None, [], loader()) == [[]]


def test_hydras_private_split_is_called_in_one_place_only():
    callers = [
        path.relative_to(ROOT).as_posix()
        for folder in ("xrobust", "hydra_plugins", "benchmarks")
        for path in (ROOT / folder).rglob("*.py")
        if "split_arguments" in path.read_text()
    ]
    assert callers == ["xrobust/sweep/expand.py"]
