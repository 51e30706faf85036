"""SLURM launching without SLURM: the `slurm` launcher config for every size's recommended setup, and a real sweep
through hydra-submitit-launcher's local executor (the same launcher code, jobs as local processes)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import psutil
import pytest
from helpers import ROOT, compose_config
from helpers.small_runs import LANGUAGES, ODD_TEST_SIZE, env, overrides, small_sample, varied_tiny_checkpoint
from omegaconf import OmegaConf

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
    assert (strategy == "xrobust.lightning.sharding.FSDP2Strategy") == (trainer.devices > 1)  # sharded sizes: FSDP2


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


def test_a_requeue_signal_through_submitit_local_requeues_and_resumes_the_job(tmp_path):
    """submitit's time-limit signal (USR2) sent by the test to the job's task: last.ckpt is saved, submitit's own
    handler pickles and requeues the job (exit 144, which its local controller restarts), and the restarted task
    resumes from last.ckpt to the results of an uninterrupted run."""
    sweep, tiny, data = tmp_path / "sweep", tmp_path / "tiny", tmp_path / "data"
    data.mkdir()
    # 6 epochs of 4 steps; the signal is sent after the first epoch's save, so 20 steps (seconds) remain for it to
    # land even when the test process is starved of CPU.
    schedule = ["trainer.max_epochs=6", "trainer.limit_train_batches=4", "callbacks.requeue.check_every_n_steps=1"]
    schedule.append("trainer.precision=32-true")  # compared with an uninterrupted run item for item
    args = overrides(varied_tiny_checkpoint(tiny), small_sample(data), *schedule)
    reference = subprocess.run(
        [sys.executable, "-m", "xrobust.train", *args, f"hydra.run.dir={tmp_path / 'reference'}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env=env(),
    )
    assert reference.returncode == 0, reference.stderr[-3000:]
    command = [sys.executable, "-m", "xrobust.train", "-m", "hydra/launcher=submitit_local"]
    proc = subprocess.Popen(
        [*command, f"hydra.sweep.dir={sweep}", "seed=1", *args],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env(),
    )
    deadline = time.monotonic() + 300
    while not list(sweep.glob("*/checkpoints/last.ckpt")):  # the first epoch's: training, the handler installed
        assert proc.poll() is None and time.monotonic() < deadline, "the job ended before its first epoch's save"
        time.sleep(0.1)
    tasks = [p for p in psutil.Process(proc.pid).children(recursive=True) if "submitit.core._submit" in p.cmdline()]
    assert len(tasks) == 1
    os.kill(tasks[0].pid, signal.SIGUSR2)
    _, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 0, stderr[-3000:]

    job_dir = next(sweep.glob("*/results.json")).parent
    task_log = "".join(p.read_text() for p in (sweep / ".submitit").rglob("*_log.*"))
    assert "requeue signal: saved" in task_log and "Requeued job" in task_log
    assert "Restoring states from the checkpoint" in task_log
    resumed = json.loads((job_dir / "results.json").read_text())
    expected = json.loads((tmp_path / "reference" / "results.json").read_text())
    assert resumed["model_selection"]["steps_run"] == expected["model_selection"]["steps_run"] == 24
    assert resumed["accuracy"] == expected["accuracy"]
    assert (job_dir / "predictions.tsv").read_text() == (tmp_path / "reference" / "predictions.tsv").read_text()
