"""Resumes restore each rank's CUDA random stream on the rank's own device: single-device and DDP strategies load
the checkpoint before they move the module, so the module's own device is still the CPU at that moment."""

from __future__ import annotations

import random
from functools import partial
from types import SimpleNamespace

import pytest
import torch
from helpers.tiny_models import tiny_checkpoint

from xrobust.lightning import random_state
from xrobust.lightning.module import TransferModule
from xrobust.noise.none import NoNoise


@pytest.fixture(scope="module")
def module(tmp_path_factory) -> TransferModule:
    pretrained = tiny_checkpoint(tmp_path_factory.mktemp("tiny"))
    return TransferModule(
        pretrained=str(pretrained),
        label_names=["a", "b", "c"],
        test_names=[],
        noise=NoNoise(name="none"),
        task_kind="pair",
        optimizer=partial(torch.optim.AdamW, lr=1e-3),
        scheduler=partial(torch.optim.lr_scheduler.LambdaLR, lr_lambda=lambda step: 1.0),
    )


def attach(module: TransferModule, root_device: torch.device) -> None:
    """A trainer as far as the restore path reads it: the strategy that will move the module to `root_device`."""
    module.trainer = SimpleNamespace(strategy=SimpleNamespace(root_device=root_device))


def test_the_rank_device_is_the_strategys_root_device_not_where_the_module_still_is(module):
    attach(module, torch.device("cuda", 1))
    assert module.device == torch.device("cpu")
    assert random_state.rank_device(module) == torch.device("cuda", 1)


def test_outside_a_trainer_the_module_device_is_used(module):
    module.trainer = None
    assert random_state.rank_device(module) == module.device


def test_load_restores_this_ranks_streams_through_the_root_device(module):
    """On the CPU end to end: the saved streams come back through on_load_checkpoint; on a GPU also the CUDA one."""
    device = torch.device("cuda", 0) if torch.cuda.is_available() else torch.device("cpu")
    attach(module, device)
    checkpoint: dict = {}
    module.on_save_checkpoint(checkpoint)
    saved = checkpoint["rank_random_states"][0]
    assert ("cuda" in saved) == (device.type == "cuda")
    expected = (torch.rand(3), random.random(), torch.rand(3, device=device))
    module.on_load_checkpoint(checkpoint)
    assert torch.equal(torch.rand(3), expected[0]) and random.random() == expected[1]
    assert torch.equal(torch.rand(3, device=device), expected[2])  # the CUDA stream too, where there is one
