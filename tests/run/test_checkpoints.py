"""Checkpoint integrity: files readable by the group, checkpoints read without running their code, torn and
half-swapped sharded folders set aside or put back, and no crash checkpoint that shadows last.ckpt."""

from __future__ import annotations

import os
import stat

import pytest
import torch
import torch.distributed.checkpoint as dcp
from lightning_fabric.utilities.load import _METADATA_FILENAME
from pytorch_lightning import Trainer
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.demos.boring_classes import BoringModel

from xrobust.errors import XrobustError
from xrobust.lightning.callbacks import CrashCheckpoint
from xrobust.lightning.checkpoint_io import is_torn, keep_after_success, set_aside_torn
from xrobust.lightning.sharded_checkpoint import old_path, staging_path, swap_in
from xrobust.run.results import write_json
from xrobust.status import main as status_main


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o002, 0o664)])
def test_results_get_the_mode_open_would_give(tmp_path, umask, mode):
    previous = os.umask(umask)
    try:
        write_json(tmp_path / "results.json", {"accuracy": {}})
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "results.json").stat().st_mode) == mode


class RunsCode:
    """Unpickling calls os.system: what a checkpoint planted in a shared sweep folder could do."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_a_malicious_checkpoint_runs_nothing(tmp_path, capsys):
    marker = tmp_path / "ran"
    sweep = tmp_path / "sweep"
    (sweep / "s1" / ".hydra").mkdir(parents=True)
    (sweep / "multirun.yaml").write_text(
        "hydra:\n  sweeper:\n    params: null\n  overrides:\n    hydra: []\n    task:\n    - seed=1\n"
    )
    (sweep / "s1" / ".hydra" / "overrides.yaml").write_text("- seed=1\n")
    checkpoints = sweep / "s1" / "checkpoints"
    checkpoints.mkdir()
    torch.save({"global_step": 7, "hyper_parameters": RunsCode(marker)}, checkpoints / "last.ckpt")

    assert status_main([str(sweep)]) == 1
    line = capsys.readouterr().out.splitlines()[0]
    assert line.startswith("resumable    s1  from a checkpoint that is not plain data: ") and "last.ckpt" in line
    with pytest.raises(XrobustError, match="last.ckpt: refused to read"):
        keep_after_success(checkpoints, str(checkpoints / "last.ckpt"), "best_weights")
    assert not marker.exists()


def sharded_folder(path, step: int) -> None:
    """A real distributed-checkpoint folder as FSDP2 writes it (shards and .metadata, then Lightning's meta.pt)."""
    dcp.save({"state_dict": {"w": torch.arange(1000.0) + step}}, checkpoint_id=path)
    torch.save({"global_step": step}, path / _METADATA_FILENAME)


def test_torn_sharded_folders_are_set_aside(tmp_path, caplog):
    folder = tmp_path / "checkpoints"
    for name in ("last.ckpt", "last-v1.ckpt", "best-step4.ckpt"):
        sharded_folder(folder / name, 4)
    assert not any(is_torn(folder / name) for name in ("last.ckpt", "last-v1.ckpt", "best-step4.ckpt"))
    (folder / "last.ckpt" / ".metadata").unlink()  # a save killed before its coordinator finished
    shard = next((folder / "last-v1.ckpt").glob("*.distcp"))
    shard.write_bytes(shard.read_bytes()[:100])  # an in-place rewrite killed: old .metadata, half a new shard
    assert set_aside_torn(tmp_path) == [folder / "last-v1.ckpt", folder / "last.ckpt"]
    assert sorted(p.name for p in folder.iterdir()) == ["best-step4.ckpt", "last-v1.ckpt.torn", "last.ckpt.torn"]
    assert "no whole checkpoint left in" in caplog.text and "this stage starts afresh" in caplog.text


def test_a_swap_cut_short_leaves_one_whole_checkpoint(tmp_path):
    folder = tmp_path / "checkpoints"
    last = folder / "last.ckpt"
    sharded_folder(last, 4)
    sharded_folder(staging_path(last), 6)
    swap_in(staging_path(last), last)
    assert torch.load(last / _METADATA_FILENAME)["global_step"] == 6
    assert [p.name for p in folder.iterdir()] == ["last.ckpt"]

    sharded_folder(staging_path(last), 8)  # killed between the two renames: the previous one renamed away
    last.rename(old_path(last))
    set_aside_torn(tmp_path)
    assert [p.name for p in folder.iterdir()] == ["last.ckpt"]
    assert torch.load(last / _METADATA_FILENAME)["global_step"] == 6


def test_a_crash_checkpoint_behind_last_is_set_aside(tmp_path):
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    torch.save({"global_step": 8}, folder / "last.ckpt")
    torch.save({"global_step": 0}, folder / "on_exception.ckpt")  # newer, as Lightning would pick it
    set_aside_torn(tmp_path)
    assert sorted(p.name for p in folder.iterdir()) == ["last.ckpt", "on_exception.ckpt.stale"]
    torch.save({"global_step": 10}, folder / "on_exception.ckpt")  # ahead of last.ckpt: the resume point
    set_aside_torn(tmp_path)
    assert (folder / "on_exception.ckpt").is_file()


class FailsToResume(BoringModel):
    """Raises in configure_optimizers, as a bad trainer value does: after the weights are restored, before the
    optimizer and the loops are."""

    def configure_optimizers(self):
        raise ValueError("bad value")


class FailsMidTraining(BoringModel):
    def training_step(self, batch, batch_idx):
        if self.global_step == 6:
            raise RuntimeError("crash")
        return super().training_step(batch, batch_idx)


def fit(model, folder, max_steps: int) -> None:
    trainer = Trainer(
        max_steps=max_steps,
        callbacks=[ModelCheckpoint(dirpath=folder, save_last=True), CrashCheckpoint(dirpath=folder)],
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
    )
    trainer.fit(model, ckpt_path="last")


def test_no_crash_checkpoint_before_a_training_step(tmp_path):
    folder = tmp_path / "checkpoints"
    fit(BoringModel(), folder, 4)
    with pytest.raises(ValueError, match="bad value"):
        fit(FailsToResume(), folder, 8)
    assert not (folder / "on_exception.ckpt").exists()
    with pytest.raises(RuntimeError, match="crash"):
        fit(FailsMidTraining(), folder, 8)  # resumes at step 4 from last.ckpt, crashes at step 6
    assert torch.load(folder / "on_exception.ckpt", weights_only=True)["global_step"] == 6
