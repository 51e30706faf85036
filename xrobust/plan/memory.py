"""Memory per device of one training step: model states by strategy and precision, the step's activations
(xrobust/plan/activations.py), a fixed reserve, and the verdict.

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

from xrobust.plan.activations import HALF, HALF_TRUE, activation_bytes
from xrobust.plan.inventory import Inventory, inventory
from xrobust.plan.setup import GIB, Setup

MIXED = ("bf16-mixed", "16-mixed", "bf16", "16")


def fmt_count(n: float) -> str:
    """1.23B, 456M, 7.8k: parameter counts in the notes and tables."""
    for unit, size in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.3g}{unit}"
    return str(int(n))


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
    mixed = setup.precision in MIXED
    dp = 2 if setup.precision in HALF else 4  # bytes of a gathered / working weight
    world = setup.world
    parts: dict[str, float] = {}
    notes: dict[str, str] = {}
    layer_weights = inv.largest_layer  # the text-to-text head's decoder layers are the larger ones

    if setup.strategy == "deepspeed":
        stage = int(setup.sharding.rsplit("_", 1)[-1])
        n_opt = world
        n_grad = world if stage >= 2 else 1
        n_par = world if stage >= 3 else 1
        w = 2 if (mixed or half_true) else 4
        parts["weights"] = P * w / n_par
        notes["weights"] = f"{w} B x {fmt_count(P)}" + (f" / {n_par} shards" if n_par > 1 else "")
        gathered = dp * (inv.root_params + 2 * layer_weights) if stage >= 3 else 0
        parts["working copies"] = gathered
        notes["working copies"] = "gathered 16-bit root unit + 2 layers" if gathered else "none (weights are 16-bit)"
        buckets = 2 * 2e8 * 2
        parts["gradients"] = T * 4 / n_grad + buckets
        notes["gradients"] = f"fp32 4 B x {fmt_count(T)}" + (f" / {n_grad}" if n_grad > 1 else "") + " + buckets"
        opt = 12 if mixed else 8
        parts["optimizer"] = T * opt / n_opt
        notes["optimizer"] = f"{'fp32 master 4 B + ' if mixed else ''}AdamW moments 8 B x {fmt_count(T)}" + (
            f" / {n_opt}" if n_opt > 1 else ""
        )
    else:
        sharded = setup.strategy == "fsdp" and setup.sharding != "NO_SHARD"
        n = (setup.devices if setup.sharding == "HYBRID_SHARD" else world) if sharded else 1
        w = 2 if half_true else 4
        g = 2 if half_true else 4
        m = 4 if half_true else 8
        parts["weights"] = P * w / n
        notes["weights"] = (
            f"{'16-bit' if half_true else 'fp32'} {w} B x {fmt_count(P)}"
            + (" (the fp32 master copy)" if mixed else "")
            + (f" / {n} shards" if n > 1 else "")
        )
        if sharded and setup.sharding == "SHARD_GRAD_OP":
            parts["working copies"] = dp * P
            notes["working copies"] = f"{dp} B gathered weights held for the step (SHARD_GRAD_OP)"
        elif sharded:
            parts["working copies"] = dp * (inv.root_params + 2 * layer_weights)
            notes["working copies"] = (
                f"gathered {dp} B units: root {fmt_count(inv.root_params)} + 2 layers x {fmt_count(layer_weights)}"
            )
        elif mixed:
            matmul = P - inv.embeddings
            held = layer_weights + (inv.root_params - inv.embeddings) if setup.checkpointing else matmul
            parts["working copies"] = 2 * held
            notes["working copies"] = "autocast bf16 casts saved for the backward: " + (
                "1 layer (recomputed under checkpointing)" if setup.checkpointing else "every matmul weight"
            )
        else:
            parts["working copies"] = 0
            notes["working copies"] = "none"
        parts["gradients"] = T * g / n
        notes["gradients"] = f"{g} B x {fmt_count(T)}" + (f" / {n}" if n > 1 else "")
        if sharded:
            parts["gradients"] += dp * (2 * inv.largest_layer_trainable + max(inv.root_trainable, 0))
            notes["gradients"] += " + unsharded grads of root + 2 layers"
        if setup.strategy == "ddp" and not setup.bucket_view:
            parts["gradients"] += T * g
            notes["gradients"] += " + DDP bucket copy"
        parts["optimizer"] = T * m / n
        notes["optimizer"] = f"AdamW exp_avg + exp_avg_sq {m} B x {fmt_count(T)}" + (f" / {n}" if n > 1 else "")

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
    full_save = setup.strategy in ("single", "ddp") or (setup.strategy == "fsdp" and setup.sharding == "NO_SHARD")
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
