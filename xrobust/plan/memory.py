"""Memory per device of one training step: model states by strategy and precision (one memory model per strategy,
xrobust/plan/strategies.py), the step's activations (xrobust/plan/activations.py), a fixed reserve, and the verdict.

P = all parameters, T = trainable, N = shards; "bf16" stands for either 16-bit type.

- Model states, Lightning's own precision plugins (single device, DDP, FSDP). `*-mixed` keeps the parameters in
  fp32 (they are the master copy) and autocasts the compute to 16 bits:
    weights 4P, gradients 4T, AdamW exp_avg + exp_avg_sq 8T                    = 16 B per trainable parameter
  plus 16-bit working copies of the weights: autocast's casts are saved for the backward (2 x the matmul
  weights without checkpointing, one layer's worth with it); FSDP instead all-gathers 16-bit units (the root
  unit, i.e. embeddings + head, and two layers: the current one and the prefetched one) and holds the unsharded
  16-bit gradients of two layers before the reduce-scatter. `32-true`: the same without working copies;
  `bf16-true`: weights 2P, gradients 2T, moments 4T. DDP adds a 4T gradient bucket copy unless
  `gradient_as_bucket_view=True` (conf/trainer/ddp.yaml sets it).
  FSDP FULL_SHARD divides weights, gradients and moments by N = all devices (HYBRID_SHARD: the devices of one
  node; SHARD_GRAD_OP keeps the gathered 16-bit weights for the whole step).
- DeepSpeed (ZeRO stage 1/2/3), bf16: 16-bit weights 2P, fp32 gradient partitions 4T, optimizer = fp32 master
  4T + moments 8T (18 B per trainable parameter, as deepspeed's own estimate_zero3_model_states_mem_needs);
  stage 1 shards the optimizer, 2 also the gradients, 3 also the weights, plus 2 x 2e8-element 16-bit buckets.
- On CPU, saving a checkpoint: Lightning torch.saves weights + optimizer state into an in-memory buffer first;
  that happens between steps, so the larger of it and the activations enters the total.
- A fixed reserve (plan.reserve_gb: CUDA context, NCCL buffers, allocator fragmentation; on CPU
  plan.cpu_reserve_gb: the interpreter, libraries and the 250k-piece fast tokenizer).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from xrobust.plan.activations import activation_bytes
from xrobust.plan.inventory import Inventory, inventory
from xrobust.plan.precision import HALF_TRUE
from xrobust.plan.setup import GIB, Setup
from xrobust.plan.strategies import memory_model


@dataclass
class Plan:
    setup: Setup
    inv: Inventory
    parts: dict[str, float]  # GiB per device
    notes: dict[str, str]
    activations_gib: dict[str, float]  # with / without checkpointing
    host_gib_per_node: float
    checkpoint_gib: float = 0.0  # Lightning's torch.save into an in-memory buffer (host RAM), non-sharded saves
    fix: dict | None = None
    also_fit: list[dict] = field(default_factory=list)
    max_batch_size: int | None = None

    @property
    def total_gib(self) -> float:
        total = sum(self.parts.values())
        if self.setup.accelerator == "cpu":
            # Saving happens between steps, when the activations are freed: the larger of the two counts.
            activations = self.parts.get("activations", 0.0)
            total += max(self.checkpoint_gib - activations, 0.0)
        return total

    @property
    def processes_sharing_memory(self) -> int:
        """CPU runs: every rank of the node lives in the same host memory."""
        return self.setup.devices if self.setup.accelerator == "cpu" else 1

    @property
    def fits(self) -> bool:
        return self.total_gib * self.processes_sharing_memory <= self.setup.memory_gib

    def summary(self) -> dict:
        return {
            "model": self.setup.model_name,
            "model_class": self.inv.model_class,
            "parameters": {"total": self.inv.total, "trainable": self.inv.trainable},
            "setup": asdict(self.setup),
            "per_device_gib": {k: round(v, 3) for k, v in self.parts.items()},
            "total_gib": round(self.total_gib, 3),
            "memory_gib": self.setup.memory_gib,
            "fits": self.fits,
            "activations_gib": {k: round(v, 3) for k, v in self.activations_gib.items()},
            "host_gib_per_node": round(self.host_gib_per_node, 2),
            "checkpoint_gib": round(self.checkpoint_gib, 3),
            "max_batch_size": self.max_batch_size,
            "fix": self.fix,
            "also_fit": self.also_fit,
        }


def estimate(setup: Setup) -> Plan:
    inv = inventory(setup)
    P, T = inv.total, inv.trainable
    half_true = setup.precision in HALF_TRUE
    strategy = memory_model(setup)
    parts, notes = strategy.states(setup, inv)

    with_ckpt = activation_bytes(setup, inv, True)
    without = activation_bytes(setup, inv, False)
    parts["activations"] = with_ckpt if setup.checkpointing else without
    notes["activations"] = f"micro-batch {setup.batch_size} x seq {setup.seq_len}, " + (
        "gradient checkpointing" if setup.checkpointing else "no checkpointing"
    )
    noise = setup.noise_memory
    if (noise.batch_copies, noise.graphs, noise.embedding_copies) != (1, 1, 0):
        notes["activations"] += (
            f"; noise={setup.noise}: {noise.batch_copies} x the batch, {noise.graphs} graph(s) alive, "
            f"{noise.embedding_copies} embedding-sized tensor(s)"
        )
    parts = {k: v / GIB for k, v in parts.items()}
    parts["reserve"] = setup.reserve_gib
    notes["reserve"] = (
        "process: libraries + tokenizer" if setup.accelerator == "cpu" else "CUDA context, NCCL, fragmentation"
    )
    # TransferModule.__init__ builds the fp32 model on every rank of a node; under FSDP2 the ranks other than 0 hold
    # only its input embeddings (xrobust/lightning/rank_zero_loading.py) until it is sharded.
    others = inv.embeddings if setup.rank_zero_loading else P
    host = 4 * (P + (setup.devices - 1) * others) / GIB
    # lightning_fabric's _atomic_save torch.saves the whole checkpoint (weights + optimizer state) into a BytesIO
    # before writing it; FSDP's sharded checkpoints and DeepSpeed write per-rank shards instead.
    full_save = strategy.buffers_checkpoint(setup)
    opt_bytes = 4 if half_true else 8
    checkpoint = (P * (2 if half_true else 4) + T * opt_bytes) / GIB if full_save else 0.0
    return Plan(
        setup=setup,
        inv=inv,
        parts=parts,
        notes=notes,
        activations_gib={"checkpointing": with_ckpt / GIB, "no_checkpointing": without / GIB},
        host_gib_per_node=host,
        checkpoint_gib=checkpoint,
    )
