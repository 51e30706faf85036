"""hydra/sweeper=one_seed planned (issue #31): every learning rate on each cell's first seed, one on the others."""

from __future__ import annotations

import pytest

from xrobust.plan.halving import HalvingRule, launched_jobs, planned_stops
from xrobust.plan.sweep import plan_sweep


def test_one_seed_launches_every_lr_on_the_first_seed_and_one_on_the_others():
    jobs = [
        [f"noise={n}", f"optim.lr_scale={lr}", f"seed={s}"]
        for n in ("none", "adv")
        for lr in (2, 1, 0.5)
        for s in (1, 2)
    ]
    rule = HalvingRule("optim.lr_scale", "seed", 1, 3, "one_seed")
    # Which lr runs seed 2 the run decides; the plan keeps the first in sorted order (each costs the same).
    assert launched_jobs(rule, jobs) == [job for job in jobs if job[2] == "seed=1" or job[1] == "optim.lr_scale=0.5"]
    assert planned_stops(rule, jobs, 5) == [None] * len(jobs)  # nothing stops early: every launched job runs whole
    assert launched_jobs(HalvingRule("optim.lr_scale", "seed", 1, 3), jobs) == jobs


def test_a_one_seed_sweep_costs_the_jobs_it_launches_in_full():
    grid = [
        "model=xlmr-base",
        "task=pawsx",
        "trainer=gpu",
        "trainer.max_epochs=2",
        "optim.lr_scale=0.5,1,2",
        "seed=1,2",
    ]
    full = plan_sweep(grid)
    chosen = plan_sweep([*grid, "hydra/sweeper=one_seed"])
    assert chosen.halving.rule == "one_seed" and len(full.jobs) == 6
    assert [job.overrides[:-1] for job in chosen.jobs] == [  # less hydra/sweeper=one_seed
        job.overrides for job in full.jobs if "seed=1" in job.overrides or "optim.lr_scale=0.5" in job.overrides
    ]
    assert not any(job.rung_stop for job in chosen.jobs)
    assert chosen.gpu_hours == pytest.approx(full.gpu_hours * 4 / 6)
