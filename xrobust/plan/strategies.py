"""One memory model per Lightning strategy, and the trainer's `strategy` resolved to one as Lightning resolves it.

A `_target_` node is the class hydra.utils.get_class names, a string is Lightning's StrategyRegistry entry (its class
and init params); either is matched by issubclass against Lightning's strategy classes. An argument the config
leaves out is the default of the class the job instantiates (DDP's `gradient_as_bucket_view`: torch's
DistributedDataParallel), so the plan cannot assume another. The formulas, side by side: xrobust/plan/memory.py.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, ClassVar, Protocol

from hydra.utils import get_class
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.strategies import (
    DDPStrategy,
    DeepSpeedStrategy,
    FSDPStrategy,
    ModelParallelStrategy,
    SingleDeviceStrategy,
    SingleDeviceXLAStrategy,
    StrategyRegistry,
    XLAStrategy,
)
from torch.nn.parallel import DistributedDataParallel

from xrobust.errors import XrobustError
from xrobust.plan.options import argument
from xrobust.plan.precision import HALF, HALF_TRUE, MIXED

# Lightning's "auto": one device; several make it DDP (xrobust/plan/setup.py).
AUTO = "auto"


class StrategyFields(Protocol):
    """What the memory models read of a Setup (xrobust/plan/setup.py, which resolves the strategy here)."""

    strategy: str
    sharding: str
    bucket_view: bool
    precision: str
    checkpointing: bool
    devices: int

    @property
    def world(self) -> int: ...


class Inventory(Protocol):
    """What they read of the parameter inventory (xrobust/plan/inventory.py)."""

    total: int
    trainable: int
    embeddings: int
    root_params: int
    root_trainable: int
    largest_layer: int
    largest_layer_trainable: int


def fmt_count(n: float) -> str:
    """1.23B, 456M, 7.8k: parameter counts in the notes and tables."""
    for unit, size in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.3g}{unit}"
    return str(int(n))


class StrategyMemory(ABC):
    """What one strategy holds per device of the model's states (bytes, with a note each), and how it shards."""

    kind: ClassVar[str]  # Setup.strategy
    lightning: ClassVar[type]  # the Lightning strategy class it models, subclasses included

    def read(self, arguments: Mapping[str, Any]) -> tuple[str, bool]:
        """(sharding, DDP gradient_as_bucket_view) from the strategy's arguments as the config gives them."""
        return "", False

    @abstractmethod
    def describe(self, setup: StrategyFields) -> str:
        """The strategy as the plan's `run` line names it."""

    @abstractmethod
    def states(self, setup: StrategyFields, inv: Inventory) -> tuple[dict[str, float], dict[str, str]]:
        """Bytes per device of weights, working copies, gradients and optimizer state, and a note on each."""

    def shards(self, setup: StrategyFields) -> bool:
        """Whether the weights are split over the devices (gathered for every pass through the model)."""
        return False

    def buffers_checkpoint(self, setup: StrategyFields) -> bool:
        """Whether a checkpoint is torch.saved whole into host memory (lightning_fabric's _atomic_save) rather
        than written as per-rank shards."""
        return True


class SingleDevice(StrategyMemory):
    """One device, or every replica of DDP: AdamW's full states on each (16 B per trainable parameter mixed)."""

    kind = "single"
    lightning = SingleDeviceStrategy

    def describe(self, setup: StrategyFields) -> str:
        return "single device"

    def states(self, setup: StrategyFields, inv: Inventory) -> tuple[dict[str, float], dict[str, str]]:
        return adamw_states(setup, inv, shards=1, working=autocast_copies(setup, inv))


class Ddp(SingleDevice):
    """DDP: a replica's states, plus the gradient bucket copy unless `gradient_as_bucket_view`."""

    kind = "ddp"
    lightning = DDPStrategy

    def read(self, arguments: Mapping[str, Any]) -> tuple[str, bool]:
        # DDPStrategy hands its extra keyword arguments to torch's DistributedDataParallel.
        return "", bool(argument(arguments, "gradient_as_bucket_view", DistributedDataParallel))

    def describe(self, setup: StrategyFields) -> str:
        return "DDP"

    def states(self, setup: StrategyFields, inv: Inventory) -> tuple[dict[str, float], dict[str, str]]:
        parts, notes = super().states(setup, inv)
        if not setup.bucket_view:
            parts["gradients"] += inv.trainable * (2 if setup.precision in HALF_TRUE else 4)
            notes["gradients"] += " + DDP bucket copy"
        return parts, notes


class Fsdp(StrategyMemory):
    """FSDP (FSDPStrategy, and FSDP2 through ModelParallelStrategy): states divided by the shards, 16-bit units
    gathered per layer; NO_SHARD keeps a replica's states."""

    kind = "fsdp"
    lightning = FSDPStrategy

    def read(self, arguments: Mapping[str, Any]) -> tuple[str, bool]:
        # null: torch's FSDP default, as FSDPStrategy's own.
        sharding = argument(arguments, "sharding_strategy", FSDPStrategy) or argument(
            {}, "sharding_strategy", FSDPStrategy
        )
        return str(sharding).upper(), False

    def describe(self, setup: StrategyFields) -> str:
        return f"FSDP {setup.sharding}"

    def shards(self, setup: StrategyFields) -> bool:
        return setup.sharding != "NO_SHARD"

    def buffers_checkpoint(self, setup: StrategyFields) -> bool:
        return not self.shards(setup)

    def states(self, setup: StrategyFields, inv: Inventory) -> tuple[dict[str, float], dict[str, str]]:
        if not self.shards(setup):
            return adamw_states(setup, inv, shards=1, working=autocast_copies(setup, inv))
        n = setup.devices if setup.sharding == "HYBRID_SHARD" else setup.world
        dp = 2 if setup.precision in HALF else 4  # bytes of a gathered weight
        if setup.sharding == "SHARD_GRAD_OP":
            working = (dp * inv.total, f"{dp} B gathered weights held for the step (SHARD_GRAD_OP)")
        else:
            working = (
                dp * (inv.root_params + 2 * inv.largest_layer),
                f"gathered {dp} B units: root {fmt_count(inv.root_params)} + 2 layers x {fmt_count(inv.largest_layer)}",
            )
        parts, notes = adamw_states(setup, inv, shards=n, working=working)
        parts["gradients"] += dp * (2 * inv.largest_layer_trainable + max(inv.root_trainable, 0))
        notes["gradients"] += " + unsharded grads of root + 2 layers"
        return parts, notes


class Fsdp2(Fsdp):
    """trainer=fsdp2 (ModelParallelStrategy as plain FSDP2): per-layer fully_shard over every device, FSDP's
    memory model."""

    lightning = ModelParallelStrategy

    def read(self, arguments: Mapping[str, Any]) -> tuple[str, bool]:
        return "FULL_SHARD", False


class DeepSpeed(StrategyMemory):
    """DeepSpeed ZeRO: 16-bit weights, fp32 gradient partitions, fp32 master + moments (18 B per trainable
    parameter, as deepspeed's estimate_zero3_model_states_mem_needs); stage 1 shards the optimizer, 2 also the
    gradients, 3 also the weights, plus 2 x 2e8-element 16-bit buckets."""

    kind = "deepspeed"
    lightning = DeepSpeedStrategy

    def read(self, arguments: Mapping[str, Any]) -> tuple[str, bool]:
        return f"stage_{int(argument(arguments, 'stage', DeepSpeedStrategy))}", False

    def describe(self, setup: StrategyFields) -> str:
        return f"DeepSpeed ZeRO {setup.sharding.replace('_', ' ')}"

    def shards(self, setup: StrategyFields) -> bool:
        return setup.sharding == "stage_3"

    def buffers_checkpoint(self, setup: StrategyFields) -> bool:
        return False

    def states(self, setup: StrategyFields, inv: Inventory) -> tuple[dict[str, float], dict[str, str]]:
        P, T, world = inv.total, inv.trainable, setup.world
        mixed = setup.precision in MIXED
        stage = int(setup.sharding.rsplit("_", 1)[-1])
        n_opt = world
        n_grad = world if stage >= 2 else 1
        n_par = world if stage >= 3 else 1
        w = 2 if (mixed or setup.precision in HALF_TRUE) else 4
        dp = 2 if setup.precision in HALF else 4
        parts: dict[str, float] = {}
        notes: dict[str, str] = {}
        parts["weights"] = P * w / n_par
        notes["weights"] = f"{w} B x {fmt_count(P)}" + (f" / {n_par} shards" if n_par > 1 else "")
        gathered = dp * (inv.root_params + 2 * inv.largest_layer) if stage >= 3 else 0
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
        return parts, notes


def adamw_states(
    setup: StrategyFields, inv: Inventory, shards: int, working: tuple[float, str]
) -> tuple[dict[str, float], dict[str, str]]:
    """Lightning's own precision plugins: weights 4P, gradients 4T, AdamW moments 8T (bf16-true: 2P, 2T, 4T), each
    divided by `shards`, and the 16-bit working copies `working` (bytes, note)."""
    P, T = inv.total, inv.trainable
    half_true = setup.precision in HALF_TRUE
    w = g = 2 if half_true else 4
    m = 4 if half_true else 8
    parts: dict[str, float] = {"weights": P * w / shards}
    notes = {
        "weights": f"{'16-bit' if half_true else 'fp32'} {w} B x {fmt_count(P)}"
        + (" (the fp32 master copy)" if setup.precision in MIXED else "")
        + (f" / {shards} shards" if shards > 1 else "")
    }
    parts["working copies"], notes["working copies"] = working
    parts["gradients"] = T * g / shards
    notes["gradients"] = f"{g} B x {fmt_count(T)}" + (f" / {shards}" if shards > 1 else "")
    parts["optimizer"] = T * m / shards
    notes["optimizer"] = f"AdamW exp_avg + exp_avg_sq {m} B x {fmt_count(T)}" + (f" / {shards}" if shards > 1 else "")
    return parts, notes


def autocast_copies(setup: StrategyFields, inv: Inventory) -> tuple[float, str]:
    """An unsharded model's 16-bit working copies: under `*-mixed`, autocast's casts saved for the backward (every
    matmul weight; one layer's worth under checkpointing)."""
    if setup.precision not in MIXED:
        return 0, "none"
    matmul = inv.total - inv.embeddings
    held = inv.largest_layer + (inv.root_params - inv.embeddings) if setup.checkpointing else matmul
    return 2 * held, "autocast bf16 casts saved for the backward: " + (
        "1 layer (recomputed under checkpointing)" if setup.checkpointing else "every matmul weight"
    )


MEMORY: Mapping[str, StrategyMemory] = MappingProxyType(
    {model.kind: model for model in (SingleDevice(), Ddp(), Fsdp(), DeepSpeed())}
)


def memory_model(setup: StrategyFields) -> StrategyMemory:
    """The memory model of the setup's strategy (Setup.strategy)."""
    return MEMORY[setup.strategy]


# Matched in this order, the most specific first: DeepSpeedStrategy is a DDPStrategy.
MODELS: tuple[StrategyMemory, ...] = (DeepSpeed(), Ddp(), Fsdp(), Fsdp2(), SingleDevice())
# TPU strategies (subclasses of DDPStrategy and SingleDeviceStrategy): the planner plans GPUs and CPUs only.
UNPLANNED = (XLAStrategy, SingleDeviceXLAStrategy)


def resolve_strategy(strategy: Any) -> tuple[str, str, bool]:
    """(Setup.strategy, sharding, DDP gradient_as_bucket_view) of a Trainer `strategy`: a `_target_` node or a
    name; one XrobustError line for a strategy none of the memory models covers."""
    if OmegaConf.is_dict(strategy) or isinstance(strategy, dict):
        node = OmegaConf.to_container(strategy, resolve=True) if isinstance(strategy, DictConfig) else dict(strategy)
        target = str(node.pop("_target_", ""))
        where = f"trainer.strategy._target_={target!r}"
        try:
            cls = get_class(target)
        except (ImportError, ValueError, AttributeError):
            cls = None
        return _matched(cls, node, where)
    name = str(strategy)
    if name == AUTO:
        return SingleDevice.kind, "", False
    where = f"trainer.strategy={name!r}"
    if name not in StrategyRegistry:
        raise XrobustError(f"xrobust-plan does not know {where}")
    entry = StrategyRegistry[name]
    return _matched(entry["strategy"], entry["init_params"], where)


def _matched(cls: type | None, arguments: Mapping[str, Any], where: str) -> tuple[str, str, bool]:
    if isinstance(cls, type) and not issubclass(cls, UNPLANNED):
        for model in MODELS:
            if issubclass(cls, model.lightning):
                return (model.kind, *model.read(arguments))
    raise XrobustError(f"xrobust-plan does not know {where}")
