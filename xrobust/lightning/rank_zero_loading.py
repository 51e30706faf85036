"""FSDP2 start-up with one model per node: only global rank 0 reads the checkpoint.

The other ranks build the classifier on the meta device (`models/meta_classifier.py: load_meta_classifier`; its input
embeddings alone are loaded, as the noise methods measure them at set-up), and `shard_from_rank_zero` fills their
shards from rank 0's weights once `fully_shard` has split the model, as torch's distributed state-dict API intends
(`set_model_state_dict(..., broadcast_from_rank0=True)`). Without it, every rank holds the full fp32 model before
sharding: 8 x 40 GiB per node for XLM-R XXL.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import torch
import torch.distributed as dist
from hydra.utils import get_class
from lightning_fabric.utilities.rank_zero import rank_zero_only
from pytorch_lightning.strategies import ModelParallelStrategy
from torch import nn
from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict
from torch.distributed.device_mesh import DeviceMesh
from torch.distributed.fsdp import MixedPrecisionPolicy

from xrobust.lightning.sharding import shard_model
from xrobust.models.loading import load_classifier
from xrobust.models.meta_classifier import load_meta_classifier

log = logging.getLogger("xrobust")


def loads_on_rank_zero(strategy_target: str | None) -> bool:
    """Whether the strategy (`trainer.strategy._target_`, None for one named by string) shards the model in
    configure_model, so that only rank 0 need load it (the planner's host-RAM figure asks this too)."""
    return strategy_target is not None and issubclass(get_class(strategy_target), ModelParallelStrategy)


def builds_on_meta(strategy_target: str | None) -> bool:
    """Whether this process builds its model on the meta device: a rank other than global rank 0 (known from the
    launcher's environment: RANK, LOCAL_RANK or SLURM_PROCID) under a strategy that `loads_on_rank_zero`."""
    return rank_zero_only.rank != 0 and loads_on_rank_zero(strategy_target)


def classifier_loader(strategy_target: str | None) -> Callable[..., nn.Module]:
    """`load_classifier`, or `load_meta_classifier` where this process builds on the meta device."""
    if not builds_on_meta(strategy_target):
        return load_classifier
    log.info(
        "rank %d builds the model on the meta device: rank 0's weights come once it is sharded", rank_zero_only.rank
    )
    return load_meta_classifier


def shard_from_rank_zero(
    model: nn.Module, mesh: DeviceMesh, policy: MixedPrecisionPolicy, device: torch.device
) -> None:
    """Shard `model` (`shard_model`) on `device` and broadcast global rank 0's weights into every rank's shards and
    buffers. A collective: every rank calls it once, before any checkpoint is restored into the model."""
    full = model.state_dict() if dist.get_rank() == 0 else {}
    shard_model(model, mesh, policy)
    if any(t.is_meta for t in (*model.parameters(), *model.buffers())):
        model.to_empty(device=device)
    else:
        model.to(device)
    set_model_state_dict(model, full, options=StateDictOptions(full_state_dict=True, broadcast_from_rank0=True))
    del full
    # Buffers outside the state dict (position ids, token type ids) are not broadcast by set_model_state_dict.
    for buffer in non_persistent_buffers(model):
        dist.broadcast(buffer, src=0)


def non_persistent_buffers(model: nn.Module) -> list[torch.Tensor]:
    return [
        buffer
        for module in model.modules()
        for name, buffer in module.named_buffers(recurse=False)
        if name in module._non_persistent_buffers_set
    ]


def host_memory_mib() -> dict[str, float]:
    """This process's peak resident set (VmHWM: the memory-mapped checkpoint pages it touched included, which the
    page cache shares between processes) and its private memory now (RssAnon), in MiB; {} without /proc."""
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return {}
    rows = (row.split() for row in status.splitlines())
    return {row[0].rstrip(":"): int(row[1]) / 1024 for row in rows if row and row[0] in ("VmHWM:", "RssAnon:")}
