"""The cheapest setup that fits: every way of running the same training (the same effective batch, the same
fine-tuning method) on 1 to 64 GPUs, with or without gradient checkpointing, at every micro-batch and
accumulation that multiply to it, ranked by the job's GPU-hours. What a size's `model.recommended` should be."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from xrobust.errors import XrobustError
from xrobust.plan.memory import estimate
from xrobust.plan.setup import Setup

# GPU-hours of the job run in a given setup (cost.py through the job's config: its epochs, data, GPU and MFU).
CostOf = Callable[[Setup], float]
WORLDS = (1, 2, 4, 8, 16, 32, 64)


@dataclass(frozen=True)
class Option:
    """One way to run the job: its setup, the overrides that select it, memory per device and GPU-hours."""

    setup: Setup
    overrides: tuple[str, ...]
    total_gib: float
    gpu_hours: float

    @property
    def rank(self) -> tuple:
        """Cheapest first; at equal cost fewer GPUs, no recomputation, then the larger micro-batch."""
        s = self.setup
        return (round(self.gpu_hours, 6), s.world, s.checkpointing, -s.batch_size)


def effective_batch(setup: Setup) -> int:
    return setup.batch_size * setup.accumulate * setup.world


def same_training(a: Setup, b: Setup) -> bool:
    """Whether two setups train the same model on the same batches (only how the work is spread differs)."""
    return effective_batch(a) == effective_batch(b) and a.finetune == b.finetune


def setups_keeping_batch(setup: Setup) -> list[tuple[Setup, tuple[str, ...]]]:
    """Every setup with setup's effective batch and method, and the overrides of the training config that select it.

    One GPU runs unsharded (trainer=gpu); several are sharded with FSDP2 (trainer=fsdp2), as the planner's changes
    shard: on GPUs, DDP replicas cost what one GPU costs plus their all-reduce, so they are never cheaper."""
    if setup.accelerator != "gpu":
        return []
    total = effective_batch(setup)
    found = []
    for world in WORLDS:
        if total % world:
            continue
        devices = min(world, setup.gpus_per_node)
        if world % devices:
            continue
        nodes = world // devices
        trainer = "gpu" if world == 1 else "fsdp2"
        strategy, sharding = ("single", "") if world == 1 else ("fsdp", "FULL_SHARD")
        per_device = total // world
        batches = [b for b in range(per_device, 0, -1) if per_device % b == 0 and _power_of_two(per_device // b)]
        for checkpointing in (False, True):
            for batch in batches:
                accumulate = per_device // batch
                changed = replace(
                    setup,
                    strategy=strategy,
                    sharding=sharding,
                    bucket_view=False,
                    devices=devices,
                    num_nodes=nodes,
                    batch_size=batch,
                    accumulate=accumulate,
                    checkpointing=checkpointing,
                    rank_zero_loading=world > 1,
                )
                overrides = (
                    f"trainer={trainer}",
                    f"trainer.devices={devices}",
                    f"trainer.num_nodes={nodes}",
                    f"data.batch_size={batch}",
                    f"trainer.accumulate_grad_batches={accumulate}",
                    f"model.gradient_checkpointing={str(checkpointing).lower()}",
                )
                found.append((changed, overrides))
    return found


def fitting_options(setup: Setup, cost_of: CostOf) -> list[Option]:
    """Every setup of `setups_keeping_batch` that fits, cheapest first."""
    options = []
    for changed, overrides in setups_keeping_batch(setup):
        try:
            plan = estimate(changed)
        except XrobustError:
            continue
        if plan.fits:
            options.append(Option(changed, overrides, plan.total_gib, cost_of(changed)))
    return sorted(options, key=lambda option: option.rank)


def cheapest(setup: Setup, cost_of: CostOf) -> Option | None:
    options = fitting_options(setup, cost_of)
    return options[0] if options else None


def _power_of_two(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


def cheapest_for_all(job_options: list[tuple[Option, ...]]) -> tuple[Option, float] | None:
    """The setup (its first job's option) that fits every job given at the least GPU-hours over them all, and that
    total; None when no setup fits them all."""
    totals: dict[tuple[str, ...], float] = {}
    first: dict[tuple[str, ...], Option] = {}
    counts: dict[tuple[str, ...], int] = {}
    for options in job_options:
        for option in options:
            totals[option.overrides] = totals.get(option.overrides, 0.0) + option.gpu_hours
            counts[option.overrides] = counts.get(option.overrides, 0) + 1
            first.setdefault(option.overrides, option)
    common = [key for key, count in counts.items() if count == len(job_options)]
    if not common:
        return None
    best = min(common, key=lambda key: (round(totals[key], 6), *first[key].rank[1:]))
    return first[best], totals[best]
