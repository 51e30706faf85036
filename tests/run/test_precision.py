"""The GPU default precision follows the compute capability: bf16-mixed from Ampere (8.0) on, fp32 below, where
torch.cuda.is_bf16_supported() would also count a V100's or T4's slow emulated bf16."""

from __future__ import annotations

import pytest
import torch

from xrobust.config.resolvers import native_precision


@pytest.mark.parametrize(
    ("capability", "precision"),
    [((7, 0), "32-true"), ((7, 5), "32-true"), ((8, 0), "bf16-mixed"), ((9, 0), "bf16-mixed")],
)
def test_gpu_precision_follows_the_compute_capability(monkeypatch, capability, precision):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)  # V100/T4 say so
    assert native_precision("gpu") == precision
    assert native_precision("auto") == precision


def test_gpu_configs_get_bf16_with_no_gpu_visible(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert native_precision("gpu") == "bf16-mixed"
