"""What the planner prints: one job's plan (parameters, memory per device, verdict, the fix) and the model
file's recommended setup as pasteable overrides."""

from __future__ import annotations

from omegaconf import OmegaConf

from xrobust.plan.cheapest import cheapest_for_all
from xrobust.plan.memory import Plan
from xrobust.plan.setup import GIB
from xrobust.plan.strategies import memory_model


def recommended_overrides(model_cfg) -> str | None:
    rec = model_cfg.get("recommended") if model_cfg is not None else None
    if not rec:
        return None
    rec = OmegaConf.to_container(rec, resolve=True)
    keys = [
        ("finetune", "finetune"),
        ("trainer", "trainer"),
        ("devices", "trainer.devices"),
        ("num_nodes", "trainer.num_nodes"),
        ("batch_size", "data.batch_size"),
        ("accumulate_grad_batches", "trainer.accumulate_grad_batches"),
        ("gradient_checkpointing", "model.gradient_checkpointing"),
    ]
    defaults = {"num_nodes": 1, "accumulate_grad_batches": 1}
    parts = [
        f"{target}={str(rec[key]).lower() if isinstance(rec[key], bool) else rec[key]}"
        for key, target in keys
        if key in rec and defaults.get(key) != rec[key]
    ]
    return " ".join(parts)


def format_plan(plan: Plan, recommended: str | None = None) -> str:
    s, inv = plan.setup, plan.inv
    where = "GPU" if s.accelerator == "gpu" else "CPU"
    strategy = memory_model(s).describe(s)
    frozen = inv.total - inv.trainable
    method = "LoRA " + f"r={s.finetune.get('rank')}" if s.method == "lora" else "full fine-tuning"
    lines = [
        f"xrobust-plan: {s.model_name} ({s.architecture or s.pretrained})",
        f"  model       {inv.model_class}: {inv.layers} layers, hidden {inv.hidden}, {inv.heads} heads, "
        f"FFN {inv.ffn}{' gated' if inv.gated else ''}, vocab {inv.vocab}"
        + (" (encoder only: no decoder)" if inv.encoder_only_of else "")
        + (
            f" + {inv.decoder_layers} decoder layers and the LM head, text-to-text: {s.candidates} candidates x "
            f"{s.target_tokens} tokens per item"
            if inv.decoder_layers
            else ""
        ),
        f"  parameters  {inv.total:,} total, {inv.trainable:,} trainable ({method}; {frozen:,} frozen"
        + (", input embeddings frozen" if s.freeze_embeddings and s.method != "lora" else "")
        + ")",
        f"  run         {s.world} x {where} ({s.num_nodes} node{'s' if s.num_nodes > 1 else ''} x {s.devices}), "
        f"{strategy}, {s.precision}, micro-batch {s.batch_size} x seq {s.seq_len}, accumulate {s.accumulate} "
        f"-> effective batch {s.batch_size * s.accumulate * s.world}, noise={s.noise}",
        "  per device (GiB)",
    ]
    for name, value in plan.parts.items():
        lines.append(f"    {name:<15}{value:8.2f}   {plan.notes.get(name, '')}")
    if s.accelerator == "cpu" and plan.checkpoint_gib:
        lines.append(
            f"    {'checkpoint save':<15}{plan.checkpoint_gib:8.2f}   in-memory copy while Lightning saves a checkpoint"
            " (between steps: the larger of this and the activations counts)"
        )
    verdict = "FITS" if plan.fits else "DOES NOT FIT"
    shared = plan.processes_sharing_memory
    of = f"x {shared} processes = {plan.total_gib * shared:.2f} " if shared > 1 else ""
    lines.append(f"    {'total':<15}{plan.total_gib:8.2f}   {of}of {s.memory_gib:.4g} GiB -> {verdict}")
    lines.append(
        f"  activations {plan.activations_gib['no_checkpointing']:.2f} GiB without checkpointing, "
        f"{plan.activations_gib['checkpointing']:.2f} GiB with"
    )
    if plan.fits:
        if plan.max_batch_size:
            free = s.memory_gib - plan.total_gib * shared
            lines.append(f"  headroom    {free:.1f} GiB; largest micro-batch that fits: {plan.max_batch_size}")
    elif plan.fix:
        fix = plan.fix
        what = "cheapest change" if "gpu_hours" in fix else "smallest change"
        lines.append(f"  {what} that fits: {fix['change']}: {fix['overrides']} -> {_fitted(fix)}")
        for row in plan.also_fit:
            lines.append(f"    also fits: {row['change']}: {row['overrides']} -> {_fitted(row)}")
    else:
        lines.append("  no single change or pair of changes tried makes it fit")
    if s.accelerator == "gpu" and s.world > 1 and s.rank_zero_loading:
        lines.append(
            f"  host RAM    rank 0 builds the full fp32 model, the other ranks its input embeddings only: "
            f"{4 * inv.total / GIB:.1f} + {s.devices - 1} x {4 * inv.embeddings / GIB:.1f} = "
            f"{plan.host_gib_per_node:.0f} GiB per node at start-up"
        )
    elif s.accelerator == "gpu" and s.world > 1:
        lines.append(
            f"  host RAM    every rank builds the full fp32 model before sharding: {s.devices} x "
            f"{4 * inv.total / GIB:.1f} = {plan.host_gib_per_node:.0f} GiB per node at start-up"
        )
    if s.accelerator == "gpu" and plan.checkpoint_gib:
        lines.append(
            f"  host RAM    saving a checkpoint buffers it whole in host memory: {plan.checkpoint_gib:.1f} GiB"
        )
    if recommended:
        lines.append(f"  recommended for this size: {recommended}")
    return "\n".join(lines)


def format_sweep(sweep) -> str:
    """One row per job (fits or not, memory per device, the smallest change that fits, its cost) and the totals."""
    gpu, jobs = sweep.gpu, sweep.jobs
    lines = [
        f"xrobust-plan -m: {len(jobs)} jobs, planned one by one (none run); costs on {gpu.name}, "
        f"{gpu.peak_flops / 1e12:g} TFLOP/s x MFU {sweep.mfu:g}",
        "",
        "| # | job | fits | GiB per device | smallest change that fits | devices | steps | train tokens | PFLOP "
        "| GPU-h |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for number, job in enumerate(jobs, 1):
        plan, cost = job.plan, job.cost
        name = " ".join(o for o in job.overrides if o.partition("=")[0] in sweep.varying) or "(the one job)"
        memory = f"{plan.total_gib:.1f}"
        if job.fix:
            memory += f" -> {plan.fix['total_gib']:.1f}"
        change = f"`{job.fix}`" if job.fix else (job.problem or "")
        if job.rung_stop:
            change += f"{'; ' if change else ''}halving: stops after {job.rung_stop} epoch{'s' * (job.rung_stop > 1)}"
        fits = "yes" if plan.fits else f"NO: over {plan.setup.memory_gib:g} GiB"
        if cost is None:
            lines.append(f"| {number} | {name} | {fits} | {memory} | {change} | | | | | |")
            continue
        lines.append(
            f"| {number} | {name} | {fits} | {memory} | {change} | {cost.devices} | "
            f"{cost.optimizer_steps:,} | {cost.train_tokens:.3g} | {_pflop(cost.flops)} | {_number(cost.gpu_hours)} |"
        )
    costed = sweep.costed
    fitting = sum(job.plan.fits for job in jobs)
    changed = sum(1 for job in jobs if job.fix)
    stuck = [number for number, job in enumerate(jobs, 1) if job.cost is None]
    train = sum(c.train_flops for c in costed)
    evaluation = sum(c.eval_flops for c in costed)
    longest = max((c.wall_s for c in costed), default=0.0) / 3600
    sources = sorted({job.data_source for job in jobs if job.data_source})
    lines += [
        "",
        f"jobs            {len(jobs)}: {fitting} fit as configured, {changed} fit with the change shown"
        + (f", {len(stuck)} not planned (jobs {', '.join(map(str, stuck))}: see the row)" if stuck else ""),
        f"training tokens {sum(c.train_tokens for c in costed):.4g} "
        f"(evaluation {sum(c.eval_tokens for c in costed):.4g})",
        f"FLOPs           {train + evaluation:.4g} = training {train:.4g} + evaluation {evaluation:.4g}",
        f"GPU-hours       {_number(sweep.gpu_hours)} at {gpu.peak_flops / 1e12:g} TFLOP/s x MFU {sweep.mfu:g}"
        " (plan.gpu, plan.mfu; sharded jobs: at least their gathers at link speed)",
        f"wall time       {_duration(sweep.wall_hours)} on {sweep.gpus} GPUs (plan.gpus; perfect packing, the longest "
        f"job alone {_duration(longest)})",
        *(f"data            {source}" for source in sources),
    ]
    if sweep.halving and sweep.halving.rule == "one_seed":
        lines.append(
            f"one_seed        {len(jobs)} jobs (hydra/sweeper=one_seed: every {sweep.halving.key} on each cell's first "
            "seed, the other seeds at one value; which one the run decides, each costs the same)"
        )
    elif sweep.halving:
        rule, stopped = sweep.halving, sum(1 for job in jobs if job.rung_stop)
        lines.append(
            f"halving         {stopped} of {len(jobs)} jobs planned to stop at their rung (hydra/sweeper=halving: "
            f"{rule.key} per cell, first rung {rule.rung_epochs} epoch{'s' * (rule.rung_epochs > 1)}, eta {rule.eta}; "
            "which values go on the run decides, each costs the same)"
        )
    lines += cheapest_lines(jobs)
    early = sum(job.stops_early for job in jobs)
    if early:
        lines.append(
            f"upper bound     {early} jobs stop once English dev accuracy stops improving (callbacks=early_stopping): "
            "their steps and costs are at trainer.max_epochs"
        )
    return "\n".join(lines)


def cheapest_lines(jobs) -> list[str]:
    """plan.cheapest=true: per model, the setup of the same training that fits all its jobs at the least
    GPU-hours, against the GPU-hours as configured."""
    by_model: dict[str, list] = {}
    for job in jobs:
        if job.options and job.cost is not None:
            by_model.setdefault(job.plan.setup.model_name, []).append(job)
    lines = []
    for model, members in by_model.items():
        configured = sum(job.cost.gpu_hours for job in members)
        found = cheapest_for_all([job.options for job in members])
        if found is None:
            lines.append(f"cheapest setup  {model}: no one setup of the same training fits all its {len(members)} jobs")
            continue
        option, total = found
        lines.append(
            f"cheapest setup  {model}: {' '.join(option.overrides)} -> {_number(total)} GPU-hours for its "
            f"{len(members)} jobs (as configured {_number(configured)})"
        )
    return lines


def _fitted(row: dict) -> str:
    hours = f", {row['gpu_hours']:.3g} GPU-hours" if "gpu_hours" in row else ""
    return f"{row['total_gib']:.1f} GiB{hours}"


def _pflop(flops: float) -> str:
    pflop = flops / 1e15
    return f"{pflop:,.0f}" if pflop >= 100 else f"{pflop:.2g}"


def _number(value: float) -> str:
    return f"{value:,.1f}" if value >= 10 else f"{value:.3g}"


def _duration(hours: float) -> str:
    if hours >= 1:
        return f"{hours:,.1f} h"
    return f"{hours * 60:.1f} min" if hours * 60 >= 1 else f"{hours * 3600:.0f} s"
