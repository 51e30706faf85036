"""experiment=size_grid trains each model in its own recommended setup (model.recommended): the trainer file's
strategy, the devices, micro-batch, accumulation and checkpointing, and xrobust-plan says each of them fits, every
noise method included, and is the cheapest setup of the same training that does."""

from __future__ import annotations

import pytest
from helpers import compose_config
from omegaconf import OmegaConf

from xrobust.plan.cheapest import cheapest_for_all
from xrobust.plan.sweep import plan_sweep

SIZES = ["xlmr-base", "xlmr-large", "xlmr-xl", "xlmr-xxl", "mdeberta-v3-base", "mt0-large", "mt0-xl", "mt0-xxl"]
DIFFERING = ("strategy", "plugins", "inference_mode")  # the keys in which the trainer files differ


def plain(node):
    return OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node


@pytest.mark.parametrize("model", SIZES)
def test_the_grid_applies_each_models_recommended_setup(model):
    cfg = compose_config(["experiment=size_grid", f"model={model}"])
    rec = cfg.model.recommended
    alone = compose_config([f"model={model}", f"trainer={rec.trainer}"]).trainer  # the recommended trainer file
    for key in DIFFERING:
        assert plain(cfg.trainer[key]) == plain(alone[key]), key
    assert cfg.trainer.devices == rec.devices and cfg.trainer.num_nodes == rec.num_nodes
    assert cfg.trainer.accumulate_grad_batches == rec.accumulate_grad_batches
    assert cfg.data.batch_size == rec.batch_size
    assert cfg.model.gradient_checkpointing == rec.gradient_checkpointing
    assert cfg.trainer.accelerator == "gpu" and cfg.trainer.max_epochs == 5  # the grid's own settings stay


def test_the_sharded_sizes_are_sharded_and_a_command_line_value_still_wins():
    xxl = compose_config(["experiment=size_grid", "model=xlmr-xxl"]).trainer
    assert (
        xxl.strategy._target_ == "xrobust.lightning.sharding.FSDP2Strategy" and xxl.devices == 4 and xxl.plugins is None
    )
    assert compose_config(["experiment=size_grid", "model=xlmr-xxl", "trainer.devices=16"]).trainer.devices == 16
    me5 = compose_config(["experiment=size_grid", "model=me5-small"])  # no recommended setup: one GPU, defaults
    assert me5.trainer.strategy == "auto" and me5.trainer.devices == 1 and me5.data.batch_size == 32


def test_the_planner_says_every_size_fits_in_its_recommended_setup():
    sweep = plan_sweep(["experiment=size_grid", f"model={','.join(SIZES)}", "noise=none"])
    assert {job.overrides[0] for job in sweep.jobs} == {f"model={model}" for model in SIZES}
    assert all(job.plan.fits and job.fix is None for job in sweep.jobs), [
        (job.overrides[0], job.fix) for job in sweep.jobs if not job.plan.fits
    ]


def test_every_job_of_the_grid_fits_as_configured_on_h100_and_each_setup_is_the_cheapest_that_fits():
    # Seeds and learning rates change no job's memory or cost per step: one of each stands for the three.
    sweep = plan_sweep(
        ["experiment=size_grid", f"model={','.join(SIZES)}", "noise=glob(*)", "task=xnli", "seed=1"]
        + ["optim.lr_scale=1", "plan.gpu=h100", "plan.gpus=8", "plan.cheapest=true"]
    )
    assert len(sweep.jobs) == len(SIZES) * 5
    assert all(job.plan.fits and job.fix is None for job in sweep.jobs), [
        job.overrides for job in sweep.jobs if not job.plan.fits
    ]
    for model in (m for m in SIZES if m != "mt0-xxl"):  # mt0-xxl's setup is the cheapest for both heads (docs)
        jobs = [job for job in sweep.jobs if job.overrides[0] == f"model={model}"]
        best, hours = cheapest_for_all([job.options for job in jobs])
        configured = jobs[0].plan.setup
        assert (best.setup.world, best.setup.batch_size, best.setup.accumulate, best.setup.checkpointing) == (
            configured.world,
            configured.batch_size,
            configured.accumulate,
            configured.checkpointing,
        ), model
        assert hours == pytest.approx(sum(job.cost.gpu_hours for job in jobs)), model
