"""What makes sizes comparable (issue 17): noise radii relative to each model's embeddings, which tokens they move,
RS-DA with Robust-XLT's exact rule, a budget until dev-en stops improving, ties to the later epoch, the last epoch
tested beside the selected one."""

from __future__ import annotations

import json
import random

import pytest
import torch
from conftest import FAST, SHARED_DATA, compose_config
from hydra.utils import instantiate

from xrobust.noise import perturb
from xrobust.noise.adversarial import AdversarialTraining
from xrobust.noise.augmentation import DataAugmentation
from xrobust.noise.perturbation import median_embedding_norm
from xrobust.noise.random_perturbation import RandomPerturbation
from xrobust.train import run

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


# -------------------------------------------------------------------- budget, ties, the last epoch


FLAT = [
    *FAST,
    "trainer.max_steps=-1",
    "model=me5-small-6l",
    "optim.freeze_embeddings=true",
    "optim.lr=1e-12",
    "callbacks=early_stopping",
    "callbacks.early_stopping.patience=0",
    "trainer.max_epochs=5",
    "trainer.limit_train_batches=2",
    "trainer.limit_test_batches=1",
    "data.eval_batch_size=16",
    "eval.test_last=true",
    "ckpt_path=null",
    "checkpoint.keep_after_success=all",  # keep last.ckpt beside the selection to look at
]


@pytest.fixture(scope="module")
def flat_run(me5_dir, tmp_path_factory):
    """5 epochs allowed at a learning rate too small to move dev-en accuracy: early stopping (patience 0) ends it
    after the first epoch without improvement, every validation ties, the last epoch is tested too."""
    out = tmp_path_factory.mktemp("flat")
    return out, run(compose_config(FLAT, output_dir=out))


def test_early_stopping_stops_before_the_epoch_cap(flat_run):
    out, results = flat_run
    selection = results["model_selection"]
    assert selection["early_stopped"] is True
    assert selection["epochs_run"] < 5 and selection["steps_run"] == 2 * selection["epochs_run"]
    assert json.loads((out / "results.json").read_text())["model_selection"] == selection


def test_a_stop_after_an_earlier_best_is_still_recorded(me5_dir, tmp_path):
    """Testing the selected checkpoint restores the callbacks' state as of its epoch: a selection made before the
    stop (here the earliest checkpoint, selected on the step counter) must not erase that training stopped early."""
    first = ["callbacks.model_checkpoint.monitor=step", "callbacks.model_checkpoint.mode=min", "eval.test_last=false"]
    results = run(compose_config([*FLAT, *first], output_dir=tmp_path))
    assert results["model_selection"]["early_stopped"] is True and results["model_selection"]["epochs_run"] < 5


def test_ties_go_to_the_later_checkpoint_and_last_ckpt_is_the_last_state(flat_run):
    out, results = flat_run
    checkpoints = out / "checkpoints"
    best = [p for p in checkpoints.iterdir() if p.name.startswith("best-step")]
    # Every epoch scored the same dev-en accuracy: the kept best is the last epoch's.
    assert [p.name for p in best] == [f"best-step{results['model_selection']['steps_run']}.ckpt"]
    last = checkpoints / "last.ckpt"
    assert not last.is_symlink()
    state = torch.load(last, map_location="cpu", weights_only=True)
    assert state["global_step"] == results["model_selection"]["steps_run"]


def test_the_last_epoch_is_tested_beside_the_selected_checkpoint(flat_run):
    _, results = flat_run
    assert set(results["last_epoch_accuracy"]) == set(results["accuracy"])
    # The learning rate moved nothing: the last epoch's weights score what the selected ones do.
    assert results["last_epoch_accuracy"] == results["accuracy"]
    assert results["last_epoch_target_mean"] == pytest.approx(results["target_mean"])


def test_without_the_budget_option_nothing_is_recorded_as_stopped(me5_dir):
    from xrobust.run.results import early_stopped

    cfg = compose_config([])
    assert "early_stopping" not in cfg.callbacks and cfg.eval.test_last is False

    class NoStopping:
        early_stopping_callback = None

    assert early_stopped(NoStopping()) is None


@pytest.mark.parametrize("model", ["me5-small", "xlmr-xxl"])
def test_lr_scale_multiplies_each_models_own_learning_rate(model):
    base = compose_config([f"model={model}"]).optim.lr
    for scale in (0.5, 2):
        cfg = compose_config([f"model={model}", f"optim.lr_scale={scale}"])
        assert cfg.optim.lr == base and cfg.module.optimizer.lr == pytest.approx(base * scale)
