"""`xrobust-plan -m`: the sweep expanded as training expands it, every job planned, the grid's cost by hand, and a
job that does not fit named with the reason."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from helpers import CONF_DIR
from hydra import initialize_config_dir

from xrobust.plan.sweep import expand_sweep, plan_sweep

# The 1B-vs-10B grid of docs/planner.md: conf/experiment/size_grid.yaml (each model's recommended setup, 5 epochs
# at most with early stopping, sequences cut at 128, each model at 0.5, 1 and 2 x its own lr) over both model
# pairs, three noise methods, two tasks and three seeds.
GRID = [
    "experiment=size_grid",
    "model=mt0-large,mt0-xxl,xlmr-xl,xlmr-xxl",
    "noise=none,rs_da,adv",
    "task=xnli,pawsx",
    "seed=1,2,3",
]


def jobs_of(overrides: list[str]) -> list[list[str]]:
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return expand_sweep(overrides)[1]


def test_the_sweep_expands_as_training_expands_it():
    # experiment=size_grid declares its own hydra.sweeper.params: 2 models x glob(*) over conf/noise x 3 lr scales
    # x 3 seeds.
    grid = jobs_of(["experiment=size_grid"])
    assert len(grid) == 2 * 5 * 3 * 3
    assert {o for job in grid for o in job if o.startswith("seed=")} == {"seed=1", "seed=2", "seed=3"}
    assert {o for job in grid for o in job if o.startswith("optim.lr_scale=")} == {
        f"optim.lr_scale={s}" for s in ("0.5", "1", "2")
    }
    assert {o for job in grid for o in job if o.startswith("model=")} == {"model=xlmr-xl", "model=xlmr-xxl"}
    noises = {o for job in grid for o in job if o.startswith("noise=")}
    assert noises == {f"noise={n}" for n in ("adv", "code_switch", "none", "rs_da", "rs_rp")}
    # A command-line value of a swept key replaces the config's list; range() and glob() as in training.
    jobs = jobs_of(["experiment=size_grid_cpu", "model=me5-small-6l", "noise=glob(rs_*)", "seed=range(1,4)"])
    assert sorted((job[0], job[1], job[3]) for job in jobs) == sorted(
        ("model=me5-small-6l", f"noise={n}", f"seed={s}") for n in ("rs_da", "rs_rp") for s in (1, 2, 3)
    )
    assert len(jobs_of(GRID)) == 4 * 3 * 2 * 3 * 3


def test_the_1b_vs_10b_grid_is_planned_job_by_job():
    sweep = plan_sweep(GRID)
    # 216 jobs in the grid (4 x 3 x 2 x 3 x 3); size_grid's one_seed rule launches every lr on seed 1 and one lr on
    # seeds 2 and 3: (3 + 2) of every 9 per model, noise and task.
    assert sweep.halving.rule == "one_seed"
    assert len(sweep.jobs) == 4 * 3 * 2 * (3 + 2) and all(job.cost is not None for job in sweep.jobs)
    by_model: dict[str, list] = {}
    for job in sweep.jobs:
        by_model.setdefault(job.overrides[0].partition("=")[2], []).append(job)
    # The grid applies each model's recommended setup: XLM-R XXL sharded over 4 GPUs at micro-batch 8, and it fits.
    assert all(
        (job.plan.setup.strategy, job.plan.setup.devices, job.plan.setup.batch_size) == ("fsdp", 4, 8)
        and job.plan.fits
        and job.fix is None
        for job in by_model["xlmr-xxl"]
    )
    assert all(job.stops_early for job in sweep.jobs)  # size_grid's early stopping: the costs are upper bounds
    assert all(job.plan.fits for job in by_model["mt0-large"] + by_model["xlmr-xl"])
    # PGD with its clean term keeps two graphs: more memory, and 20 N per token instead of 6 N.
    none, adv = (next(j for j in by_model["xlmr-xl"] if f"noise={n}" in j.overrides) for n in ("none", "adv"))
    assert 1.95 < adv.plan.parts["activations"] / none.plan.parts["activations"] < 2  # one working layer, not two
    assert adv.cost.train_flops / none.cost.train_flops == pytest.approx(20 / 6)
    assert sweep.wall_hours >= sweep.gpu_hours / 8


def test_the_flops_of_a_tiny_grid_by_hand():
    sweep = plan_sweep(
        ["model=xlmr-base", "noise=none,adv", "task=xnli", "trainer=gpu", "trainer.max_steps=10", "data.batch_size=4"]
        + ["trainer.limit_val_batches=0", "trainer.limit_test_batches=1", "data.eval_batch_size=2", "plan.mfu=0.5"]
    )
    assert len(sweep.jobs) == 2
    # xlmr-base with a 3-label head: 278,045,955 parameters, of them 250,002 x 768 input embeddings (frozen).
    n = 278_045_955 - 250_002 * 768
    # 10 steps of 4 English XNLI pairs of 40.9 tokens (conf/plan.yaml), in shuffled batches: padded 1.67x.
    train_tokens = 10 * 4 * 40.9 * 1.67
    # No validation; one test batch of 2 items in each of the 15 languages, at their recorded mean lengths.
    means = [43.7, 46.9, 50.6, 48.9, 59.0, 48.3, 54.9, 52.2, 49.1, 48.0, 44.6, 44.6, 51.6, 51.5, 38.3]
    eval_tokens = 2 * sum(means)
    none, adv = sweep.jobs
    assert none.cost.train_tokens == pytest.approx(train_tokens) and none.cost.eval_tokens == pytest.approx(eval_tokens)
    assert none.cost.train_flops == pytest.approx(6 * n * train_tokens)
    assert none.cost.eval_flops == pytest.approx(2 * n * eval_tokens)
    # PGD, K = 2, clean term: 4 forwards + 2 backwards to delta (2 N each) + 2 full backwards (4 N each) = 20 N.
    assert adv.cost.train_flops == pytest.approx(20 * n * train_tokens)
    flops = 26 * n * train_tokens + 4 * n * eval_tokens
    assert sweep.gpu_hours == pytest.approx(flops / (989e12 * 0.5) / 3600)


def test_a_job_that_does_not_fit_is_named_with_the_reason(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "xrobust.plan", "-m", "model=xlmr-base,xlmr-xxl", "trainer=gpu", "task=xnli"]
        + ["data.batch_size=32", "plan.gpu_memory_gb=5", f"plan.json={tmp_path / 'sweep.json'}"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = {
        line.split(" | ")[1]: line
        for line in proc.stdout.splitlines()
        if line.startswith("| 1 ") or line.startswith("| 2 ")
    }
    # xlmr-base needs 6.5 GiB at micro-batch 32 on one GPU: over 5, and a change is found.
    assert "NO: over 5 GiB" in rows["model=xlmr-base"] and "`" in rows["model=xlmr-base"]
    # xlmr-xxl: its gathered 16-bit units and the reserve alone exceed 5 GiB on any number of devices.
    assert "NO: over 5 GiB" in rows["model=xlmr-xxl"]
    assert "no single change or pair of changes tried makes it fit" in rows["model=xlmr-xxl"]
    assert "1 not planned (jobs 2: see the row)" in proc.stdout
    summary = json.loads((tmp_path / "sweep.json").read_text())
    assert [job["fits"] for job in summary["jobs"]] == [False, False]
    assert summary["jobs"][0]["fix"]["overrides"] and summary["jobs"][1]["cost"] is None
    assert summary["totals"]["jobs"] == 2
