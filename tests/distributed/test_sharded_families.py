"""FSDP2 on 2 gloo ranks for every model family (tiny checkpoints of each Hub model type): an intermediate stage
trains, saves and exports its encoder, the target stage trains with embedding noise and saves, then a second run
resumes it. mT5 shares one embedding Parameter between `shared` and `encoder.embed_tokens`, which must be one FSDP
group; every family builds its model on the meta device on rank 1 and gets rank 0's weights once sharded."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from helpers.small_runs import small_sample
from helpers.tiny_models import MODEL_TYPES, tiny_checkpoint
from test_sharded import FSDP2, job, train

from xrobust.models.loading import load_classifier

# What a family's own model config sets beyond the defaults (conf/model/mdeberta-v3-base.yaml).
FAMILY_OVERRIDES = {"deberta-v2": ["model.attn_implementation=eager"]}
HEADS = ("classifier.", "pooler.")


@pytest.fixture(scope="module")
def small_data(tmp_path_factory) -> Path:
    return small_sample(tmp_path_factory.mktemp("small-sample"))


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_fsdp2_trains_saves_resumes_and_exports_each_family(model_type, small_data, tmp_path):
    pretrained = tiny_checkpoint(tmp_path / "tiny", model_type)
    run_dir = tmp_path / "run"
    stage = ["intermediate=xnli", f"intermediate.data.local_dir={small_data}"]
    stage += ["+intermediate.trainer.max_steps=2", "+intermediate.trainer.val_check_interval=2"]
    schedule = ["noise=rs_rp", "trainer.val_check_interval=2", "checkpoint.keep_after_success=all"]
    args = [*FSDP2, *FAMILY_OVERRIDES.get(model_type, []), *stage, *schedule]

    first = train(job(pretrained, small_data, run_dir, *args, "trainer.max_steps=2"), tmp_path / "first.log")
    log = (tmp_path / "first.log").read_text()
    assert "rank 1 builds the model on the meta device" in log and "rank 0 builds" not in log
    assert first["stages"][0]["steps_run"] == 2 and first["model_selection"]["steps_run"] == 2
    assert (run_dir / "checkpoints" / "last.ckpt" / ".metadata").is_file()

    # The exported encoder holds the stage's selected weights whole, ties included.
    stage_dir = run_dir / "stages" / "xnli"
    [best] = [p for p in (stage_dir / "checkpoints").iterdir() if p.name.startswith("best-step")]
    selected = full_state_dict(best, tmp_path / "best.pt")
    attn = "eager" if model_type == "deberta-v2" else "sdpa"
    reloaded = load_classifier(stage_dir / "encoder", 3, attn_implementation=attn, task_kind="pair").state_dict()
    body = [k for k in reloaded if not k.startswith(HEADS) and f"model.{k}" in selected]
    assert len(body) > 10
    assert all(torch.equal(reloaded[k], selected[f"model.{k}"]) for k in body)

    resumed = train(job(pretrained, small_data, run_dir, *args, "trainer.max_steps=4"), tmp_path / "resumed.log")
    log = (tmp_path / "resumed.log").read_text()
    assert "Restoring states from the checkpoint" in log and "reusing" in log
    assert resumed["model_selection"]["steps_run"] == 4
    assert resumed["n_examples"] == first["n_examples"]


def full_state_dict(folder: Path, scratch: Path) -> dict[str, torch.Tensor]:
    """The model weights of a sharded (distributed-checkpoint) folder, put together."""
    from torch.distributed.checkpoint.format_utils import dcp_to_torch_save

    dcp_to_torch_save(folder, scratch)
    return torch.load(scratch, weights_only=True)["state_dict"]
