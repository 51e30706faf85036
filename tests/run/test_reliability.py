"""Faults a long sweep meets: SIGKILL and SIGTERM mid-run, NaN losses, crashes while writing, leaked secrets."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from helpers import ROOT, compose_config
from helpers.small_runs import wait_for
from pytorch_lightning.strategies import SingleDeviceStrategy

from xrobust.atomic import atomic_write_text
from xrobust.lightning.callbacks import FiniteLossGuard, NonFiniteLoss
from xrobust.lightning.checkpoint_io import AtomicCheckpointIO, keep_after_success, set_aside_torn

SHORT = [
    "logger=none",
    "trainer.max_epochs=3",
    "trainer.limit_train_batches=4",
    "trainer.limit_val_batches=2",
    "data.batch_size=8",
    "data.max_length=48",
    "optim.freeze_embeddings=true",
]
SECRETS = {"WANDB_API_KEY": "wandb-secret-0123456789", "HF_TOKEN": "hf_secret_abcdefghij"}


def start(args: list[str], run_dir: Path, log: Path) -> subprocess.Popen:
    # Unbuffered, so the progress bar reaches the log while the run is still going.
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "PYTHONUNBUFFERED": "1", **SECRETS}
    with open(log, "w") as handle:
        return subprocess.Popen(
            [sys.executable, "-m", "xrobust.train", *args, f"hydra.run.dir={run_dir}"],
            cwd=ROOT,
            stdout=handle,
            stderr=subprocess.STDOUT,
            env=env,
        )


def finish(args: list[str], run_dir: Path, log: Path) -> subprocess.CompletedProcess:
    proc = start(args, run_dir, log)
    proc.wait(timeout=600)
    return subprocess.CompletedProcess(proc.args, proc.returncode, log.read_text(), "")


@pytest.mark.usefixtures("me5_dir")
def test_sigkill_then_same_command_resumes_to_the_same_metrics(tmp_path):
    reference = finish(SHORT, tmp_path / "reference", tmp_path / "reference.log")
    assert reference.returncode == 0, reference.stdout[-2000:]

    killed_dir = tmp_path / "killed"
    proc = start(SHORT, killed_dir, tmp_path / "killed.log")
    wait_for(lambda: (killed_dir / "checkpoints" / "last.ckpt").exists(), proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert not (killed_dir / "results.json").exists()

    # A re-run that fails after restoring the weights but before the optimizer (its parameter groups changed)
    # must leave no crash checkpoint (newer than last.ckpt, fresh AdamW) for the next run to resume from instead.
    failing = [arg for arg in SHORT if not arg.startswith("optim.freeze_embeddings=")]
    failed = finish([*failing, "optim.freeze_embeddings=false"], killed_dir, tmp_path / "failing.log")
    assert failed.returncode != 0 and "no crash checkpoint written" in failed.stdout
    assert not (killed_dir / "checkpoints" / "on_exception.ckpt").exists()

    resumed = finish(SHORT, killed_dir, tmp_path / "resumed.log")
    assert resumed.returncode == 0, resumed.stdout[-2000:]
    assert "Restoring states from the checkpoint" in resumed.stdout
    expected = json.loads((tmp_path / "reference" / "results.json").read_text())
    actual = json.loads((killed_dir / "results.json").read_text())
    assert actual["accuracy"] == expected["accuracy"]
    assert actual["model_selection"] == expected["model_selection"]
    assert (killed_dir / "predictions.tsv").read_text() == (tmp_path / "reference" / "predictions.tsv").read_text()

    for path in killed_dir.rglob("*"):
        if path.is_file() and path.suffix in (".json", ".yaml", ".tsv", ".log", ".txt"):
            text = path.read_text(errors="replace")
            assert not any(secret in text for secret in SECRETS.values()), path


@pytest.mark.usefixtures("me5_dir")
def test_sigterm_saves_a_checkpoint_then_resumes(tmp_path):
    run_dir, log = tmp_path / "run", tmp_path / "run.log"
    args = [*SHORT, "trainer.limit_train_batches=200", "trainer.enable_model_summary=true"]
    proc = start(args, run_dir, log)
    # The model summary is printed once fit has started (and Lightning's SIGTERM handler is installed); a few
    # seconds later training steps were taken (a crash checkpoint is written only after a step; ~4 steps a second).
    wait_for(lambda: "Total FLOPs" in log.read_text(errors="replace"), proc)
    time.sleep(4)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=300) == 143
    assert "stopped by SIGTERM; checkpoint saved" in log.read_text()
    saved = run_dir / "checkpoints" / "on_exception.ckpt"
    assert saved.is_file()
    step = torch.load(saved, map_location="cpu", weights_only=False)["global_step"]

    resumed = finish([*args, "trainer.limit_train_batches=4"], run_dir, tmp_path / "resumed.log")
    assert resumed.returncode == 0, resumed.stdout[-2000:]
    assert "Restoring states from the checkpoint" in resumed.stdout and step >= 1
    assert (run_dir / "results.json").is_file()


@pytest.mark.usefixtures("me5_dir")
def test_exploding_loss_stops_with_the_step_and_cause(tmp_path):
    run_dir = tmp_path / "run"
    proc = finish(
        [*SHORT, "optim.lr=1e12", "optim.warmup_ratio=0", "trainer.gradient_clip_val=null"],
        run_dir,
        tmp_path / "run.log",
    )
    assert proc.returncode == 2
    errors = [line for line in proc.stdout.splitlines() if line.startswith("xrobust: error:")]
    assert len(errors) == 1
    assert "training loss became" in errors[0] and "at step" in errors[0] and "lr=" in errors[0]
    assert not (run_dir / "checkpoints" / "on_exception.ckpt").exists()
    assert not (run_dir / "results.json").exists()


def test_guard_refuses_nan_and_inf_only():
    class FakeTrainer:
        optimizers = []
        global_step = 7
        current_epoch = 1
        strategy = SingleDeviceStrategy(torch.device("cpu"))

    guard = FiniteLossGuard()
    guard.on_before_backward(FakeTrainer(), object(), torch.tensor(0.5))
    for bad in (float("nan"), float("inf")):
        with pytest.raises(NonFiniteLoss, match="at step 7 \\(epoch 1\\)"):
            guard.on_before_backward(FakeTrainer(), object(), torch.tensor(bad))


def test_atomic_write_keeps_the_old_file_when_the_write_fails(tmp_path, monkeypatch):
    target = tmp_path / "results.json"
    atomic_write_text(target, '{"old": true}\n')

    def crash(*_):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_text(target, '{"new": true}\n')
    assert target.read_text() == '{"old": true}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]


def test_overlong_inputs_are_truncated_and_counted(me5_dir, tmp_path):
    from hydra.utils import instantiate

    from xrobust.data.task import TaskSpec

    cfg = compose_config(["data.max_length=12"], output_dir=tmp_path)
    datamodule = instantiate(cfg.data, _partial_=True)(task=TaskSpec.from_config(cfg.task), tokenizer_path=me5_dir)
    datamodule.setup()
    counts = datamodule.truncation_counts()
    assert counts["test-en"] > 0 and counts["dev-en"] > 0
    assert all(len(ids) <= 12 for ids in datamodule.test_sets["de"]["input_ids"])


class Unpicklable:
    """Raises halfway through a torch.save, after the tensors before it were written: a write cut short."""

    def __reduce__(self):
        raise OSError("killed mid-write")


def test_a_checkpoint_write_cut_short_leaves_the_previous_file_whole(tmp_path):
    target = tmp_path / "last.ckpt"
    io = AtomicCheckpointIO()
    io.save_checkpoint({"global_step": 1, "w": torch.ones(1000)}, target)
    with pytest.raises(OSError, match="killed mid-write"):
        io.save_checkpoint({"global_step": 2, "w": torch.zeros(1000), "bad": Unpicklable()}, target)
    assert io.load_checkpoint(target)["global_step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]


def test_torn_and_dangling_checkpoints_are_set_aside(tmp_path):
    folder = tmp_path / "checkpoints"
    AtomicCheckpointIO().save_checkpoint({"global_step": 3}, folder / "best-step3.ckpt")
    whole = (folder / "best-step3.ckpt").read_bytes()
    (folder / "last.ckpt").write_bytes(whole[: len(whole) // 2])
    (folder / "last-v1.ckpt").symlink_to(folder / "gone.ckpt")
    (folder / ".best-step4.ckpt.abc.tmp").write_bytes(b"partial")
    assert set_aside_torn(tmp_path) == [folder / "last-v1.ckpt", folder / "last.ckpt"]
    assert sorted(p.name for p in folder.iterdir()) == ["best-step3.ckpt", "last.ckpt.torn"]


@pytest.mark.parametrize(("keep", "left"), [("all", 3), ("best_weights", 1), ("none", 0)])
def test_keep_after_success(tmp_path, keep, left):
    folder = tmp_path / "checkpoints"
    full = {"state_dict": {"w": torch.ones(3)}, "global_step": 5, "optimizer_states": [{"exp_avg": torch.ones(3)}]}
    folder.mkdir()
    for name in ("best-step5.ckpt", "on_exception.ckpt"):
        torch.save(full, folder / name)
    (folder / "last.ckpt").symlink_to(folder / "best-step5.ckpt")
    keep_after_success(folder, str(folder / "best-step5.ckpt"), keep)
    assert (len(list(folder.iterdir())) if folder.is_dir() else 0) == left
    if keep == "best_weights":
        kept = torch.load(folder / "best-step5.ckpt", weights_only=False)
        assert set(kept) == {"state_dict", "global_step"} and torch.equal(kept["state_dict"]["w"], torch.ones(3))
