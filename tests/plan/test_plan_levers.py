"""The planner's cost levers (issue #31): the cheapest fitting change and setup, a halving sweep's stopped rungs,
and packed batches counted unpadded."""

from __future__ import annotations

import pytest
from helpers import CONF_DIR
from hydra import compose, initialize_config_dir

from xrobust.plan.cheapest import same_training
from xrobust.plan.halving import HalvingRule, planned_stops
from xrobust.plan.memory import estimate
from xrobust.plan.search import candidates
from xrobust.plan.setup import setup_from_config
from xrobust.plan.sweep import job_hours, plan_sweep


def plan_config(overrides: list[str]):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose("plan", overrides=overrides)


def test_the_change_that_fits_is_the_cheapest_of_those_that_train_the_same():
    overrides = ["model=xlmr-xxl", "trainer=gpu", "data.batch_size=32", "task=pawsx", "trainer.max_epochs=1"]
    job = plan_sweep(overrides).jobs[0]
    assert not job.plan.fits and job.fix
    cfg = plan_config(overrides)
    setup = setup_from_config(cfg)
    cost_of = job_hours(cfg, setup)
    same = [c for _, _, _, c in candidates(setup) if same_training(setup, c) and estimate(c).fits]
    assert job.plan.fix["gpu_hours"] == pytest.approx(min(cost_of(c) for c in same), rel=1e-3)
    assert job.cost.gpu_hours == pytest.approx(job.plan.fix["gpu_hours"], rel=1e-3)  # costed as it runs


def test_halving_stops_all_but_the_kept_values_of_each_cell_after_their_rung():
    jobs = [
        [f"noise={n}", f"optim.lr_scale={lr}", f"seed={s}"]
        for n in ("none", "adv")
        for lr in (2, 1, 0.5)
        for s in (1, 2)
    ]
    stops = planned_stops(HalvingRule("optim.lr_scale", "seed", 1, 3), jobs, 5)
    # Per cell and seed, one lr goes on (which, the run decides; the plan keeps the first in sorted order).
    assert [job for job, stop in zip(jobs, stops, strict=True) if stop is None] == [
        [f"noise={n}", "optim.lr_scale=0.5", f"seed={s}"] for n in ("none", "adv") for s in (1, 2)
    ]
    assert {stop for stop in stops if stop} == {1}
    # Nine values: 6 stop after 1 epoch, 2 after 3, 1 runs on; the next rung (9 epochs) would pass max_epochs.
    nine = [[f"optim.lr_scale={lr}"] for lr in range(1, 10)]
    stops = planned_stops(HalvingRule("optim.lr_scale", "seed", 1, 3), nine, 5)
    assert sorted(stops, key=lambda s: s or 99) == [1] * 6 + [3] * 2 + [None]
    assert planned_stops(HalvingRule("optim.lr_scale", "seed", 1, 3), nine, 1) == [None] * 9  # no rung before the end


def test_a_halving_sweep_costs_its_stopped_jobs_at_their_rung():
    grid = ["experiment=size_grid", "model=xlmr-xl", "noise=none", "task=pawsx", "seed=1,2"]
    full = plan_sweep([*grid, "hydra/sweeper=basic"])  # every lr on every seed (size_grid itself: one_seed)
    halved = plan_sweep([*grid, "hydra/sweeper=halving"])
    assert len(halved.jobs) == len(full.jobs) == 6 and halved.halving.eta == 3
    stopped = [job for job in halved.jobs if job.rung_stop]
    assert len(stopped) == 4 and all(job.rung_stop == 1 for job in stopped)
    one_job = full.jobs[0].cost
    assert all(job.cost.train_tokens == pytest.approx(one_job.train_tokens / 5) for job in stopped)
    kept = [job.cost.gpu_hours for job in halved.jobs if not job.rung_stop]
    assert kept == pytest.approx([one_job.gpu_hours] * 2)
    assert halved.gpu_hours == pytest.approx(sum(kept) + sum(job.cost.gpu_hours for job in stopped))
    assert halved.gpu_hours < full.gpu_hours / 2


def test_packed_batches_are_counted_unpadded_where_the_model_type_packs():
    grid = ["model=xlmr-base", "task=xnli", "trainer=gpu", "trainer.max_steps=10", "data.batch_size=4"]
    padded, packed = (plan_sweep([*grid, f"data.packing={p}"]).jobs[0] for p in ("false", "true"))
    assert padded.cost.train_tokens == pytest.approx(10 * 4 * 40.9 * 1.67)
    assert packed.cost.train_tokens == pytest.approx(10 * 4 * 40.9)
    refused = plan_sweep(["model=mt0-large", "model.head=seq2seq", "task=xnli", "trainer=gpu", "data.packing=true"])
    assert "does not support packed batches" in refused.jobs[0].problem


def test_each_change_plans_the_setup_its_overrides_build():
    """A suggested change is planned as the config it names runs: `trainer=fsdp2` included, under which rank 0
    alone loads the weights (the host RAM figure) and no DDP buckets exist."""
    base = {"model": "xlmr-xxl", "trainer": "ddp", "trainer.devices": "4", "data.batch_size": "32"}
    setup = setup_from_config(plan_config([f"{k}={v}" for k, v in base.items()]))
    changes = candidates(setup)
    assert any(o == ["trainer=fsdp2", "trainer.devices=4"] for _, _, o, _ in changes)  # the same devices, sharded
    for _, what, overrides, planned in changes:
        merged = {**base, **dict(override.split("=", 1) for override in overrides)}
        built = setup_from_config(plan_config([f"{k}={v}" for k, v in merged.items()]))
        assert planned == built, what
        assert estimate(planned).host_gib_per_node == estimate(built).host_gib_per_node
