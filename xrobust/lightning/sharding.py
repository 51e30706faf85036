"""FSDP2 (`trainer=fsdp2`): torch's per-parameter `fully_shard` through Lightning's ModelParallelStrategy.

Each transformer layer is its own unit, the input embeddings another, the rest (position embeddings, head) the
root. The embeddings are a unit of their own because the noise methods look them up outside the model's forward
(`model.get_input_embeddings()(input_ids)`, then `model(inputs_embeds=...)`): inside the root unit, their
gradient would arrive after the root had already reduce-scattered its gradients. `get_input_embeddings` is
registered as an FSDP forward method of the root, so that lookup starts an FSDP pass like a forward does.

A parameter held by several modules (mT5's `shared` embedding is also `encoder.embed_tokens`) must belong to one
FSDP group: each unit is sharded together with every module outside it that holds one of its parameters.
"""

from __future__ import annotations

from typing import Any

import torch
from pytorch_lightning.strategies import ModelParallelStrategy
from torch import nn
from torch.distributed.device_mesh import DeviceMesh
from torch.distributed.fsdp import FSDPModule, MixedPrecisionPolicy, fully_shard, register_fsdp_forward_method
from transformers.modeling_layers import GradientCheckpointingLayer

from xrobust.lightning.sharded_checkpoint import save_swapped

# trainer.precision -> the dtype FSDP2 gathers parameters in (they stay fp32 shards; gradients reduce in fp32).
GATHER_DTYPES = {"bf16-mixed": torch.bfloat16, "bf16-true": torch.bfloat16, "16-true": torch.float16}


class FSDP2Strategy(ModelParallelStrategy):
    """ModelParallelStrategy as plain FSDP2: one data-parallel mesh over every rank, no tensor parallelism, so
    trainer.devices (also -1) and trainer.num_nodes alone decide the mesh."""

    def __init__(self, **kwargs):
        super().__init__(data_parallel_size="auto", tensor_parallel_size=1, **kwargs)

    def setup_environment(self) -> None:
        self._data_parallel_size = self.num_nodes * self.num_processes
        super().setup_environment()

    def save_checkpoint(self, checkpoint: dict[str, Any], filepath, storage_options: Any | None = None) -> None:
        """Sharded folders are written beside the target and swapped in (xrobust.lightning.sharded_checkpoint), where
        Lightning rewrites them in place and a kill mid-save tears the only `last.ckpt/`."""
        if not self._save_distributed_checkpoint:
            return super().save_checkpoint(checkpoint, filepath, storage_options)
        save = super().save_checkpoint
        return save_swapped(self, lambda state, folder: save(state, folder, storage_options), checkpoint, filepath)


def mixed_precision_policy(precision: str) -> MixedPrecisionPolicy:
    """Gather in the training precision's low dtype and reduce gradients in fp32; fp32 throughout for 32-true."""
    gather = GATHER_DTYPES.get(str(precision))
    return MixedPrecisionPolicy(param_dtype=gather, reduce_dtype=torch.float32 if gather else None)


def shard_model(model: nn.Module, mesh: DeviceMesh, policy: MixedPrecisionPolicy) -> nn.Module:
    """Apply `fully_shard` to every transformer layer, the input embeddings, then the whole model; idempotent
    (Lightning calls `configure_model` again for `trainer.test`)."""
    if isinstance(model, FSDPModule):
        return model
    layers = [m for m in model.modules() if isinstance(m, GradientCheckpointingLayer)]
    if not layers:
        raise TypeError(f"found no transformer layers (GradientCheckpointingLayer) to shard in {type(model).__name__}")
    for unit in [*layers, model.get_input_embeddings()]:
        fully_shard(tied_group(model, unit), mesh=mesh, mp_policy=policy)
    fully_shard(model, mesh=mesh, mp_policy=policy)
    register_fsdp_forward_method(model, "get_input_embeddings")
    return model


def tied_group(model: nn.Module, unit: nn.Module) -> list[nn.Module]:
    """`unit` and every module of `model` outside it that holds one of its parameters (by identity): the modules
    `fully_shard` must take as one group, since a tied parameter can be managed by one FSDP group only."""
    own = {id(p) for p in unit.parameters()}
    inside = set(unit.modules())
    aliases = [
        module
        for module in model.modules()
        if module not in inside and any(id(p) in own for p in module.parameters(recurse=False))
    ]
    return [unit, *aliases]
