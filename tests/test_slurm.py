"""SLURM launching without SLURM: the `slurm` launcher config for every size's recommended setup, and a real sweep
through hydra-submitit-launcher's local executor (the same launcher code, jobs as local processes)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import ROOT, compose_config
from omegaconf import OmegaConf
from small_runs import LANGUAGES, ODD_TEST_SIZE, env, overrides, small_sample, varied_tiny_checkpoint

from xrobust.plan import recommended_overrides
from xrobust.report.collect import collect

pytest.importorskip("hydra_plugins.hydra_submitit_launcher")

SIZES = ["xlmr-base", "xlmr-large", "xlmr-xl", "xlmr-xxl", "mdeberta-v3-base", "mt0-large", "mt0-xl", "mt0-xxl"]


@pytest.mark.parametrize("model", SIZES)
def test_slurm_launcher_takes_each_sizes_geometry_from_its_recommended_setup(model, tmp_path):
    """One SLURM task per GPU, nodes as the trainer's: what Lightning's SLURMEnvironment turns into the ranks."""
    recommended = recommended_overrides(compose_config([f"model={model}"]).model).split()
    cfg = compose_config(
        ["hydra/launcher=slurm", f"model={model}", *recommended, "hydra.launcher.mem_gb=400"], tmp_path
    )
    launcher, trainer = cfg.hydra.launcher, cfg.trainer
    assert launcher._target_.endswith("SlurmLauncher")
    assert launcher.tasks_per_node == launcher.gpus_per_node == trainer.devices >= 1
    assert launcher.nodes == trainer.num_nodes and launcher.mem_gb == 400
    strategy = trainer.strategy.get("_target_") if OmegaConf.is_dict(trainer.strategy) else trainer.strategy
    assert (strategy == "xrobust.sharding.FSDP2Strategy") == (trainer.devices > 1)  # sharded sizes: FSDP2


def test_multirun_through_the_submitit_local_launcher(tmp_path):
    """Two jobs of a sweep, each its own submitit process; both write results and the report reads the sweep."""
    sweep, tiny, data = tmp_path / "sweep", tmp_path / "tiny", tmp_path / "data"
    data.mkdir()
    args = overrides(varied_tiny_checkpoint(tiny), small_sample(data), "trainer.max_steps=2")
    proc = subprocess.run(
        [sys.executable, "-m", "xrobust.train", "-m", "hydra/launcher=submitit_local", f"hydra.sweep.dir={sweep}"]
        + ["seed=1,2", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env=env(),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert len([p for p in (sweep / ".submitit").iterdir() if p.name.isdigit()]) == 2  # a submitit job per point
    jobs = collect(sweep)
    assert sorted(job.seed for job in jobs) == [1, 2]
    assert all(job.n_examples == dict.fromkeys(LANGUAGES, ODD_TEST_SIZE) for job in jobs)
    report = subprocess.run(
        [sys.executable, "-m", "xrobust.report.cli", str(sweep), "--n-boot", "50"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env(),
    )
    assert report.returncode == 0, report.stderr[-3000:]
    assert (sweep / "report" / "results.md").is_file() and (sweep / "report" / "size_diff.md").is_file()
