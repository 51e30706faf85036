"""`xrobust-plan -m <sweep overrides>`: every job of a Hydra sweep planned, none run.

The jobs are expanded as `xrobust-train -m` expands them (xrobust/sweep/expand.py: Hydra's override parser over
the config's own `hydra.sweeper.params` followed by the command line, split as the basic sweeper splits it); each
job's config is composed as the basic launcher composes it
(`load_sweep_config`). A job that does not fit is costed with its cheapest fitting change applied. Under
hydra/sweeper=halving the jobs its rule stops are costed at their rung's epochs (xrobust/plan/halving.py); with
plan.cheapest=true every job's fitting setups are searched too, for the cheapest setup per model.
"""

from __future__ import annotations

from dataclasses import dataclass

from hydra import initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.types import RunMode
from omegaconf import DictConfig

from xrobust.config.checks import CONF_DIR
from xrobust.errors import XrobustError
from xrobust.plan.cheapest import CostOf, Option, fitting_options
from xrobust.plan.cost import JobCost, job_cost
from xrobust.plan.data import data_stats
from xrobust.plan.gpus import Gpu, gpu_of
from xrobust.plan.halving import HalvingRule, halving_rule, launched_jobs, planned_stops
from xrobust.plan.inventory import inventory
from xrobust.plan.memory import Plan
from xrobust.plan.options import plan_options
from xrobust.plan.search import make_plan
from xrobust.plan.setup import Setup, setup_from_config
from xrobust.sweep.expand import sweep_jobs

CONFIG_NAME = "plan"


@dataclass(frozen=True)
class JobPlan:
    """One job of the sweep: its overrides, its memory plan as configured, and its cost as it can run."""

    overrides: tuple[str, ...]
    plan: Plan
    cost: JobCost | None
    data_source: str
    problem: str | None = None  # why it cannot run: no fitting change, or its data/cost could not be planned
    stops_early: bool = False  # callbacks=early_stopping: its steps and cost are at trainer.max_epochs, a bound
    rung_stop: int | None = None  # hydra/sweeper=halving: planned to stop after this many epochs
    options: tuple[Option, ...] = ()  # plan.cheapest=true: every setup of the same training that fits, cheapest first

    @property
    def fix(self) -> str | None:
        return self.plan.fix["overrides"] if self.plan.fix and not self.plan.fits else None


@dataclass(frozen=True)
class SweepPlan:
    jobs: list[JobPlan]
    varying: list[str]  # the override keys whose value differs between jobs
    gpu: Gpu
    mfu: float
    gpus: int  # the GPUs the sweep runs on, for the wall time
    halving: HalvingRule | None = None

    @property
    def costed(self) -> list[JobCost]:
        return [job.cost for job in self.jobs if job.cost is not None]

    @property
    def gpu_hours(self) -> float:
        return sum(cost.gpu_hours for cost in self.costed)

    @property
    def wall_hours(self) -> float:
        """Perfect packing onto plan.gpus GPUs: the GPU-hours spread over them, or the longest job if longer."""
        longest = max((cost.wall_s for cost in self.costed), default=0.0) / 3600
        return max(self.gpu_hours / self.gpus, longest)


def expand_sweep(overrides: list[str]) -> tuple[DictConfig, list[list[str]]]:
    """The sweep's master config and every job's overrides, in the order the basic sweeper launches them (the
    halving sweeper's grid is the basic sweeper's)."""
    hydra = GlobalHydra.instance().hydra
    master = hydra.compose_config(CONFIG_NAME, overrides, run_mode=RunMode.MULTIRUN)
    sweeper = master.hydra.sweeper
    halving_rule(sweeper)  # one error line for a sweeper the planner cannot expand
    return master, sweep_jobs(sweeper.get("params"), overrides, hydra.config_loader)


def plan_sweep(overrides: list[str]) -> SweepPlan:
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        loader = GlobalHydra.instance().hydra.config_loader
        master, jobs = expand_sweep(overrides)
        rule = halving_rule(master.hydra.sweeper)
        jobs = launched_jobs(rule, jobs) if rule else jobs  # one_seed: a losing value's other seeds never run
        max_epochs = master.trainer.max_epochs
        limit = None if max_epochs in (None, -1) else int(max_epochs)
        stops = planned_stops(rule, jobs, limit) if rule else [None] * len(jobs)
        plan = plan_options(master)
        planned = [plan_job(loader, master, job, stop, plan.cheapest) for job, stop in zip(jobs, stops, strict=True)]
    values: dict[str, set[str]] = {}
    for job in jobs:
        for override in job:
            key, _, value = override.partition("=")
            values.setdefault(key, set()).add(value)
    return SweepPlan(
        jobs=planned,
        varying=[key for key, seen in values.items() if len(seen) > 1],
        gpu=gpu_of(plan),
        mfu=plan.mfu,
        gpus=plan.gpus or plan.gpus_per_node,
        halving=rule,
    )


def plan_job(
    loader, master: DictConfig, overrides: list[str], rung_stop: int | None = None, search: bool = False
) -> JobPlan:
    """Plan one job, composed as the basic launcher composes it; a job that does not fit is costed as it runs
    with its cheapest fitting change (those overrides appended), a job halving stops at its rung's epochs."""
    rung = [f"trainer.max_epochs={rung_stop}"] if rung_stop else []

    def compose(extra: list[str]) -> DictConfig:
        return loader.load_sweep_config(master, [*overrides, *extra, *rung])

    cfg = compose([])
    setup = setup_from_config(cfg)
    cost_of = job_hours(cfg, setup)
    plan = make_plan(setup, cost_of)
    name = tuple(overrides)
    if not plan.fits and not plan.fix:
        return JobPlan(name, plan, None, "", "no single change or pair of changes tried makes it fit")
    runs = compose(plan.fix["overrides"].split()) if not plan.fits else cfg
    run_setup = setup_from_config(runs) if runs is not cfg else setup
    try:
        stats = data_stats(runs)
        plan_of_run = plan_options(runs)
        cost = job_cost(runs, run_setup, inventory(run_setup), stats, gpu_of(plan_of_run), plan_of_run.mfu)
    except XrobustError as err:
        return JobPlan(name, plan, None, "", f"not costed: {err}")
    options = tuple(fitting_options(setup, cost_of)) if search and cost_of else ()
    return JobPlan(name, plan, cost, stats.source, stops_early=stops_early(runs), rung_stop=rung_stop, options=options)


def job_hours(cfg: DictConfig, setup: Setup) -> CostOf | None:
    """The job's GPU-hours in any setup (its epochs, data, GPU and MFU fixed); None when it cannot be costed
    (checked on `setup`, the job as configured)."""
    try:
        stats = data_stats(cfg)
    except XrobustError:
        return None
    plan = plan_options(cfg)
    gpu, mfu = gpu_of(plan), plan.mfu

    def hours(changed: Setup) -> float:
        return job_cost(cfg, changed, inventory(changed), stats, gpu, mfu).gpu_hours

    try:
        hours(setup)
    except XrobustError:
        return None
    return hours


def stops_early(cfg: DictConfig) -> bool:
    """callbacks=early_stopping: the callbacks node (named callbacks, any names) holds that one."""
    return bool((cfg.callbacks or {}).get("early_stopping"))
