"""eval.certify (issue #32 item 2): CERTIFY's bound and radius against a hand computation on a toy classifier whose
margin is known in closed form, abstention on a tie, and the start-up refusal of what the certificate does not
cover."""

from __future__ import annotations

import math
from statistics import NormalDist
from types import SimpleNamespace

import pytest
import torch
from helpers import compose_config
from scipy.stats import beta
from torch import nn

from xrobust.config.checks import validate
from xrobust.diagnostics import certify
from xrobust.errors import XrobustError
from xrobust.noise.random_perturbation import RandomPerturbation

WIDTH, LENGTH, SIGMA = 8, 5, 0.5
PHI = NormalDist()


class MeanLinear(nn.Module):
    """Two classes; logit of class 1 minus class 0 is w . mean(token embeddings) + b over the attended tokens, so
    under N(0, sigma^2) per coordinate on L tokens it is Gaussian with std sigma |w| / sqrt(L)."""

    def __init__(self, w: torch.Tensor, b: float):
        super().__init__()
        self.embeddings = nn.Embedding(10, WIDTH)
        nn.init.normal_(self.embeddings.weight, generator=torch.Generator().manual_seed(0))
        self.w, self.b = w, b

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embeddings

    def forward(self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor, **_) -> SimpleNamespace:
        mask = attention_mask.unsqueeze(-1).to(inputs_embeds.dtype)
        mean = (inputs_embeds * mask).sum(dim=1) / mask.sum(dim=1)
        score = mean @ self.w + self.b
        return SimpleNamespace(logits=torch.stack([torch.zeros_like(score), score], dim=-1))

    def margin(self, input_ids: torch.Tensor) -> float:
        return float(self.embeddings(input_ids)[0].mean(dim=0) @ self.w + self.b)


def toy(target_margin: float) -> tuple[MeanLinear, dict[str, torch.Tensor], float]:
    """A toy classifier whose clean margin on the one item is `target_margin`, the item, and |w|."""
    w = torch.linspace(-1.0, 1.0, WIDTH)
    model = MeanLinear(w, 0.0)
    inputs = {"input_ids": torch.tensor([[1, 2, 3, 4, 5]]), "attention_mask": torch.ones(1, LENGTH, dtype=torch.long)}
    model.b = target_margin - model.margin(inputs["input_ids"])
    return model, inputs, float(w.norm())


def gaussian_noise() -> RandomPerturbation:
    return RandomPerturbation(name="rs_rp", distribution="gaussian", eps_scale="absolute", sigma=SIGMA, seed=3)


def binomial_tail(successes: int, trials: int, p: float) -> float:
    """P(X >= successes) for X ~ Binomial(trials, p), summed by hand."""
    return sum(math.comb(trials, k) * p**k * (1 - p) ** (trials - k) for k in range(successes, trials + 1))


@pytest.mark.parametrize(("successes", "trials"), [(100, 100), (93, 100), (61, 100), (7, 20)])
def test_the_lower_bound_is_the_one_sided_clopper_pearson_bound(successes, trials):
    """pA_lower is the p at which seeing `successes` or more has probability alpha (all successes: alpha^(1/n))."""
    alpha = 0.001
    bound = certify.lower_confidence_bound(successes, trials, alpha)
    assert binomial_tail(successes, trials, bound) == pytest.approx(alpha, rel=1e-6)
    if successes == trials:
        assert bound == pytest.approx(alpha ** (1 / trials), rel=1e-12)
    assert certify.lower_confidence_bound(0, trials, alpha) == 0.0


def test_certify_on_a_toy_classifier_of_known_margin():
    """Linear in the mean embedding: P(f(x + delta) = 1) = Phi(m sqrt(L) / (sigma |w|)), and the smoothed classifier
    (which is f itself) is robust exactly within the Frobenius radius m sqrt(L) / |w|."""
    model, inputs, w_norm = toy(target_margin=0.3)
    true_p = PHI.cdf(0.3 * math.sqrt(LENGTH) / (SIGMA * w_norm))
    true_radius = 0.3 * math.sqrt(LENGTH) / w_norm
    assert SIGMA * PHI.inv_cdf(true_p) == pytest.approx(true_radius)
    noise, settings = gaussian_noise(), {"n0": 10, "n": 4000, "alpha": 0.001, "batch": 500}
    generator = torch.Generator().manual_seed(0)
    guess = certify.noisy_counts(model, noise, inputs, settings["n0"], settings["batch"], generator, 2)
    counts = certify.noisy_counts(model, noise, inputs, settings["n"], settings["batch"], generator, 2)
    assert int(guess.argmax()) == 1 and int(counts.sum()) == 4000
    assert counts[1] / 4000 == pytest.approx(true_p, abs=0.02)
    found = certify.certify_counts(guess, counts, settings["alpha"], SIGMA)
    assert found.pred == 1
    assert found.p_lower == pytest.approx(float(beta.ppf(0.001, counts[1], 4001 - counts[1])))
    assert found.p_lower < true_p and true_p - found.p_lower < 0.04
    assert found.radius == pytest.approx(SIGMA * PHI.inv_cdf(found.p_lower), rel=1e-9)
    assert found.radius <= true_radius and found.radius > 0.75 * true_radius
    # The radius means what `covers` says: a Frobenius change of the token embeddings just past the true radius
    # (spread evenly against w) flips the prediction, one just inside does not.
    with torch.no_grad():
        embeds = model.get_input_embeddings()(inputs["input_ids"])
        direction = -(model.w / w_norm).expand(1, LENGTH, WIDTH) / math.sqrt(LENGTH)
        for scale, label in ((0.99, 1), (1.01, 0)):
            moved = model(
                inputs_embeds=embeds + scale * true_radius * direction, attention_mask=inputs["attention_mask"]
            )
            assert int(moved.logits.argmax()) == label


def test_certify_item_is_seeded():
    model, inputs, _ = toy(target_margin=0.8)
    settings = {"n0": 10, "n": 64, "alpha": 0.001, "batch": 7}
    first = certify.certify_item(model, gaussian_noise(), inputs, settings, torch.Generator().manual_seed(5), 2)
    again = certify.certify_item(model, gaussian_noise(), inputs, settings, torch.Generator().manual_seed(5), 2)
    assert first == again
    assert first.pred == 1 and first.p_lower <= 0.001 ** (1 / 64)


def test_a_tie_abstains():
    """Zero margin: each class wins half the noisy copies, pA_lower < 1/2, so the smoothed classifier abstains."""
    model, inputs, _ = toy(target_margin=0.0)
    found = certify.certify_item(
        model, gaussian_noise(), inputs, {"n0": 10, "n": 400, "alpha": 0.001, "batch": 100}, torch.Generator(), 2
    )
    assert found == certify.Certificate(certify.ABSTAIN, found.p_lower, 0.0) and found.p_lower < 0.5
    tied = certify.certify_counts(torch.tensor([5, 5]), torch.tensor([50, 50]), 0.001, SIGMA)
    assert tied.pred == certify.ABSTAIN and tied.radius == 0.0


def test_certified_accuracy_counts_correct_unabstained_items_with_the_radius():
    found = [
        (1, certify.Certificate(1, 0.9, 0.4)),
        (0, certify.Certificate(0, 0.7, 0.1)),
        (1, certify.Certificate(0, 0.9, 0.5)),  # wrong
        (1, certify.Certificate(certify.ABSTAIN, 0.4, 0.0)),
    ]
    assert [certify.certified_accuracy(found, r) for r in (0.0, 0.1, 0.2, 0.5)] == [50.0, 50.0, 25.0, 0.0]


@pytest.mark.parametrize(
    ("overrides", "refused"),
    [
        (["noise=rs_rp"], True),  # uniform noise: not the Gaussian the certificate is about
        (["noise=none"], True),
        (["noise=rs_rp", "noise.distribution=gaussian"], False),
    ],
)
def test_certify_is_refused_at_start_up_unless_the_noise_is_gaussian_rs_rp(overrides, refused, tmp_path):
    cfg = compose_config([*overrides, "eval.certify.enabled=true"], output_dir=tmp_path)
    if not refused:
        validate(cfg)
        return
    with pytest.raises(XrobustError, match=r"eval\.certify\.enabled=True \(certifies Gaussian smoothing only") as err:
        validate(cfg)
    assert "\n" not in str(err.value)
