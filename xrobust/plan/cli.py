"""The command line: `xrobust-plan [overrides]` plans one job, `xrobust-plan -m [sweep overrides]` every job of
the sweep `xrobust-train -m` would launch with the same overrides."""

from __future__ import annotations

import json
import sys
import warnings
from dataclasses import asdict
from pathlib import Path

import hydra
from omegaconf import DictConfig

from xrobust.config.checks import CONF_DIR
from xrobust.errors import XrobustError
from xrobust.plan.cheapest import cheapest
from xrobust.plan.cost import job_cost
from xrobust.plan.data import data_stats
from xrobust.plan.gpus import gpu_of
from xrobust.plan.options import plan_options
from xrobust.plan.output import format_plan, format_sweep, recommended_overrides
from xrobust.plan.search import make_plan
from xrobust.plan.setup import setup_from_config
from xrobust.plan.sweep import SweepPlan, job_hours, plan_sweep, stops_early

MULTIRUN_FLAGS = ("-m", "--multirun")


def main() -> None:
    warnings.filterwarnings("ignore", category=FutureWarning)  # transformers 5 deprecations raised inside peft
    args = sys.argv[1:]
    if not any(flag in args for flag in MULTIRUN_FLAGS):
        plan_one()
        return
    overrides = [arg for arg in args if arg not in MULTIRUN_FLAGS]
    unknown = [arg for arg in overrides if arg.startswith("-")]
    try:
        if unknown:
            raise XrobustError(f"xrobust-plan -m takes overrides only, not {' '.join(unknown)}")
        sweep = plan_sweep(overrides)
    except XrobustError as err:
        print(f"xrobust-plan: error: {err}", file=sys.stderr)
        sys.exit(2)
    print(format_sweep(sweep))
    target = next((o.partition("=")[2] for o in overrides if o.startswith("plan.json=")), None)
    if target:
        Path(target).write_text(json.dumps(sweep_summary(sweep), indent=2) + "\n")


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="plan")
def plan_one(cfg: DictConfig) -> None:
    try:
        setup = setup_from_config(cfg)
        cost_of = job_hours(cfg, setup)
        plan = make_plan(setup, cost_of)
    except XrobustError as err:
        print(f"xrobust-plan: error: {err}", file=sys.stderr)
        sys.exit(2)
    print(format_plan(plan, recommended_overrides(cfg.model)))
    summary = plan.summary()
    options = plan_options(cfg)
    gpu = gpu_of(options)
    try:
        cost = job_cost(cfg, setup, plan.inv, data_stats(cfg), gpu, options.mfu)
    except XrobustError as err:
        print(f"  cost        not planned: {err}")
    else:
        summary["cost"] = asdict(cost)
        print(
            f"  cost        {cost.optimizer_steps:,} steps, {cost.train_tokens:.3g} training tokens, "
            f"{cost.flops:.3g} FLOPs -> {cost.gpu_hours:.3g} GPU-hours on {gpu.name} at MFU {options.mfu:g}"
            + (" (at most: callbacks=early_stopping may stop sooner)" if stops_early(cfg) else "")
        )
        best = cheapest(setup, cost_of) if cost_of else None
        if best is not None and best.gpu_hours < cost.gpu_hours * 0.99:
            print(
                f"  cheapest    the same training that fits: {' '.join(best.overrides)} -> {best.total_gib:.1f} GiB, "
                f"{best.gpu_hours:.3g} GPU-hours"
            )
    if options.json:
        Path(options.json).write_text(json.dumps(summary, indent=2) + "\n")


def sweep_summary(sweep: SweepPlan) -> dict:
    return {
        "gpu": asdict(sweep.gpu),
        "mfu": sweep.mfu,
        "gpus": sweep.gpus,
        "jobs": [
            {
                "overrides": list(job.overrides),
                "fits": job.plan.fits,
                "total_gib": round(job.plan.total_gib, 3),
                "fix": job.plan.fix if not job.plan.fits else None,
                "problem": job.problem,
                "cost": asdict(job.cost) if job.cost else None,
                "data": job.data_source,
            }
            for job in sweep.jobs
        ],
        "totals": {
            "jobs": len(sweep.jobs),
            "train_tokens": sum(c.train_tokens for c in sweep.costed),
            "flops": sum(c.flops for c in sweep.costed),
            "gpu_hours": sweep.gpu_hours,
            "wall_hours": sweep.wall_hours,
        },
    }
