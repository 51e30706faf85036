"""The search for a fitting change: when a run does not fit, re-plan candidate changes (gradient checkpointing,
a smaller micro-batch with gradient accumulation, sharding, more devices, LoRA, and pairs of them) and keep the
cheapest in GPU-hours among those that fit (given the job's cost; else the least disruptive), changes that keep
the effective batch and the fine-tuning method before those that change what is trained; when it fits, the largest
micro-batch that still does."""

from __future__ import annotations

import math
from dataclasses import fields, replace
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from xrobust.config.checks import CONF_DIR
from xrobust.errors import XrobustError
from xrobust.plan.cheapest import CostOf, same_training
from xrobust.plan.memory import Plan, estimate
from xrobust.plan.setup import Setup, setup_from_config
from xrobust.plan.strategies import memory_model

DEVICE_STEPS = (2, 4, 8, 16, 32, 64, 128)


def candidates(setup: Setup) -> list[tuple[float, str, list[str], Setup]]:
    """(disruption score, description, overrides, changed setup): single changes first, then pairs."""
    singles: list[tuple[float, str, list[str], Setup]] = []
    if not setup.checkpointing:
        singles.append(
            (1, "gradient checkpointing", ["model.gradient_checkpointing=true"], replace(setup, checkpointing=True))
        )
    k = 2
    while setup.batch_size // k >= 1:
        if setup.batch_size % k == 0:
            b = setup.batch_size // k
            singles.append(
                (
                    1 + 0.01 * math.log2(k),  # prefer the largest micro-batch that fits
                    f"micro-batch {b} with {setup.accumulate * k}x gradient accumulation (same effective batch)",
                    [f"data.batch_size={b}", f"trainer.accumulate_grad_batches={setup.accumulate * k}"],
                    replace(setup, batch_size=b, accumulate=setup.accumulate * k),
                )
            )
        k *= 2
    shards = memory_model(setup).shards(setup)
    if setup.accelerator != "cpu":
        if setup.world > 1 and not shards:
            singles.append(
                (
                    2,
                    f"shard with FSDP over the same {setup.world} devices",
                    ["trainer=fsdp2", f"trainer.devices={setup.devices}"],
                    sharded(setup),
                )
            )
        for world in DEVICE_STEPS:
            if world <= setup.world:
                continue
            devices = min(world, setup.gpus_per_node)
            nodes = world // devices
            changed = replace(setup, devices=devices, num_nodes=nodes)
            overrides = [f"trainer.devices={devices}"]
            if nodes != setup.num_nodes:
                overrides.append(f"trainer.num_nodes={nodes}")
            if not shards:
                changed = sharded(changed)
                overrides = ["trainer=fsdp2", *overrides]
            score = 2 + int(math.log2(world / setup.world))
            factor = world // setup.world
            if setup.batch_size % factor == 0:  # the micro-batch spread over the devices: the same effective batch
                b = setup.batch_size // factor
                what = f"{world} devices, sharded, micro-batch {b} per device (same effective batch)"
                singles.append((score, what, [*overrides, f"data.batch_size={b}"], replace(changed, batch_size=b)))
            singles.append((score + 0.5, f"{world} devices, sharded (effective batch x{factor})", overrides, changed))
    if setup.method != "lora":
        # Last among the single changes up to one node of 8: it changes what is trained, not only how.
        lora = replace(setup, finetune=lora_defaults())
        singles.append((5.5, "LoRA instead of full fine-tuning", ["finetune=lora"], lora))
    pairs = []
    for i, first in enumerate(singles):
        for second in singles[i + 1 :]:
            if {o.split("=")[0] for o in first[2]} & {o.split("=")[0] for o in second[2]}:
                continue  # two micro-batch sizes, two device counts, or sharding twice
            merged = _merge(first[3], second[3], setup)
            pairs.append((first[0] + second[0], f"{first[1]} + {second[1]}", [*first[2], *second[2]], merged))
    return singles + pairs


def sharded(setup: Setup) -> Setup:
    """The setup under trainer=fsdp2 (FSDP2 fully sharded; rank 0 alone loads the weights, the other ranks build on
    the meta device; no DDP buckets): what the override that comes with it builds."""
    return replace(setup, strategy="fsdp", sharding="FULL_SHARD", bucket_view=False, rank_zero_loading=True)


def _merge(a: Setup, b: Setup, base: Setup) -> Setup:
    """a with b's changes from base on top."""
    names = (f.name for f in fields(b))
    return replace(a, **{k: getattr(b, k) for k in names if getattr(b, k) != getattr(base, k)})


def lora_defaults() -> dict:
    """conf/finetune/lora.yaml, read directly (the planner may run without that group selected)."""
    path = Path(CONF_DIR) / "finetune" / "lora.yaml"
    if path.is_file():
        return OmegaConf.to_container(OmegaConf.load(path), resolve=True)
    from xrobust.models.loading import DEFAULT_MODULES_TO_SAVE

    return {"method": "lora", "rank": 16, "alpha": 32, "dropout": 0.1, "modules_to_save": list(DEFAULT_MODULES_TO_SAVE)}


def largest_batch(setup: Setup, limit: int = 4096) -> int | None:
    if not estimate(replace(setup, batch_size=1)).fits:
        return None
    lo, hi = 1, 2
    while hi <= limit and estimate(replace(setup, batch_size=hi)).fits:
        lo, hi = hi, hi * 2
    hi = min(hi, limit + 1)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if estimate(replace(setup, batch_size=mid)).fits:
            lo = mid
        else:
            hi = mid
    return lo


def make_plan(setup: Setup, cost_of: CostOf | None = None) -> Plan:
    """The plan as configured; when it does not fit, the fitting changes ranked: with `cost_of` (the job's
    GPU-hours in a setup) the cheapest first among those that train the same thing, without it by disruption."""
    plan = estimate(setup)
    if plan.fits:
        plan.max_batch_size = largest_batch(setup)
        return plan
    fitting = []
    for score, what, overrides, changed in candidates(setup):
        try:
            trial = estimate(changed)
        except XrobustError:
            continue
        if trial.fits:
            hours = cost_of(changed) if cost_of else None
            rank = (not same_training(setup, changed), hours, score) if cost_of else (score,)
            fitting.append((rank, changed.world, trial.total_gib, what, overrides, hours))
    fitting.sort(key=lambda item: (item[0], item[1], item[2]))
    rows, seen = [], set()
    for _, world, total, what, overrides, hours in fitting:
        kind = tuple(o.split("=")[0] for o in overrides)  # keep the best micro-batch / device count of each kind
        if kind not in seen:
            seen.add(kind)
            row = {"change": what, "overrides": " ".join(overrides), "total_gib": round(total, 2), "devices": world}
            if hours is not None:
                row["gpu_hours"] = round(hours, 3)
            rows.append(row)
    if rows:
        plan.fix, plan.also_fit = rows[0], rows[1:6]
    return plan


def plan_from_config(cfg: DictConfig) -> Plan:
    return make_plan(setup_from_config(cfg))
