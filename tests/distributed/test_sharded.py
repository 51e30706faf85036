"""Sharded and multi-rank training for real, 2 ranks on CPU (gloo), each against a 1-process run: FSDP2 on an
odd-size test set, the noise methods inside the sharded model, the encoder hand-off from a sharded stage. (A 2-rank
DDP run killed and resumed: tests/run/test_fault_injection.py.) A tiny random XLM-R keeps every run to seconds."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import ROOT
from helpers.small_runs import LANGUAGES, ODD_TEST_SIZE, env, overrides, small_sample, varied_tiny_checkpoint

from xrobust.report.collect import collect

CPU_RANKS = ["trainer.accelerator=cpu", "trainer.devices=2", "trainer.precision=32-true"]
FSDP2 = ["trainer=fsdp2", *CPU_RANKS]
DDP = ["trainer=ddp", *CPU_RANKS]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return varied_tiny_checkpoint(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="module")
def small_data(tmp_path_factory) -> Path:
    return small_sample(tmp_path_factory.mktemp("small-sample"))


def job(pretrained: Path, data: Path, run_dir: Path, *extra: str) -> list[str]:
    return [*overrides(pretrained, data, *extra), f"hydra.run.dir={run_dir}"]


def start(args: list[str], log: Path) -> subprocess.Popen:
    """`python -m xrobust.train` in its own session, so the ranks Lightning launches can be killed together."""
    with open(log, "w") as handle:
        return subprocess.Popen(
            [sys.executable, "-m", "xrobust.train", *args],
            cwd=ROOT,
            stdout=handle,
            stderr=subprocess.STDOUT,
            env=env(),
            start_new_session=True,
        )


def train(args: list[str], log: Path) -> dict:
    proc = start(args, log)
    assert proc.wait(timeout=600) == 0, log.read_text()[-3000:]
    run_dir = Path(next(a.split("=", 1)[1] for a in args if a.startswith("hydra.run.dir=")))
    return json.loads((run_dir / "results.json").read_text())


def predictions(run_dir: Path) -> list[str]:
    return (run_dir / "predictions.tsv").read_text().splitlines()


def test_fsdp2_stage_with_adv_hands_on_a_full_encoder_and_tests_each_item_once(tiny, small_data, tmp_path):
    """Two FSDP2 ranks: an intermediate stage trained with noise=adv (the ascent on input embeddings inside the
    sharded model) exports its encoder; the target stage tests it, untrained, on 7 items per language. A 1-process
    run of the target stage from that encoder gets the same predictions, item for item."""
    sharded_dir, single_dir = tmp_path / "fsdp2", tmp_path / "single"
    stage = ["intermediate=xnli", f"intermediate.data.local_dir={small_data}", "noise@intermediate.noise=adv"]
    stage += ["+intermediate.trainer.max_steps=4", "+intermediate.trainer.val_check_interval=2"]
    stage += ["checkpoint.keep_after_success=all"]  # the stage's checkpoints are read back below
    sharded = train(job(tiny, small_data, sharded_dir, *FSDP2, *stage, "trainer.max_steps=0"), tmp_path / "a.log")

    encoder = sharded_dir / "stages" / "xnli" / "encoder"
    adv_stage = sharded["stages"][0]
    assert adv_stage["noise"]["name"] == "adv" and adv_stage["steps_run"] == 4
    # Versioned best checkpoints, the previous one removed once the next is written; last.ckpt is its own copy of
    # the last state (not a link to the best), so a resume continues from where training stopped.
    checkpoints = sharded_dir / "stages" / "xnli" / "checkpoints"
    best = [p for p in checkpoints.iterdir() if p.name.startswith("best-step")]
    last = checkpoints / "last.ckpt"
    assert len(best) == 1 and last.exists() and not last.is_symlink()
    assert sorted(p.name for p in best[0].iterdir()) == [".metadata", "__0_0.distcp", "__1_0.distcp", "meta.pt"]

    # The export holds the selected weights whole: equal to the two shards of its best checkpoint put together.
    from torch.distributed.checkpoint.format_utils import dcp_to_torch_save

    from xrobust.models.loading import load_classifier

    dcp_to_torch_save(best[0], tmp_path / "best.pt")
    selected = torch.load(tmp_path / "best.pt", weights_only=True)["state_dict"]
    reloaded = load_classifier(encoder, 3, task_kind="pair").state_dict()
    encoder_keys = [k for k in reloaded if k.startswith("roberta.")]
    assert len(encoder_keys) == len([k for k in selected if k.startswith("model.roberta.")]) > 20
    assert max((reloaded[k] - selected[f"model.{k}"]).abs().max().item() for k in encoder_keys) == 0.0

    single_process = ["trainer.max_steps=0", "trainer.precision=32-true"]  # the ranks' precision (CPU_RANKS)
    single = train(job(encoder, small_data, single_dir, *single_process), tmp_path / "b.log")
    assert sharded["n_examples"] == single["n_examples"] == dict.fromkeys(LANGUAGES, ODD_TEST_SIZE)
    assert sharded["accuracy"] == single["accuracy"]
    rows = predictions(sharded_dir)
    assert rows == predictions(single_dir) and len(rows) == 1 + len(LANGUAGES) * ODD_TEST_SIZE
    assert len({row.split("\t")[3] for row in rows[1:]}) > 1  # the predictions vary, so agreeing means something
    assert sharded["model"]["num_parameters"] == single["model"]["num_parameters"]
    assert [p.name for p in sharded_dir.rglob("results.json")] == ["results.json"]
    assert collect(sharded_dir)[0].predictions()  # the report accepts the job: predictions match results.json


def test_fsdp2_trains_with_random_perturbation(tiny, small_data, tmp_path):
    run_dir = tmp_path / "run"
    results = train(job(tiny, small_data, run_dir, *FSDP2, "noise=rs_rp", "trainer.max_steps=3"), tmp_path / "log")
    assert results["noise"]["name"] == "rs_rp" and results["model_selection"]["steps_run"] == 3
    assert results["n_examples"] == dict.fromkeys(LANGUAGES, ODD_TEST_SIZE)
