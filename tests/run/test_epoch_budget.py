"""The epoch budget that makes sizes comparable (issue 17): training until dev-en stops improving, ties to the
later epoch, the last epoch tested beside the selected one."""

from __future__ import annotations

import json

import pytest
import torch
from helpers import FAST, compose_config

from xrobust.train import run

# -------------------------------------------------------------------- budget, ties, the last epoch


FLAT = [
    *FAST,
    "trainer.max_steps=-1",
    "model=me5-small-6l",
    "optim.freeze_embeddings=true",
    "optim.lr=1e-12",
    "callbacks=early_stopping",
    "callbacks.early_stopping.patience=0",
    "trainer.max_epochs=5",
    "trainer.limit_train_batches=2",
    "trainer.limit_test_batches=1",
    "data.eval_batch_size=16",
    "eval.test_last=true",
    "ckpt_path=null",
    "checkpoint.keep_after_success=all",  # keep last.ckpt beside the selection to look at
]


@pytest.fixture(scope="module")
def flat_run(me5_dir, tmp_path_factory):
    """5 epochs allowed at a learning rate too small to move dev-en accuracy: early stopping (patience 0) ends it
    after the first epoch without improvement, every validation ties, the last epoch is tested too."""
    out = tmp_path_factory.mktemp("flat")
    return out, run(compose_config(FLAT, output_dir=out))


def test_early_stopping_stops_before_the_epoch_cap(flat_run):
    out, results = flat_run
    selection = results["model_selection"]
    assert selection["early_stopped"] is True
    assert selection["epochs_run"] < 5 and selection["steps_run"] == 2 * selection["epochs_run"]
    assert json.loads((out / "results.json").read_text())["model_selection"] == selection


def test_a_stop_after_an_earlier_best_is_still_recorded(me5_dir, tmp_path):
    """Testing the selected checkpoint restores the callbacks' state as of its epoch: a selection made before the
    stop (here the earliest checkpoint, selected on the step counter) must not erase that training stopped early."""
    first = ["callbacks.model_checkpoint.monitor=step", "callbacks.model_checkpoint.mode=min", "eval.test_last=false"]
    results = run(compose_config([*FLAT, *first], output_dir=tmp_path))
    assert results["model_selection"]["early_stopped"] is True and results["model_selection"]["epochs_run"] < 5


def test_ties_go_to_the_later_checkpoint_and_last_ckpt_is_the_last_state(flat_run):
    out, results = flat_run
    checkpoints = out / "checkpoints"
    best = [p for p in checkpoints.iterdir() if p.name.startswith("best-step")]
    # Every epoch scored the same dev-en accuracy: the kept best is the last epoch's.
    assert [p.name for p in best] == [f"best-step{results['model_selection']['steps_run']}.ckpt"]
    last = checkpoints / "last.ckpt"
    assert not last.is_symlink()
    state = torch.load(last, map_location="cpu", weights_only=True)
    assert state["global_step"] == results["model_selection"]["steps_run"]


def test_the_last_epoch_is_tested_beside_the_selected_checkpoint(flat_run):
    _, results = flat_run
    assert set(results["last_epoch_accuracy"]) == set(results["accuracy"])
    # The learning rate moved nothing: the last epoch's weights score what the selected ones do.
    assert results["last_epoch_accuracy"] == results["accuracy"]
    assert results["last_epoch_target_mean"] == pytest.approx(results["target_mean"])


def test_without_the_budget_option_nothing_is_recorded_as_stopped(me5_dir):
    from xrobust.run.results import early_stopped

    cfg = compose_config([])
    assert "early_stopping" not in cfg.callbacks and cfg.eval.test_last is False

    class NoStopping:
        early_stopping_callback = None

    assert early_stopped(NoStopping()) is None
