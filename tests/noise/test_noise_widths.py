"""Relative radii mean the same perturbation at every width (issue 28.2): for every distribution and norm, the
noise's L2 size over the median token-embedding norm is the same at d = 384, 1024 and 4096. Per-coordinate
quantities (a Gaussian sigma, an L-inf bound or step) grow in L2 with sqrt(d), so they are relative to
median_norm / sqrt(d); before, a Gaussian sigma gave 0.56 of the median norm at d=384 and 1.83 at d=4096."""

from __future__ import annotations

import math

import pytest
import torch
from helpers import compose_config
from hydra.utils import instantiate

from xrobust.noise import perturb
from xrobust.noise.adversarial import AdversarialTraining
from xrobust.noise.perturbation import EmbeddingScale, Perturbation, median_embedding_norm
from xrobust.noise.random_perturbation import RandomPerturbation

WIDTHS = (384, 1024, 4096)


def encoder(hidden: int):
    """A real one-layer XLM-R classifier of width `hidden` (median token norm about 0.05 * sqrt(hidden))."""
    from transformers import XLMRobertaConfig, XLMRobertaForSequenceClassification

    torch.manual_seed(0)
    config = XLMRobertaConfig(
        vocab_size=300,
        hidden_size=hidden,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        initializer_range=0.05,
        num_labels=3,
    )
    return XLMRobertaForSequenceClassification(config).eval()


@pytest.fixture(scope="module")
def models():
    return {width: encoder(width) for width in WIDTHS}


def embeddings_of(model) -> tuple[torch.Tensor, torch.Tensor]:
    ids = torch.randint(5, 290, (4, 16), generator=torch.Generator().manual_seed(1))
    return model.get_input_embeddings()(ids).detach(), torch.ones_like(ids)


def relative_size(delta: torch.Tensor, model) -> float:
    """The mean L2 norm of a token's perturbation over the model's median token-embedding norm."""
    return (perturb.token_norms(delta, "l2").mean() / median_embedding_norm(model)).item()


def rs_rp_noise(model, distribution: str, norm: str) -> torch.Tensor:
    method = RandomPerturbation(name="rs_rp", distribution=distribution, norm=norm, seed=1)
    method.setup(model, None)
    embeds, positions = embeddings_of(model)
    return method.noise(embeds, positions, torch.Generator().manual_seed(2))


def adv_delta(model, norm: str) -> torch.Tensor:
    """adv's random start and two ascent steps along a random gradient, each projected into the ball."""
    method = AdversarialTraining(name="adv", norm=norm, eps=0.3, alpha=0.2, seed=1)
    method.setup(model, None)
    embeds, positions = embeddings_of(model)
    mask = perturb.token_mask(positions, embeds)
    delta = method.start(embeds, mask)
    generator = torch.Generator().manual_seed(3)
    for _ in range(2):
        delta = method.step(delta, torch.randn(embeds.shape, generator=generator), mask)
    return delta


def read_out(spec: dict, model) -> Perturbation:
    """The perturbed read-out's perturbation (eval.perturbation), on the model's measured scale."""
    return Perturbation.readout(spec, EmbeddingScale.measure(model))


def eval_read_out(model, norm: str) -> torch.Tensor:
    """What eval.perturbation draws: a uniform sample from each token's ball of the resolved absolute radius."""
    perturbation = read_out({"norm": norm, "eps_scale": "relative", "eps": 0.5, "seed": 1}, model)
    embeds, positions = embeddings_of(model)
    mask = perturb.token_mask(positions, embeds)
    return perturbation.sample(embeds, mask, torch.Generator().manual_seed(2))


CASES = {
    "rs_rp uniform l2": lambda m: rs_rp_noise(m, "uniform", "l2"),
    "rs_rp uniform linf": lambda m: rs_rp_noise(m, "uniform", "linf"),
    "rs_rp gaussian l2": lambda m: rs_rp_noise(m, "gaussian", "l2"),
    "rs_rp gaussian linf": lambda m: rs_rp_noise(m, "gaussian", "linf"),
    "adv l2": lambda m: adv_delta(m, "l2"),
    "adv linf": lambda m: adv_delta(m, "linf"),
    "eval.perturbation l2": lambda m: eval_read_out(m, "l2"),
    "eval.perturbation linf": lambda m: eval_read_out(m, "linf"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_relative_noise_is_the_same_size_at_every_width(models, case):
    sizes = {width: relative_size(CASES[case](model), model) for width, model in models.items()}
    assert sizes[384] > 0.1, sizes
    assert max(sizes.values()) / min(sizes.values()) < 1.05, sizes


def test_the_widths_differ_in_absolute_embedding_scale(models):
    """The check above is not trivial: the median norms of the three models differ."""
    norms = [median_embedding_norm(models[w]) for w in WIDTHS]
    assert norms[0] != pytest.approx(norms[2], rel=0.05)


def test_per_coordinate_radii_are_recorded_in_both_scales(models):
    model = models[1024]
    method = RandomPerturbation(name="rs_rp", distribution="gaussian", norm="linf", eps=0.4, sigma=0.5, seed=1)
    method.setup(model, None)
    params, unit = method.params(), median_embedding_norm(model) / math.sqrt(1024)
    assert params["embedding_dim"] == 1024
    assert params["sigma_absolute"] == pytest.approx(0.5 * unit) and params["eps_absolute"] == pytest.approx(0.4 * unit)
    asked = {"norm": "linf", "eps_scale": "absolute", "eps": 0.2}
    spec = read_out(asked, model).record(asked)
    assert spec["eps_relative"] == pytest.approx(0.2 / unit) and spec["embedding_dim"] == 1024


@pytest.mark.parametrize("option", ["rs_rp", "adv"])
def test_me5_small_keeps_its_absolute_defaults(option, me5_dir):
    """The relative defaults still give me5-small (d=384) the radii it trained with: rs_rp eps 0.9 and Gaussian
    sigma 0.046, adv eps 0.1 and alpha 0.06."""
    from transformers import AutoModel

    method = instantiate(compose_config([f"noise={option}"]).noise, _partial_=True)()
    method.setup(AutoModel.from_pretrained(me5_dir), None)
    params = method.params()
    expected = {"rs_rp": {"eps": 0.9, "sigma": 0.046}, "adv": {"eps": 0.1, "alpha": 0.06}}[option]
    for field, value in expected.items():
        assert params[f"{field}_absolute"] == pytest.approx(value, abs=1e-4), field


def test_what_a_method_measures_is_never_part_of_a_jobs_identity(models):
    """The report keys jobs by what they were asked to run: every recorded value that is not a field (the width,
    the median norm, the radii in both scales) counts as derived there, or two widths would never pair up."""
    import dataclasses

    from xrobust.report.identity import derived

    for method in (RandomPerturbation(name="rs_rp", seed=1), AdversarialTraining(name="adv", seed=1)):
        method.setup(models[384], None)
        fields = {f.name for f in dataclasses.fields(method)}
        measured = [key for key in method.params() if key not in fields]
        assert "embedding_dim" in measured and all(derived(key) for key in measured), measured


def test_a_scale_handed_to_setup_is_not_measured_again(models, monkeypatch):
    """The module measures the model once for its perturbed read-out and build_job hands that scale to the noise
    method: setup takes it as it is, and the training radii and the read-out's come from the same numbers."""
    model = models[1024]
    scale = EmbeddingScale.measure(model)
    readout = read_out({"norm": "l2", "eps": 0.5, "seed": 1}, model)

    def measured_again(cls, model):
        raise AssertionError("the embedding matrix was measured a second time")

    monkeypatch.setattr(EmbeddingScale, "measure", classmethod(measured_again))
    method = RandomPerturbation(name="rs_rp", eps=0.5, seed=1)
    method.setup(model, None, scale=scale)
    assert method.params()["median_embedding_norm"] == scale.median_norm and method.params()["embedding_dim"] == 1024
    assert method.radius("eps") == readout.radius("eps") == 0.5 * scale.median_norm


def test_each_test_batch_draws_from_its_own_seed(models):
    """The read-out's generator depends on the seed, the test set and the batch only (so a perturbed prediction
    does not depend on what ran before it), with the arithmetic results so far were drawn with."""
    readout = read_out({"norm": "l2", "eps": 0.5, "seed": 3}, models[384])
    generator = readout.test_batch_generator(torch.device("cpu"), 2, 5)
    assert generator.initial_seed() == 3 * 1_000_003 + 2 * 10_007 + 5
    embeds, positions = embeddings_of(models[384])
    mask = perturb.token_mask(positions, embeds)
    again = readout.sample(embeds, mask, readout.test_batch_generator(torch.device("cpu"), 2, 5))
    assert torch.equal(readout.sample(embeds, mask, generator), again)
    other = readout.sample(embeds, mask, readout.test_batch_generator(torch.device("cpu"), 2, 6))
    assert not torch.equal(again, other)
