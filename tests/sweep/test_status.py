"""An overnight sweep on a real multirun of three jobs: one fails on purpose (an invalid trainer value), one
finishes, one is killed (SIGKILL) mid-training. The failure does not stop the sweep, `xrobust-status` says where
each job stands, and its command completes the sweep: past a torn checkpoint, never with a traceback."""

from __future__ import annotations

import json
import shlex
import signal
import subprocess
import sys

import pytest
import torch
from helpers import ROOT
from helpers.small_runs import env, overrides, small_sample, varied_tiny_checkpoint, wait_for
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from xrobust.lightning.loggers import summary_metrics
from xrobust.status import main as status_main
from xrobust.status import report

SWEEP = ["hydra.sweep.subdir=e${trainer.max_epochs}", "trainer.max_epochs=-3,1,40"]
SHORT = ["trainer.limit_train_batches=2", "trainer.limit_val_batches=1"]


def status(sweep) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "xrobust.status", str(sweep)], capture_output=True, text=True, timeout=120, env=env()
    )


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """The sweep after the kill: e-3 failed, e1 finished, e40 killed after its first checkpoint."""
    base = tmp_path_factory.mktemp("sweep")
    (base / "data").mkdir()
    args = overrides(varied_tiny_checkpoint(base / "tiny"), small_sample(base / "data"), *SHORT)
    sweep = base / "multirun"
    with open(base / "first.log", "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "xrobust.train", "-m", f"hydra.sweep.dir={sweep}", *SWEEP, *args],
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env(),
        )
        wait_for(lambda: (sweep / "e40" / "checkpoints" / "last.ckpt").exists(), proc)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    return sweep


def test_a_failed_job_records_why_and_the_sweep_goes_on(sweep):
    record = json.loads((sweep / "e-3" / "failed.json").read_text())
    assert record["exit_status"] == 2 and record["step"] is None  # refused at start-up, one line
    assert "max_epochs" in record["error"] and "\n" not in record["error"]
    assert (sweep / "e1" / "results.json").is_file()  # the next job ran


def test_a_finished_job_keeps_only_the_selected_weights(sweep):
    files = list((sweep / "e1" / "checkpoints").iterdir())
    assert len(files) == 1 and files[0].name.startswith("best-step")
    kept = torch.load(files[0], map_location="cpu", weights_only=False)
    assert "state_dict" in kept and "optimizer_states" not in kept


def test_status_then_its_command_completes_the_sweep(sweep):
    before = status(sweep)
    assert before.returncode == 1, before.stderr
    lines = before.stdout.splitlines()
    assert lines[0].startswith("failed       e-3  exit 2: invalid config: trainer.max_epochs=-3 ")
    assert lines[1] == "finished     e1"
    assert lines[2].startswith("resumable    e40  from step ")
    assert lines[3] == "3 jobs: 1 finished, 1 resumable, 1 failed, 0 not started"
    command = shlex.split(lines[-1])
    assert (
        command[:4] == ["python", "-m", "xrobust.train", "-m"]
        and "hydra.sweep.subdir=e${trainer.max_epochs}" in command
    )

    last = sweep / "e40" / "checkpoints" / "last.ckpt"  # a torn file, as a kill mid-write by an older writer leaves
    torn = last.resolve().read_bytes()
    last.resolve().write_bytes(torn[: len(torn) // 2])
    rerun = subprocess.run(
        [sys.executable, *command[1:]],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=600,
        env=env(),
    )
    assert rerun.returncode == 1, rerun.stdout[-3000:]  # e-3 fails again: the multirun ends non-zero, counting it
    assert "xrobust: 1 of 3 jobs failed:" in rerun.stdout
    torn_lines = [line for line in rerun.stdout.splitlines() if "is incomplete (a write was cut short)" in line]
    assert len(torn_lines) == 1  # e40 starts clean with one line, no traceback (it runs last)
    assert "Traceback" not in rerun.stdout.split(torn_lines[0])[1]
    assert (sweep / "e40" / "results.json").is_file()

    after = status(sweep)
    assert after.returncode == 1
    assert "3 jobs: 2 finished, 0 resumable, 1 failed, 0 not started" in after.stdout


def test_status_refuses_a_folder_that_is_not_a_sweep(tmp_path):
    proc = status(tmp_path)
    assert proc.returncode == 2 and proc.stderr.startswith("xrobust-status: error: ") and "multirun.yaml" in proc.stderr


def test_a_wandb_summary_holds_the_headline_numbers_and_the_size(sweep):
    summary = summary_metrics(json.loads((sweep / "e1" / "results.json").read_text()))
    assert {"english_accuracy", "target_mean", "transfer_gap", "test/acc/de"} <= set(summary)
    assert summary["model/num_parameters"] > summary["model/non_embedding_parameters"] > 0


def hand_made_sweep(root):
    """A sweep of seed=1,2 as multirun.yaml records it: seed 1's results.json is cut short, seed 2 never ran."""
    root.mkdir(parents=True)
    hydra = {"sweeper": {"params": None}, "overrides": {"hydra": ["hydra.mode=MULTIRUN"], "task": ["seed=1,2"]}}
    OmegaConf.save({"hydra": hydra}, root / "multirun.yaml")
    (root / "s1" / ".hydra").mkdir(parents=True)
    OmegaConf.save(["seed=1"], root / "s1" / ".hydra" / "overrides.yaml")
    (root / "s1" / "results.json").write_text('{"task": "sample", "accur')
    return root


def test_a_corrupt_results_file_is_named_not_taken_for_a_job_not_started(tmp_path):
    text, done = report(hand_made_sweep(tmp_path / "sweep"))
    lines = text.splitlines()
    assert not done
    results = tmp_path / "sweep" / "s1" / "results.json"
    assert lines[0] == f"corrupt      s1  {results} is not a readable results file; the job runs again"
    assert lines[1] == "not started  seed=2"
    assert lines[2] == "2 jobs: 0 finished, 0 resumable, 0 failed, 1 corrupt, 1 not started"


def test_a_results_file_of_an_unknown_schema_version_stops_the_status_in_one_line(tmp_path, capsys):
    """A results.json from before schema_version is a finished job (version 1); one of a later version is named."""
    sweep = hand_made_sweep(tmp_path / "sweep")
    results = sweep / "s1" / "results.json"
    old = {"task": "sample", "model": {"name": "m", "num_parameters": 1}, "noise": {"name": "none"}, "seed": 1}
    old |= {"source_language": "en", "accuracy": {"en": 0.5}, "n_examples": {"en": 2}}
    results.write_text(json.dumps(old))
    assert report(sweep)[0].splitlines()[0] == "finished     s1"
    results.write_text(json.dumps({**old, "schema_version": 9, "contamination": False}))
    assert status_main([str(sweep)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"xrobust-status: error: {results}: schema_version 9 is not one")


@pytest.mark.parametrize("name", ["plain", "my sweep", "échantillon ü", 'it\'s "quoted" \\ back', "a,b=c"])
def test_the_completing_command_parses_in_the_shell_and_in_hydra(name, tmp_path):
    sweep = hand_made_sweep(tmp_path / name)
    command = shlex.split(report(sweep)[0].splitlines()[-1])
    assert command[:4] == ["python", "-m", "xrobust.train", "-m"]
    parsed = {o.key_or_group: o.value() for o in OverridesParser.create().parse_overrides(command[4:])}
    assert parsed["hydra.sweep.dir"] == str(sweep.resolve())
