"""trainer=fsdp (FSDP1) clips by norm through the root FSDP unit, which Lightning's FSDPPrecision refuses to do.
Neither runs on CPU: Lightning's FSDPStrategy "requires a GPU accelerator" and torch 2.13's FSDP1 "needs a
non-CPU accelerator device", so this test of the clipping hook on a 1-rank FSDP1-wrapped module runs on a GPU
only (skipped elsewhere)."""

from __future__ import annotations

import socket
from types import SimpleNamespace

import pytest
import torch
import torch.distributed as dist
from pytorch_lightning.plugins.precision import FSDPPrecision
from pytorch_lightning.strategies import FSDPStrategy
from torch.distributed.fsdp import FullyShardedDataParallel

from xrobust.lightning.module import TransferModule

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="FSDP1 needs an accelerator (torch 2.13)")


@pytest.fixture
def one_rank():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    dist.init_process_group("nccl", init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=1)
    yield
    dist.destroy_process_group()


def test_fsdp1_norm_clipping_goes_through_the_root_unit(one_rank):
    torch.manual_seed(0)
    layers = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.Linear(8, 2))
    model = FullyShardedDataParallel(layers, device_id=torch.device("cuda", 0))
    model(torch.randn(4, 8, device="cuda")).pow(2).sum().mul(100).backward()
    norm = lambda: torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in model.parameters()]))  # noqa: E731
    assert norm() > 1.0
    strategy = FSDPStrategy()
    strategy.model = model
    trainer = SimpleNamespace(strategy=strategy, precision_plugin=FSDPPrecision("32-true"))
    with pytest.raises(Exception, match="not supported"):  # what Lightning's own clipping does under FSDP1
        trainer.precision_plugin.clip_grad_by_norm(None, 1.0)
    TransferModule.configure_gradient_clipping(SimpleNamespace(trainer=trainer), None, 1.0, "norm")
    assert norm() == pytest.approx(1.0, rel=1e-4)
