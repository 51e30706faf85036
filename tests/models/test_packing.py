"""Packed batches (data.packing=true) give each example the logits a padded batch gives it, per model type."""

from __future__ import annotations

import pytest
import torch
from helpers.tiny_models import tiny_checkpoint
from transformers import AutoTokenizer, DataCollatorWithPadding

from xrobust.data.packing import PackingCollator, first_fit_rows
from xrobust.errors import XrobustError
from xrobust.models.packing import PackedClassifier

PAIRS = [
    ("The cat sat on the mat.", "A cat is sitting."),
    ("Er kommt morgen.", "Er kommt nicht."),
    ("Il pleut beaucoup aujourd'hui dans la ville de Paris.", "Il fait beau."),
    ("Short.", "Also short."),
    ("Ella canta muy bien en el coro de la iglesia cada domingo por la mañana.", "Ella no canta."),
]
# model type -> the attention implementation the project runs it with (DeBERTa's disentangled attention: eager).
ATTENTION = {"xlm-roberta": "sdpa", "xlm-roberta-xl": "sdpa", "deberta-v2": "eager", "mt5": "sdpa"}


def encoded(tokenizer) -> list[dict]:
    firsts, seconds = zip(*PAIRS, strict=True)
    rows = tokenizer(list(firsts), list(seconds), truncation=True, max_length=48)
    return [{key: rows[key][i] for key in rows} | {"labels": i % 3, "id": 10 + i} for i in range(len(PAIRS))]


def padded_and_packed(tokenizer, max_length: int = 48) -> tuple[dict, dict]:
    features = encoded(tokenizer)
    padded = DataCollatorWithPadding(tokenizer)([{k: v for k, v in f.items() if k != "id"} for f in features])
    packed = PackingCollator(tokenizer, max_length)(features)
    packed.pop("id")
    return dict(padded), packed


def load(folder, attention: str):
    from xrobust.models.loading import load_classifier

    return load_classifier(folder, 3, attn_implementation=attention, task_kind="pair").eval()


@pytest.fixture(scope="module")
def tiny_folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("packing")
    return {model_type: tiny_checkpoint(root / model_type, model_type) for model_type in ATTENTION}


def test_first_fit_fills_rows_without_overflow():
    rows = first_fit_rows([30, 20, 50, 10, 40], capacity=64)
    assert sorted(i for row in rows for i in row) == [0, 1, 2, 3, 4]
    assert all(sum([30, 20, 50, 10, 40][i] for i in row) <= 64 for row in rows)
    assert len(rows) == 3


def test_the_collator_packs_rows_and_keeps_examples_in_order(tiny_folders):
    tokenizer = AutoTokenizer.from_pretrained(tiny_folders["xlm-roberta"])
    padded, packed = padded_and_packed(tokenizer)
    assert packed["input_ids"].shape[0] < len(PAIRS)
    assert packed["input_ids"].numel() < padded["input_ids"].numel()
    assert packed["labels"].tolist() == padded["labels"].tolist()
    for index in range(len(PAIRS)):
        tokens = packed["input_ids"][packed["example_index"] == index]
        assert tokens.tolist() == padded["input_ids"][index][padded["attention_mask"][index].bool()].tolist()
        assert packed["position_ids"][packed["example_index"] == index].tolist() == list(range(len(tokens)))
    assert torch.equal(packed["attention_mask"].bool(), packed["example_index"] >= 0)


@pytest.mark.parametrize("model_type", list(ATTENTION))
def test_packed_logits_equal_padded_logits(tiny_folders, model_type):
    folder = tiny_folders[model_type]
    padded, packed = padded_and_packed(AutoTokenizer.from_pretrained(folder))
    model = load(folder, ATTENTION[model_type])
    with torch.no_grad():
        expected = model(**padded)
        got = PackedClassifier(model)(**packed)
    torch.testing.assert_close(got.logits, expected.logits, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(got.loss, expected.loss, atol=1e-5, rtol=1e-5)


def test_eager_attention_packs_as_sdpa_does(tiny_folders):
    folder = tiny_folders["xlm-roberta"]
    padded, packed = padded_and_packed(AutoTokenizer.from_pretrained(folder))
    model = load(folder, "eager")
    with torch.no_grad():
        torch.testing.assert_close(PackedClassifier(model)(**packed).logits, model(**padded).logits, atol=1e-5, rtol=0)


def test_the_embedded_encoder_predicts_the_same_packed():
    from xrobust.models.embedded import ensure_embedded_model

    folder = ensure_embedded_model("me5-small-6l")
    padded, packed = padded_and_packed(AutoTokenizer.from_pretrained(folder))
    model = load(folder, "sdpa")
    with torch.no_grad():
        expected = model(**padded).logits
        got = PackedClassifier(model)(**packed).logits
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    assert torch.equal(got.argmax(-1), expected.argmax(-1))


def test_a_seq2seq_head_refuses_packing_naming_it(tiny_folders):
    from xrobust.models.loading import load_classifier

    model = load_classifier(tiny_folders["mt5"], 3, head="seq2seq", task_kind="pair")
    with pytest.raises(XrobustError, match="data.packing=true: the RankClassifier head"):
        PackedClassifier(model)


def test_rs_rp_perturbs_each_packed_example_and_never_the_padding(tiny_folders):
    from xrobust.noise.random_perturbation import RandomPerturbation

    folder = tiny_folders["xlm-roberta"]
    _, packed = padded_and_packed(AutoTokenizer.from_pretrained(folder))
    model = PackedClassifier(load(folder, "sdpa"))
    seen = []
    handle = model.base_model.register_forward_pre_hook(
        lambda module, args, kwargs: seen.append(kwargs["inputs_embeds"]), with_kwargs=True
    )
    method = RandomPerturbation(name="rs_rp", eps_scale="absolute", eps=1.8, num_samples=2, seed=3)
    try:
        loss = method.training_loss(model, dict(packed))
    finally:
        handle.remove()
    assert torch.isfinite(loss)
    clean = model.get_input_embeddings()(packed["input_ids"]).repeat_interleave(2, dim=0)
    delta = (seen[0] - clean).detach()
    padding = packed["attention_mask"].repeat_interleave(2, dim=0) == 0
    assert padding.any() and torch.all(delta[padding] == 0)
    assert torch.all(delta[~padding].norm(dim=-1) > 0)
    loss.backward()
    assert model.get_input_embeddings().weight.grad is not None


def test_a_multiple_choice_task_refuses_packing_in_one_line(tiny_folders):
    from xrobust.data.packing import packing_collator
    from xrobust.kinds import get_kind

    tokenizer = AutoTokenizer.from_pretrained(tiny_folders["xlm-roberta"])
    with pytest.raises(XrobustError, match="data.packing=true: supported for pair tasks"):
        packing_collator(get_kind("multiple_choice"), tokenizer, "classifier", 48)


def test_a_packed_run_trains_and_tests_end_to_end(tmp_path):
    from helpers import FAST, compose_config

    from xrobust.train import run

    overrides = [*FAST, "data.packing=true", "model=me5-small-6l", "trainer.max_steps=2", "noise=rs_rp"]
    results = run(compose_config(overrides, output_dir=tmp_path))
    assert set(results["accuracy"]) == {"en", "de", "fr", "es", "ru", "zh", "ar"}
    assert all(0.0 <= value <= 1.0 for value in results["accuracy"].values())
