"""The report's size order for the shipped model configs: body (non-embedding) parameters counted on the meta
device as results.json counts them, families from the configs; the pairs the report contrasts by default."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from helpers import compose_config
from omegaconf import OmegaConf

from xrobust.models.embedded import ensure_embedded_model
from xrobust.models.loading import load_classifier
from xrobust.models.parameter_counts import count_non_embedding_parameters
from xrobust.report.identity import flatten
from xrobust.report.sizes import SAME_SIZE, ModelSize, basis_text, default_pairs, model_sizes

MODELS = ["xlmr-base", "mdeberta-v3-base", "xlmr-large", "mt0-large", "me5-small", "me5-small-6l"]


def declared_job(name: str) -> SimpleNamespace:
    """What the report reads of a run of this model config (collect.Job's fields): results.json's model sizes and
    family, and its config flattened to dotted keys (no weights loaded)."""
    model_cfg = compose_config([f"model={name}"]).model
    pretrained = str(ensure_embedded_model(model_cfg.embedded)) if model_cfg.embedded else None
    with torch.device("meta"):
        model = load_classifier(
            pretrained,
            3,
            architecture=model_cfg.architecture,
            attn_implementation=None,
            weights=False,
            task_kind="pair",
        )
    return SimpleNamespace(
        model=name,
        num_parameters=sum(p.numel() for p in model.parameters()),
        non_embedding_parameters=count_non_embedding_parameters(model),
        family=model_cfg.get("family"),
        flat_config=flatten({"model": OmegaConf.to_container(model_cfg, resolve=True)}),
    )


def declared_size(name: str) -> ModelSize:
    """What the report makes of a run of this model config: total, body, family, base model."""
    (size,) = model_sizes([declared_job(name)])
    return size


@pytest.fixture(scope="module")
def sizes() -> dict[str, ModelSize]:
    return {name: declared_size(name) for name in MODELS}


def test_body_size_orders_the_models_where_the_total_misleads(sizes):
    xlmr, mdeberta = sizes["xlmr-base"], sizes["mdeberta-v3-base"]
    # By total, mdeberta-v3-base (278.8M) is "larger" than xlmr-base (278.0M); their bodies (86.0M, 85.6M) are
    # the same size to the report (within SAME_SIZE).
    assert mdeberta.total > xlmr.total and abs(mdeberta.body - xlmr.body) < SAME_SIZE * xlmr.body
    # me5-small against its 6-layer cut: 1.1x by total, ~2x by body (21.6M vs 11.0M).
    small, cut = sizes["me5-small"], sizes["me5-small-6l"]
    assert small.total / cut.total == pytest.approx(1.10, abs=0.01)
    assert small.body / cut.body == pytest.approx(1.97, abs=0.02) and 21e6 < small.body < 22e6
    # mt0-large's encoder against xlmr-large: different families, bodies within 2% of each other.
    mt0, large = sizes["mt0-large"], sizes["xlmr-large"]
    assert mt0.family != large.family and abs(mt0.body - large.body) < 0.02 * large.body


def test_default_pairs_are_within_family_by_body_size(sizes):
    pairs, notes = default_pairs(sorted(sizes.values(), key=lambda s: -s.body))
    assert {(a.name, b.name) for a, b in pairs} == {("xlmr-large", "xlmr-base"), ("me5-small", "me5-small-6l")}
    assert notes == []
    # Without families (older results): every pair by body, and equal bodies are no size contrast.
    anonymous = [ModelSize(s.name, s.total, s.body, None) for s in sizes.values()]
    pairs, notes = default_pairs(sorted(anonymous, key=lambda s: -s.body))
    found = {(a.name, b.name) for a, b in pairs}
    assert ("mt0-large", "xlmr-large") in found and ("me5-small", "me5-small-6l") in found
    assert not {("mdeberta-v3-base", "xlmr-base"), ("xlmr-base", "mdeberta-v3-base")} & found
    assert any("the same body size" in note for note in notes)


def test_model_sizes_fall_back_to_total_when_a_body_is_missing():
    jobs = [
        SimpleNamespace(model="a", num_parameters=200, non_embedding_parameters=None, family=None, flat_config={}),
        SimpleNamespace(model="b", num_parameters=100, non_embedding_parameters=90, family=None, flat_config={}),
    ]
    assert [s.name for s in model_sizes(jobs)] == ["a", "b"]


def names(pairs) -> set[tuple[str, str]]:
    return {(a.name, b.name) for a, b in pairs}


def test_mt0_is_contrasted_with_the_mt5_it_was_trained_from():
    """model=mt5-large,mt0-large,mt5-xxl,mt0-xxl: each mT0 minus the mT5 checkpoint it was fine-tuned from (same
    architecture and body: xP3's contribution) beside the size pairs within each family, never across them."""
    found = model_sizes([declared_job(name) for name in ("mt5-large", "mt0-large", "mt5-xxl", "mt0-xxl")])
    by_name = {size.name: size for size in found}
    assert by_name["mt0-xxl"].body == by_name["mt5-xxl"].body and by_name["mt0-xxl"].family != "mt5"
    assert by_name["mt0-large"].base == "mt5-large" and by_name["mt5-large"].base is None
    pairs, notes = default_pairs(found)
    assert names(pairs) == {
        ("mt0-xxl", "mt0-large"),
        ("mt5-xxl", "mt5-large"),
        ("mt0-xxl", "mt5-xxl"),
        ("mt0-large", "mt5-large"),
    }
    assert notes == []
    assert "mt0-xxl minus mt5-xxl" in basis_text(found, chosen_pairs=False)
    # Without families (older results) the training pair is still made, never noted as an equal-size pair.
    anonymous = [ModelSize(s.name, s.total, s.body, None, s.base) for s in found]
    pairs, notes = default_pairs(anonymous)
    assert {("mt0-xxl", "mt5-xxl"), ("mt0-large", "mt5-large")} <= names(pairs) and notes == []


def test_the_size_grid_pairs_are_unchanged():
    """experiment=size_grid's models (the README's four): mT0's base models did not run, so only the two size
    pairs, as before model.base_model existed."""
    found = model_sizes([declared_job(name) for name in ("mt0-large", "mt0-xxl", "xlmr-xl", "xlmr-xxl")])
    assert names(default_pairs(found)[0]) == {("mt0-xxl", "mt0-large"), ("xlmr-xxl", "xlmr-xl")}
    assert "model.base_model" not in basis_text(found, chosen_pairs=False)
