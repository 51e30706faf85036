"""The install works on a GPU node as on this one: the environment meets pyproject's floors, transformers has
PyTorch enabled, and the Makefile hands TORCH_SPEC to pip and HF_HUB_OFFLINE to its offline targets only."""

from __future__ import annotations

import importlib.metadata
import os
import shlex
import subprocess

import pytest
from helpers import ROOT
from packaging.requirements import Requirement


def declared_requirements() -> list[Requirement]:
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return [Requirement(spec) for spec in [*project["dependencies"], *project["optional-dependencies"]["dev"]]]


def test_transformers_has_pytorch_enabled():
    """transformers 5 turns PyTorch off below 2.6 (every model then fails to load, the embedded one included)."""
    import torch
    from transformers.utils import is_torch_available

    assert is_torch_available(), f"transformers disabled PyTorch {torch.__version__}: install torch >= 2.6"


def test_the_environment_meets_every_declared_requirement():
    unmet = {}
    for requirement in declared_requirements():
        installed = importlib.metadata.version(requirement.name)
        if not requirement.specifier.contains(installed, prereleases=True):
            unmet[requirement.name] = f"{installed} not {requirement.specifier}"
    assert unmet == {}, "run `.venv/bin/pip install -e '.[dev]'`"
    names = {requirement.name for requirement in declared_requirements()}
    assert {"sentencepiece", "protobuf", "hydra-submitit-launcher"} <= names


def make_dry_run(*args: str) -> list[str]:
    """The lines `make -n` prints (the commands it would run), in an environment without HF_HUB_OFFLINE."""
    # Nor the parent make's variables: under `make test` a nested make prints "Entering directory" lines.
    inherited = ("HF_HUB_OFFLINE", "MAKEFLAGS", "MAKELEVEL", "MFLAGS")
    env = {key: value for key, value in os.environ.items() if key not in inherited}
    out = subprocess.run(
        ["make", "--no-print-directory", "-n", *args], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    return [line for line in out.stdout.splitlines() if line.strip()]


def test_torch_spec_reaches_pip_as_separate_arguments(tmp_path):
    spec = "torch==2.7.1 --index-url https://download.pytorch.org/whl/cu126"
    lines = make_dry_run("-B", f"VENV={tmp_path}", f"TORCH_SPEC={spec}", f"{tmp_path}/.installed")
    torch_line = next(shlex.split(line) for line in lines if "torch==" in line)
    assert torch_line == [f"{tmp_path}/bin/pip", "install", "--quiet", *spec.split()]


@pytest.mark.parametrize(
    ("target", "offline"), [("test", True), ("bench-noise", True), ("demo", True), ("sweep", False)]
)
def test_only_the_offline_targets_set_hf_hub_offline(target, offline):
    lines = make_dry_run("-o", "setup", target)
    assert lines and all(line.startswith("HF_HUB_OFFLINE=1 ") == offline for line in lines)
    # Nor is it a make variable, which `export` would hand to every recipe (`make sweep` with a Hub task).
    assert not [line for line in make_dry_run("-p", "-o", "setup", target) if line.startswith("HF_HUB_OFFLINE ")]
