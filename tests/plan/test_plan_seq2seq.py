"""The planner's text-to-text head (model.head=seq2seq): the whole encoder-decoder counted as training loads it
(a tiny mT5 checkpoint with its own LM head, as every mT5/mT0 ships one), its decoder's FLOPs against a measured
forward, and more memory and FLOPs than the encoder-only head by the decoder and LM head it adds."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from helpers import CONF_DIR
from helpers.tiny_models import tiny_checkpoint
from hydra import compose, initialize_config_dir
from torch.utils.flop_counter import FlopCounterMode
from transformers import AutoTokenizer

from xrobust.models.loading import load_classifier
from xrobust.plan import inventory, make_plan, seq2seq_parameters, setup_from_config
from xrobust.plan.cost import job_cost
from xrobust.plan.data import data_stats
from xrobust.plan.gpus import gpu_of
from xrobust.plan.seq2seq import parameter_tokens
from xrobust.plan.seq2seq_tokens import decoder_shape
from xrobust.plan.setup import GIB

HEADS = ("classifier", "seq2seq")
# The literal text of XNLI's mT5 template, its fields left out.
CONTEXT_WORDS = "xnli: premise:  hypothesis: "


@pytest.fixture(scope="module")
def tiny_mt5(tmp_path_factory):
    return tiny_checkpoint(tmp_path_factory.mktemp("tiny-mt5"), "mt5")


def plan_config(overrides: list[str]):
    """conf/plan.yaml composed as `xrobust-plan` composes it: the training config plus plan.* (data figures)."""
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose("plan", overrides=overrides)


def tiny_config(folder, *extra: str):
    overrides = ["model=mt0-large", f"model.pretrained={folder}", "model.architecture=null", "task=xnli", *extra]
    return plan_config([*overrides, "trainer=cpu", "trainer.precision=32-true", "data.batch_size=4"])


def both_heads(*overrides: str):
    """(encoder-only, text-to-text) setups of the same job."""
    return tuple(setup_from_config(plan_config([*overrides, f"model.head={head}"])) for head in HEADS)


def test_the_count_is_the_loaded_rank_classifier_and_adds_decoder_and_lm_head(tiny_mt5):
    """Every parameter training loads (the LM head apart from the input embeddings, as loading keeps it), the
    trainable ones with the input embeddings frozen; the encoder-only head's count plus the decoder and the LM head
    less the classification head."""
    classifier, seq2seq = (inventory(setup_from_config(tiny_config(tiny_mt5, f"model.head={h}"))) for h in HEADS)
    model = load_classifier(tiny_mt5, 3, head="seq2seq", task_kind="pair")
    lm = model.base_model
    assert lm.lm_head.weight is not lm.shared.weight
    model.get_input_embeddings().weight.requires_grad_(False)  # optim.freeze_embeddings, as TransferModule does
    assert seq2seq.total == sum(p.numel() for p in model.parameters())
    assert seq2seq.trainable == sum(p.numel() for p in model.parameters() if p.requires_grad)
    encoder_head = load_classifier(tiny_mt5, 3, task_kind="pair")
    decoder = sum(p.numel() for name, p in lm.decoder.named_parameters() if "embed_tokens" not in name)
    head = sum(p.numel() for p in encoder_head.classifier.parameters())
    assert seq2seq.total == classifier.total - head + decoder + lm.lm_head.weight.numel()
    assert (seq2seq.decoder_layers, seq2seq.layers) == (2, 2) and seq2seq.encoder_only_of is None
    assert seq2seq.output_projection == lm.lm_head.weight.numel()
    assert (
        seq2seq.cross_kv_params
        == sum(p.numel() for p in lm.decoder.block[0].layer[1].EncDecAttention.k.parameters()) * 2
    )


def test_the_shipped_mt0_architecture_counts_the_published_checkpoint():
    """mt0-xxl's config.json: 12.9B with the untied LM head (published "13B"), against 5.66B encoder-only."""
    classifier, seq2seq = (inventory(s) for s in both_heads("model=mt0-xxl", "task=xnli"))
    assert seq2seq.total == seq2seq_parameters("xrobust/models/architectures/mt0-xxl.json") == 12_921_057_280
    assert classifier.total == 5_655_185_411 and seq2seq.decoder_layers == 24


def test_planned_matmul_flops_match_a_measured_forward(tiny_mt5):
    """2 x the planned parameter-tokens of a batch (encoder over the input, decoder and LM head over every
    candidate, cross-attention keys and values over the repeated encoder output) against torch's FLOP counter on
    the real module's forward: its matmuls (aten.mm) agree to 1% (the planner counts the norms' few weights too;
    attention scores, aten.bmm, are left out as cost.py says)."""
    setup = setup_from_config(tiny_config(tiny_mt5, "model.head=seq2seq"))
    batch, source, candidates, target = 4, 20, 3, 5
    setup = dataclasses.replace(setup, candidates=candidates, target_tokens=target, prompt_tokens=0)
    planned = 2 * batch * parameter_tokens(setup, inventory(setup), source)[0]
    model = load_classifier(tiny_mt5, 3, head="seq2seq", task_kind="pair")
    torch.manual_seed(0)
    ids = torch.randint(3, 900, (batch, source))
    choices = torch.randint(3, 900, (batch, candidates, target))
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(input_ids=ids, attention_mask=torch.ones_like(ids), choice_ids=choices)
    measured = counter.get_flop_counts()["Global"][torch.ops.aten.mm]
    assert planned == pytest.approx(measured, rel=0.01)


def test_seq2seq_plans_more_memory_and_flops_by_the_added_parameters(tiny_mt5):
    plans, costs, invs = [], [], []
    for head in HEADS:
        cfg = tiny_config(tiny_mt5, f"model.head={head}", "trainer.max_steps=2", "trainer.limit_val_batches=1")
        setup = setup_from_config(cfg)
        plan, inv = make_plan(setup), inventory(setup)
        plans.append(plan)
        invs.append(inv)
        costs.append(job_cost(cfg, setup, inv, data_stats(cfg), gpu_of(cfg.plan), 0.35))
    classifier, seq2seq = plans
    added = invs[1].total - invs[0].total
    # 32-true on one device: 4 B weights, 4 B gradients and 8 B AdamW moments per (trainable) parameter.
    assert seq2seq.parts["weights"] - classifier.parts["weights"] == pytest.approx(4 * added / GIB)
    trained = invs[1].trainable - invs[0].trainable
    assert seq2seq.parts["optimizer"] - classifier.parts["optimizer"] == pytest.approx(8 * trained / GIB)
    assert seq2seq.parts["activations"] > classifier.parts["activations"]
    assert seq2seq.total_gib > classifier.total_gib
    assert costs[1].train_flops > costs[0].train_flops and costs[1].eval_flops > costs[0].eval_flops


def test_the_decoder_reads_every_label_string_or_choice(tiny_mt5):
    """XNLI's mT5 template scores '0'/'1'/'2' (+ EOS); XCOPA's choices, 8.8 pieces on average (plan.datasets);
    the text-to-text encoder reads an XCOPA item once, not once per choice."""
    tokenizer = AutoTokenizer.from_pretrained(tiny_mt5)  # the model's own, since it is a local folder

    def pieces(text: str) -> int:
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    label = max(pieces(s) for s in ("0", "1", "2")) + 1  # EOS
    assert decoder_shape(tiny_config(tiny_mt5, "model.head=seq2seq")) == (3, label, pieces(CONTEXT_WORDS), 0.0)
    encoder_only, xcopa = both_heads("model=mt0-large", "task=xcopa")
    assert (xcopa.choices, xcopa.candidates, xcopa.target_tokens, xcopa.choice_tokens) == (1, 2, 10, 8.8)
    assert (encoder_only.choices, encoder_only.candidates) == (2, 0)
