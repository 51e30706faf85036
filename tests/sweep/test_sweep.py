"""The size grid end to end: a real Hydra multirun through the CLI, the report on its folder, then a re-run
that must skip every finished job."""

from __future__ import annotations

import csv
import time

import pytest
from helpers import FAST, ROOT, compose_config, run_cli
from omegaconf import OmegaConf

from xrobust.report.cli import main as report_main

MODELS = ["me5-small", "me5-small-6l"]
NOISES = ["none", "rs_rp"] if (ROOT / "conf" / "noise" / "rs_rp.yaml").is_file() else ["none", "adv"]
LANGS = ["en", "de", "fr", "es", "ru", "zh", "ar"]
# A handful of steps and short pairs: the point is the plumbing, not the accuracy.
SWEEP_ARGS = [
    "-m",
    "experiment=size_grid_cpu",
    f"model={','.join(MODELS)}",
    f"noise={','.join(NOISES)}",
    *FAST,
    "trainer.max_steps=3",
    "data.max_length=32",
    # The first 32 test items of each language (2 batches of 16): enough to pair, half the test time.
    "data.eval_batch_size=16",
    "trainer.limit_test_batches=2",
]
TEST_ITEMS = 32
JOB_DIRS = sorted(f"{model}_{noise}_sample_s1" for model in MODELS for noise in NOISES)


def test_size_grid_cpu_config_sweeps_two_sizes_and_every_noise():
    cfg = compose_config(["experiment=size_grid_cpu"])
    params = cfg.hydra.sweeper.params
    assert params.model == "me5-small,me5-small-6l"
    # Every training regime of conf/noise/, found there rather than listed.
    assert params.noise == "glob(*)"
    assert sorted(p.stem for p in (ROOT / "conf" / "noise").glob("*.yaml")) == sorted(
        ["none", "rs_rp", "rs_da", "code_switch", "adv"]
    )
    assert (params.task, str(params.seed)) == ("sample", "1")
    # Every job of the sweep joins one W&B group named by the sweep folder; the run name says the job.
    assert cfg.hydra.job.env_set.WANDB_RUN_GROUP == cfg.hydra.sweep.dir
    assert cfg.trainer.max_epochs == 2 and cfg.data.max_length == 64
    # ... through the environment, so the csv and none loggers get no W&B-only keys.
    for choice in ["csv", "none"]:
        assert "group" not in (compose_config(["experiment=size_grid_cpu", f"logger={choice}"]).logger or {})


def test_the_real_size_grid_has_real_defaults():
    """experiment=size_grid is the 1B-vs-10B grid on GPUs: whole epochs at 128 pieces until dev-en stops improving,
    never the CPU budget of size_grid_cpu."""
    cfg = compose_config(["experiment=size_grid"])
    params = cfg.hydra.sweeper.params
    assert params.model == "xlmr-xl,xlmr-xxl" and params.noise == "glob(*)"
    # each size at 0.5, 1 and 2 x its own lr, in folders of their own, for xrobust-report --select-on dev-en
    assert params["optim.lr_scale"] == "0.5,1,2"
    assert "${optim.lr_scale}" in OmegaConf.to_container(cfg.hydra.sweep)["subdir"]
    assert cfg.trainer.limit_train_batches is None, "the real grid must train on every batch"
    assert cfg.data.max_length == 128 and cfg.trainer.accelerator == "gpu" and cfg.trainer.precision == "bf16-mixed"
    stopping = cfg.callbacks.early_stopping
    assert (stopping.monitor, stopping.mode) == ("val/acc", "max") and cfg.trainer.max_epochs >= 2
    assert "model_checkpoint" in cfg.callbacks, "early stopping comes beside the default callbacks"
    assert cfg.hydra.job.env_set.WANDB_RUN_GROUP == cfg.hydra.sweep.dir


@pytest.fixture(scope="module")
def multirun(me5_dir, tmp_path_factory):
    sweep_dir = tmp_path_factory.mktemp("multirun") / "sweep"
    started = time.perf_counter()
    proc = run_cli([*SWEEP_ARGS, f"hydra.sweep.dir={sweep_dir}"], cwd=ROOT, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    print(f"multirun of {len(JOB_DIRS)} jobs: {time.perf_counter() - started:.0f} s")
    return sweep_dir


def test_multirun_writes_one_job_folder_per_combination(multirun):
    found = sorted(path.parent.name for path in multirun.glob("*/results.json"))
    assert found == JOB_DIRS
    assert all((multirun / name / "predictions.tsv").is_file() for name in JOB_DIRS)


def test_report_on_the_multirun(multirun, tmp_path, capsys):
    out = tmp_path / "report"
    report_main([str(multirun), "--out", str(out), "--n-boot", "200"])
    stdout = capsys.readouterr().out
    for name in ["results_tidy.csv", "results.md", "size_diff.csv", "size_diff.md", "heatmap.png", "size_diff.png"]:
        assert (out / name).is_file(), name

    with open(out / "results_tidy.csv", newline="") as handle:
        tidy = list(csv.DictReader(handle))
    assert len(tidy) == len(JOB_DIRS) * len(LANGS)
    assert {row["job_dir"] for row in tidy} == set(JOB_DIRS)
    assert {row["lang"] for row in tidy} == set(LANGS)
    assert {row["n"] for row in tidy} == {str(TEST_ITEMS)}

    md = (out / "results.md").read_text()
    assert md in stdout
    table = [line for line in md.splitlines() if line.startswith("|")]
    header = [cell.strip() for cell in table[0].strip("|").split("|")]
    assert header == ["model", "params", "noise", "seeds", *LANGS, "target mean", "all-language mean", "transfer gap"]
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in table[2:]]
    # me5-small (12 layers) has more parameters than me5-small-6l, so it comes first.
    assert [row[0] + "/" + row[2] for row in rows[:-1]] == [f"{m}/{n}" for m in MODELS for n in NOISES]
    assert rows[-1][0] == "majority class"

    with open(out / "size_diff.csv", newline="") as handle:
        diff = list(csv.DictReader(handle))
    assert {(row["larger"], row["smaller"]) for row in diff} == {("me5-small", "me5-small-6l")}
    kinds = sorted({(row["kind"], row["noise"]) for row in diff})
    assert kinds == sorted([("size", NOISES[0]), ("size", NOISES[1]), ("noise_change", NOISES[1])])
    assert len(diff) == 3 * (len(LANGS) + 2)  # each language, the target mean and the all-language mean
    assert all(float(r["ci_low"]) <= float(r["diff"]) <= float(r["ci_high"]) for r in diff)
    assert "me5-small (118M) minus me5-small-6l" in (out / "size_diff.md").read_text()


def test_rerunning_the_multirun_skips_every_finished_job(multirun):
    files = [multirun / name / kind for name in JOB_DIRS for kind in ("results.json", "predictions.tsv")]
    before = {path: path.stat().st_mtime_ns for path in files}
    proc = run_cli([*SWEEP_ARGS, f"hydra.sweep.dir={multirun}"], cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = proc.stdout + proc.stderr
    assert log.count("skipping:") == len(JOB_DIRS), log[-3000:]
    assert {path: path.stat().st_mtime_ns for path in files} == before
