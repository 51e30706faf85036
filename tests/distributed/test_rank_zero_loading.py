"""Start-up memory: under FSDP2 a rank other than 0 builds its model on the meta device (its input embeddings
alone loaded), tied parameters land in one FSDP group, and checkpoints are read memory-mapped. The 2-rank runs
that use all of this are in test_sharded.py and test_sharded_families.py."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from helpers import compose_config
from helpers.tiny_models import MODEL_TYPES, tiny_checkpoint
from lightning_fabric.utilities.rank_zero import rank_zero_only

from xrobust.lightning.checkpoint_io import AtomicCheckpointIO
from xrobust.lightning.rank_zero_loading import builds_on_meta
from xrobust.lightning.sharding import tied_group
from xrobust.models.loading import load_classifier
from xrobust.models.meta_classifier import load_meta_classifier
from xrobust.models.parameter_counts import count_non_embedding_parameters, count_parameters
from xrobust.plan import plan_from_config
from xrobust.plan.output import format_plan

FSDP2 = "xrobust.lightning.sharding.FSDP2Strategy"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict[str, Path]:
    return {t: tiny_checkpoint(tmp_path_factory.mktemp(t), t) for t in MODEL_TYPES}


def attn(model_type: str) -> str:
    return "eager" if model_type == "deberta-v2" else "sdpa"  # DeBERTa-v2 has no SDPA kernel


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_the_meta_classifier_is_the_loaded_one_without_weights_but_its_input_embeddings(model_type, tiny):
    loaded = load_classifier(tiny[model_type], 3, attn_implementation=attn(model_type), task_kind="pair")
    meta = load_meta_classifier(tiny[model_type], 3, attn_implementation=attn(model_type), task_kind="pair")
    shapes = {k: (v.shape, v.dtype) for k, v in loaded.state_dict().items()}
    assert {k: (v.shape, v.dtype) for k, v in meta.state_dict().items()} == shapes
    assert count_parameters(meta) == count_parameters(loaded)
    assert count_non_embedding_parameters(meta) == count_non_embedding_parameters(loaded)
    embeddings = meta.get_input_embeddings().weight
    assert torch.equal(embeddings, loaded.get_input_embeddings().weight)
    assert all(p.is_meta for p in meta.parameters() if p is not embeddings)
    holders = [m for m in meta.modules() if any(p is embeddings for p in m.parameters(recurse=False))]
    assert len(holders) == (2 if model_type == "mt5" else 1)  # mT5's shared and encoder.embed_tokens stay tied


def test_lora_keeps_the_loaded_input_embeddings_frozen(tiny):
    meta = load_meta_classifier(tiny["xlm-roberta"], 3, finetune={"method": "lora"}, task_kind="pair")
    loaded = load_classifier(tiny["xlm-roberta"], 3, finetune={"method": "lora"}, task_kind="pair")
    assert not meta.get_input_embeddings().weight.requires_grad
    assert count_parameters(meta) == count_parameters(loaded)


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_a_tied_embedding_is_sharded_with_every_module_holding_it(model_type, tiny):
    with torch.device("meta"):
        model = load_classifier(
            tiny[model_type], 3, attn_implementation=attn(model_type), weights=False, task_kind="pair"
        )
    embeddings = model.get_input_embeddings()
    group = tied_group(model, embeddings)
    if model_type == "mt5":
        assert group == [embeddings, model.encoder.encoder.embed_tokens]
    else:
        assert group == [embeddings]


def test_only_ranks_other_than_zero_of_a_sharding_strategy_build_on_meta(monkeypatch):
    monkeypatch.setattr(rank_zero_only, "rank", 1)  # what Lightning reads from RANK / LOCAL_RANK / SLURM_PROCID
    assert builds_on_meta(FSDP2)
    assert not builds_on_meta("pytorch_lightning.strategies.DDPStrategy")  # DDP wraps a model it needs whole
    assert not builds_on_meta(None)  # a strategy named by string ("auto", "ddp")
    monkeypatch.setattr(rank_zero_only, "rank", 0)
    assert not builds_on_meta(FSDP2)


def test_checkpoints_are_read_memory_mapped(tmp_path):
    """Resumes and test(ckpt_path=...) page the file in rather than each rank reading a private copy."""
    path = tmp_path / "last.ckpt"
    io = AtomicCheckpointIO()
    io.save_checkpoint({"state_dict": {"w": torch.arange(4096.0)}}, path)
    state = io.load_checkpoint(path, weights_only=True)
    assert torch.equal(state["state_dict"]["w"], torch.arange(4096.0))
    assert str(path) in Path("/proc/self/maps").read_text()


def test_the_planner_counts_one_model_per_node_at_an_fsdp2_start_up():
    """xlmr-xxl on 8 GPUs: FSDP2 holds the model once plus 7 input-embedding matrices, FSDP1 the model 8 times."""
    job = ["model=xlmr-xxl", "trainer.devices=8", "data.batch_size=4"]
    fsdp2 = plan_from_config(compose_config([*job, "trainer=fsdp2"]))
    fsdp1 = plan_from_config(compose_config([*job, "trainer=fsdp"]))
    total, embeddings = fsdp2.inv.total, fsdp2.inv.embeddings
    assert fsdp2.host_gib_per_node == pytest.approx(4 * (total + 7 * embeddings) / 2**30)
    assert fsdp1.host_gib_per_node == pytest.approx(8 * 4 * total / 2**30)
    assert "rank 0 builds the full fp32 model, the other ranks its input embeddings only" in format_plan(fsdp2)
    assert "every rank builds the full fp32 model" in format_plan(fsdp1)
