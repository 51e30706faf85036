"""What makes noise comparable across sizes (issue 17): radii relative to each model's embeddings, which tokens
they move, RS-DA with Robust-XLT's exact rule."""

from __future__ import annotations

import random

import pytest
import torch
from helpers import SHARED_DATA, compose_config
from hydra.utils import instantiate

from xrobust.noise import perturb
from xrobust.noise.adversarial import AdversarialTraining
from xrobust.noise.augmentation import DataAugmentation
from xrobust.noise.perturbation import median_embedding_norm
from xrobust.noise.random_perturbation import RandomPerturbation

COUNTERFITTED = SHARED_DATA / "synonyms" / "counterfitted_neighbors.json"


def random_encoder(hidden: int, init_std: float, vocab_size: int = 500):
    """A random XLM-R classifier of the given width; init_std sets its embedding norms."""
    from transformers import XLMRobertaConfig, XLMRobertaForSequenceClassification

    torch.manual_seed(0)
    config = XLMRobertaConfig(
        vocab_size=vocab_size,
        hidden_size=hidden,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=2 * hidden,
        initializer_range=init_std,
        num_labels=3,
    )
    return XLMRobertaForSequenceClassification(config).eval()


def relative_noise_norms(method: RandomPerturbation, model) -> torch.Tensor:
    ids = torch.randint(5, 400, (4, 12), generator=torch.Generator().manual_seed(1))
    embeds = model.get_input_embeddings()(ids).detach()
    delta = method.noise(embeds, torch.ones_like(ids), torch.Generator().manual_seed(2), model)
    return perturb.token_norms(delta, "l2") / median_embedding_norm(model)


def test_relative_eps_is_the_same_relative_perturbation_on_two_widths():
    narrow, wide = random_encoder(32, 0.02), random_encoder(128, 0.2)
    assert median_embedding_norm(wide) > 20 * median_embedding_norm(narrow)
    norms = {}
    for name, model in (("narrow", narrow), ("wide", wide)):
        method = RandomPerturbation(name="rs_rp", eps=0.5, seed=1)
        method.setup(model, None)
        norms[name] = relative_noise_norms(method, model)
        assert method.params()["eps_absolute"] == pytest.approx(0.5 * median_embedding_norm(model))
        assert method.params()["eps_relative"] == 0.5
        assert norms[name].max() <= 0.5 * (1 + 1e-4) and norms[name].mean() > 0.45
    assert norms["narrow"].mean().item() == pytest.approx(norms["wide"].mean().item(), rel=0.03)
    # The same absolute eps is a ~20x different perturbation relative to the two models.
    absolute = [
        relative_noise_norms(RandomPerturbation(name="rs_rp", eps_scale="absolute", eps=0.5), m) for m in (narrow, wide)
    ]
    assert absolute[0].mean() > 10 * absolute[1].mean()


def test_adv_radius_and_step_scale_with_the_model():
    model = random_encoder(64, 0.1)
    method = AdversarialTraining(name="adv", eps=0.1, alpha=0.05, seed=0)
    method.setup(model, None)
    norm = median_embedding_norm(model)
    assert method.radius("eps") == pytest.approx(0.1 * norm) and method.radius("alpha") == pytest.approx(0.05 * norm)
    params = method.params()
    assert params["median_embedding_norm"] == pytest.approx(norm)
    assert (params["eps_relative"], params["alpha_absolute"]) == (0.1, pytest.approx(0.05 * norm))


@pytest.mark.parametrize("option", ["rs_rp", "adv"])
def test_default_relative_radii_are_me5_smalls_absolute_ones(option, me5_dir):
    """The relative defaults keep the absolute radii me5-small trained with before (rs_rp 0.9, adv 0.1)."""
    from transformers import AutoModel

    method = instantiate(compose_config([f"noise={option}"]).noise, _partial_=True)()
    assert method.eps_scale == "relative"
    method.setup(AutoModel.from_pretrained(me5_dir), None)
    assert method.params()["eps_absolute"] == pytest.approx({"rs_rp": 0.9, "adv": 0.1}[option], abs=1e-5)


@pytest.mark.parametrize("special", [True, False])
def test_special_tokens_are_perturbed_only_when_asked(me5_dir, special):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(me5_dir)
    model = random_encoder(32, 0.1, vocab_size=len(tokenizer))
    batch = tokenizer(["A good movie.", "Maria booked a seat on the flight."], ["Fine.", "Yes"], padding=True)
    batch = {k: torch.tensor(v) for k, v in batch.items()}
    method = RandomPerturbation(name="rs_rp", eps=0.5, perturb_special_tokens=special, seed=1)
    method.setup(model, tokenizer)
    positions = method.positions(batch["input_ids"], batch["attention_mask"])
    embeds = model.get_input_embeddings()(batch["input_ids"]).detach()
    moved = perturb.token_norms(method.noise(embeds, positions, torch.Generator().manual_seed(0), model), "l2") > 0
    is_special = torch.isin(batch["input_ids"], torch.tensor(tokenizer.all_special_ids))
    real = batch["attention_mask"].bool()
    assert torch.equal(moved[real & is_special], torch.full_like(moved[real & is_special], special))
    assert moved[real & ~is_special].all() and not moved[~real].any()


# ------------------------------------------------------------------------------------------------- rs_da

TEXT = (
    "The good movie arrived at the house late . She said the film was good , but the small house was "
    "quiet and the old man walked home slowly"
)


def robust_xlt_rate(text: str, neighbours: dict[str, list[str]]) -> float:
    """The expected share of replaced tokens under Robust-XLT's perturb.py: a space-split token in the file with
    k neighbours becomes one of them with probability k / (k + 1); any other token stays."""
    tokens = text.split(" ")
    return sum(len(neighbours.get(t) or []) / (len(neighbours.get(t) or []) + 1) for t in tokens) / len(tokens)


@pytest.mark.skipif(not COUNTERFITTED.is_file(), reason=f"Robust-XLT neighbour file not found at {COUNTERFITTED}")
def test_rs_da_with_the_synonym_file_replaces_at_robust_xlts_rate():
    method = DataAugmentation(name="rs_da", neighbours={"source": "file", "path": str(COUNTERFITTED)}, seed=1)
    transform = method.text_transform()
    neighbours = transform.neighbours
    assert method.params()["word_rule"] == "robust_xlt_verbatim"
    tokens, draws = TEXT.split(" "), 4000
    replaced = 0
    for _ in range(draws):
        out = transform({"premise": [TEXT]})["premise"][0].split(" ")
        assert len(out) == len(tokens)
        for before, after in zip(tokens, out, strict=True):
            assert after == before or after in neighbours[before], (before, after)
            replaced += after != before
    expected = robust_xlt_rate(TEXT, neighbours)
    assert 0.2 < expected < 0.8
    assert replaced / (draws * len(tokens)) == pytest.approx(expected, abs=0.01)
    # Verbatim lookup: a capitalised or punctuated form is its own key ("The" and "late." are not "the", "late").
    capitalised = "The Good Movie"
    assert all(not neighbours.get(t) for t in capitalised.split(" "))
    assert perturb.substitute_verbatim(capitalised, neighbours, random.Random(0)) == capitalised


def test_rs_da_path_without_the_file_source_is_refused():
    from xrobust.errors import XrobustError

    with pytest.raises(XrobustError, match=r"noise\.neighbours\.path=.*read only with source=file"):
        DataAugmentation(name="rs_da", neighbours={"source": "embedding", "path": "x.json"})
