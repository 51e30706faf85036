"""The noise methods: rs_rp (embedding noise), rs_da / code_switch (word substitution), adv (PGD / FreeLB).

Unit tests use the real me5-small: its tokenizer, its full embedding matrix (neighbours), and its first 4
encoder layers under a seeded classifier head, in eval mode so dropout does not blur the comparisons.
End-to-end runs use the real 6-layer me5-small-6l with a frozen embedding matrix and no checkpoint files,
so that the whole file stays around three minutes on two CPU cores.
"""

from __future__ import annotations

import csv
import json

import pytest
import torch
from helpers import CONF_DIR, FAST, SHARED_DATA, compose_config
from hydra.utils import instantiate
from omegaconf import OmegaConf

from xrobust.data.datamodule import TransferDataModule
from xrobust.data.task import TaskSpec
from xrobust.errors import XrobustError
from xrobust.noise import perturb
from xrobust.noise.adversarial import AdversarialTraining
from xrobust.noise.augmentation import DataAugmentation, SynonymTransform
from xrobust.noise.embeddings import split_embeddings
from xrobust.noise.neighbours import embedding_neighbours, whole_word_pieces
from xrobust.noise.none import NoNoise
from xrobust.noise.perturbation import EmbeddingScale
from xrobust.noise.random_perturbation import RandomPerturbation
from xrobust.run.stages import build_job
from xrobust.train import run

COUNTERFITTED = SHARED_DATA / "synonyms" / "counterfitted_neighbors.json"

# Short end-to-end runs: 2 steps of the real 6-layer encoder, embedding matrix frozen, one test batch per
# language, no checkpoint files (the 12-layer model's optimizer step and 470 MB checkpoints dominate otherwise).
E2E = [
    *FAST,
    "trainer.max_steps=2",
    "model=me5-small-6l",
    "optim.freeze_embeddings=true",
    "callbacks.model_checkpoint.save_top_k=0",
    "callbacks.model_checkpoint.save_last=false",
    "trainer.limit_test_batches=1",
    "data.eval_batch_size=16",
    "ckpt_path=null",
]

PAIRS = [
    ("The train from Lyon arrived forty minutes late.", "A technical problem delayed the train."),
    ("Maria booked a window seat on the flight.", "Maria is travelling to Tokyo."),
    ("He said, Mama, I'm home.", "He called his mother."),
    ("The children played in the big house near Paris.", "Nobody was at home."),
]


@pytest.fixture(scope="module")
def tokenizer(me5_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(me5_dir)


@pytest.fixture(scope="module")
def classifier(me5_dir):
    """me5-small's embeddings and first 4 layers with a seeded 3-way head, in eval mode (deterministic)."""
    from transformers import AutoModelForSequenceClassification

    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(me5_dir, num_labels=3, num_hidden_layers=4)
    return model.eval()


@pytest.fixture
def batch(tokenizer):
    """Four labelled pairs of different lengths, right-padded: the padding is what the masks must respect."""
    encoded = tokenizer([p for p, _ in PAIRS], [h for _, h in PAIRS], padding=True, return_tensors="pt")
    assert (encoded["attention_mask"] == 0).any(), "the batch must contain padding"
    return {**encoded, "labels": torch.tensor([0, 1, 2, 1])}


def capture_inputs_embeds(model):
    """A hook recording what the encoder's embedding layer receives as inputs_embeds."""
    seen = []

    def hook(module, args, kwargs):
        seen.append(kwargs["inputs_embeds"].detach().clone())

    return seen, model.base_model.embeddings.register_forward_pre_hook(hook, with_kwargs=True)


def clean_embeddings(model, batch):
    with torch.no_grad():
        return model.get_input_embeddings()(batch["input_ids"])


# ------------------------------------------------------------------------------------------------- rs_rp


@pytest.mark.parametrize("norm", ["l2", "linf"])
def test_rs_rp_noise_is_inside_the_ball_and_zero_on_padding(classifier, batch, norm):
    eps = 1.8 if norm == "l2" else 0.16
    method = RandomPerturbation(name="rs_rp", eps_scale="absolute", norm=norm, eps=eps, seed=3)
    seen, handle = capture_inputs_embeds(classifier)
    try:
        with torch.no_grad():
            loss = method.training_loss(classifier, dict(batch))
    finally:
        handle.remove()
    assert torch.isfinite(loss)
    delta = seen[0] - clean_embeddings(classifier, batch)
    norms = perturb.token_norms(delta, norm)
    real = batch["attention_mask"].bool()
    assert torch.all(norms[~real] == 0), "padding must not be perturbed"
    assert torch.all(norms[real] <= eps * (1 + 1e-4))
    # Uniform in a 384-dimensional ball: almost all mass lies near the surface, in either norm.
    assert norms[real].min() > 0.9 * eps


def test_rs_rp_gaussian_noise_has_the_configured_scale(classifier, batch):
    method = RandomPerturbation(name="rs_rp", eps_scale="absolute", distribution="gaussian", sigma=0.09, seed=3)
    embeds = clean_embeddings(classifier, batch)
    delta = method.noise(embeds, batch["attention_mask"])
    real = batch["attention_mask"].bool()
    assert torch.all(delta[~real] == 0)
    assert delta[real].std().item() == pytest.approx(0.09, rel=0.05)


def test_rs_rp_repeats_each_example_with_fresh_noise(classifier, batch):
    method = RandomPerturbation(name="rs_rp", eps_scale="absolute", eps=1.8, num_samples=3, seed=3)
    seen, handle = capture_inputs_embeds(classifier)
    try:
        with torch.no_grad():
            method.training_loss(classifier, dict(batch))
    finally:
        handle.remove()
    noisy = seen[0]
    assert noisy.shape[0] == 3 * len(batch["labels"])
    clean = clean_embeddings(classifier, batch).repeat_interleave(3, dim=0)
    mask = batch["attention_mask"].repeat_interleave(3, dim=0).bool()
    delta = noisy - clean
    assert torch.all(delta[~mask] == 0)
    assert not torch.allclose(delta[0], delta[1]), "the copies of an example must get different noise"


def test_rs_rp_gradient_reaches_the_embedding_matrix(classifier, batch):
    method = RandomPerturbation(name="rs_rp", eps_scale="absolute", eps=1.8, seed=3)
    classifier.zero_grad(set_to_none=True)
    method.training_loss(classifier, dict(batch)).backward()
    grad = classifier.get_input_embeddings().weight.grad
    assert grad is not None and grad[batch["input_ids"][0]].abs().sum() > 0
    classifier.zero_grad(set_to_none=True)


def test_predict_default_and_smoothed(classifier, batch):
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    with torch.no_grad():
        clean = classifier(**inputs).logits.argmax(dim=-1)
        assert torch.equal(NoNoise(name="none").predict(classifier, inputs), clean)
        assert torch.equal(
            RandomPerturbation(name="rs_rp", eps_scale="absolute", eps=1.8).predict(classifier, inputs), clean
        )
        assert torch.equal(
            RandomPerturbation(
                name="rs_rp", eps_scale="absolute", eps=0.0, smoothed_prediction=True, num_test_samples=2
            ).predict(classifier, inputs),
            clean,
        )
        smoothed = RandomPerturbation(
            name="rs_rp", eps_scale="absolute", eps=1.8, smoothed_prediction=True, num_test_samples=3, seed=4
        )
        first = smoothed.predict(classifier, inputs)
        assert first.dtype == torch.long and first.shape == clean.shape
        assert torch.equal(first, smoothed.predict(classifier, inputs)), "a prediction must not depend on history"


# ------------------------------------------------------------------------------------------------- rs_da

TOY = {"movie": ["film", "picture"], "good": ["great", "fine", "nice"], "paris": ["lyon"], "ran": []}


def check_substitution(original: str, rewritten: str, neighbours: dict[str, list[str]]) -> int:
    """Assert that `rewritten` only swaps words that have neighbours, for one of them; count the swaps."""
    before, after = original.split(" "), rewritten.split(" ")
    assert len(before) == len(after)
    swaps = 0
    for old, new in zip(before, after, strict=True):
        parts = perturb.split_word(old)
        options = perturb.lookup(neighbours, parts[1]) if parts else []
        if not options:
            assert new == old
            continue
        prefix, core, suffix = parts
        allowed = {core} | {perturb.match_case(core, n) for n in options}
        assert new.startswith(prefix) and new.endswith(suffix)
        assert new[len(prefix) : len(new) - len(suffix)] in allowed, (old, new)
        swaps += new != old
    return swaps


def test_rs_da_substitutes_only_words_with_neighbours_by_their_neighbours():
    text = 'Good movie, "good" plot; Paris ran 3 times (movie). don\'t stop'
    transform = SynonymTransform(TOY, ["premise"], seed=7)
    outputs = {transform({"premise": [text]})["premise"][0] for _ in range(60)}
    for out in outputs:
        check_substitution(text, out, TOY)  # 'ran' (no neighbours), '3', "don't" stay; punctuation stays
    assert len(outputs) > 10, "every draw must be fresh"
    assert any(out.startswith(("Great ", "Fine ", "Nice ")) for out in outputs), "capital first letter is kept"
    assert any("Lyon" in out for out in outputs)


def test_rs_da_keeps_whitespace_and_untouched_words_verbatim():
    text = "  a  good\tmovie,\n  12 ran  "
    out = SynonymTransform(TOY, ["premise"], seed=1)({"premise": [text]})["premise"][0]
    assert out.startswith("  a  ") and "\t" in out and ",\n  12 ran  " in out


def test_rs_da_is_seeded():
    batch = {"premise": ["a good movie in paris"] * 4, "hypothesis": ["good"] * 4, "id": [0, 1, 2, 3], "label": [0] * 4}
    draws = [[SynonymTransform(TOY, None, seed=s)(batch) for _ in range(5)] for s in (1, 1, 2)]
    assert draws[0] == draws[1]
    assert draws[0] != draws[2]
    first = draws[0][0]
    assert first["id"] == batch["id"] and first["label"] == batch["label"]
    assert set(first) == set(batch)


def test_rs_da_rewrites_training_batches_on_the_fly_through_the_datamodule(me5_dir, tmp_path):
    cfg = compose_config(["data.batch_size=16", "data.max_length=48"], output_dir=tmp_path)
    from xrobust.config.checks import validate

    dm = instantiate(cfg.data, _partial_=True)(task=validate(cfg), tokenizer_path=str(me5_dir))
    dm.setup()
    words = {w.lower() for text in dm.train_rows["premise"][:200] for w in perturb.words_of(text)}
    neighbours = {w: [w + "x", w + "y"] for w in sorted(words)}
    clean = next(iter(dm.train_dataloader()))
    dm.train_text_transform = SynonymTransform(neighbours, ["premise", "hypothesis"], seed=5)
    first = next(iter(dm.train_dataloader()))
    second = next(iter(dm.train_dataloader()))  # same shuffle order, the next draws of the same transform
    assert torch.equal(first["id"], clean["id"]) and torch.equal(second["id"], clean["id"])
    assert not torch.equal(first["input_ids"], clean["input_ids"])
    assert not torch.equal(first["input_ids"], second["input_ids"])
    dm.train_text_transform = SynonymTransform(neighbours, ["premise", "hypothesis"], seed=5)
    assert torch.equal(next(iter(dm.train_dataloader()))["input_ids"], first["input_ids"])


@pytest.mark.skipif(not COUNTERFITTED.is_file(), reason=f"Robust-XLT neighbour file not found at {COUNTERFITTED}")
def test_rs_da_with_the_robust_xlt_neighbour_file():
    method = DataAugmentation(name="rs_da", neighbours={"source": "file", "path": str(COUNTERFITTED)}, seed=1)
    transform = method.text_transform()
    text = "The good movie arrived at the house late."
    outputs = {transform({"premise": [text]})["premise"][0] for _ in range(30)}
    swaps = sum(check_substitution(text, out, transform.neighbours) for out in outputs)
    assert swaps > 0 and len(outputs) > 5
    assert method.params()["neighbours"]["source"] == "file"


@pytest.fixture(scope="module")
def pieces(tokenizer):
    return whole_word_pieces(tokenizer)


def test_whole_word_pieces_are_marked_alphabetic_words(pieces):
    assert {"good", "house", "Paris", "maison"} <= set(pieces)
    assert all(len(w) >= 2 and w.isalpha() for w in pieces)
    assert "," not in pieces and "a" not in pieces  # punctuation and one-letter pieces are not candidates


class StubTokenizer:
    def __init__(self, pieces):
        self.pieces = pieces

    def __len__(self):
        return len(self.pieces)

    def convert_ids_to_tokens(self, ids):
        return [self.pieces[i] for i in ids]


def test_whole_word_pieces_of_wordpiece_and_bpe_vocabularies():
    wordpiece = ["[CLS]", "[SEP]", "the", "house", "##s", "a", "12", "maison", "##ing", "don"]
    assert whole_word_pieces(StubTokenizer(wordpiece)) == {"the": 2, "house": 3, "maison": 7, "don": 9}
    bpe = ["<s>", "\u0120the", "\u0120house", "s", "\u0120a", "ing", "\u0120maison", "\u012012"]
    assert whole_word_pieces(StubTokenizer(bpe)) == {"the": 1, "house": 2, "maison": 6}


def test_embedding_neighbours_are_real_near_tokens(classifier, pieces):
    weight = classifier.get_input_embeddings().weight
    found = embedding_neighbours(weight, pieces, ["good", "house", "Paris", "notaword"], k=8, chunk_size=2)
    assert set(found) == {"good", "house", "Paris"}
    # What me5-small's input embeddings put in the top 8 (checked by hand): synonyms and translations.
    assert {"great", "goed"} & set(found["good"]), found["good"]
    assert {"maison", "casa", "huis"} & set(found["house"]), found["house"]
    assert {"Париж", "Parigi", "France"} & set(found["Paris"]), found["Paris"]
    for word, near in found.items():
        assert len(near) == 8
        assert all(perturb.fold(n) != perturb.fold(word) for n in near), "itself and its case variants excluded"


def test_code_switch_embedding_source_is_computed_once_and_cached(classifier, tokenizer, tmp_path, monkeypatch):
    import datasets

    from xrobust.noise import neighbours

    rows = datasets.Dataset.from_dict(
        {
            "id": [0, 1],
            "premise": ["The good house in Paris.", "A qzxv ran home"],
            "hypothesis": ["Nobody lives there.", "He was late!"],
            "label": [0, 1],
            "lang": ["en", "en"],
        }
    )
    spec = {"source": "embedding", "k": 4, "cache_dir": str(tmp_path / "nb")}
    method = DataAugmentation(name="code_switch", neighbours=spec, text_fields=["premise", "hypothesis"], seed=1)
    method.setup(classifier, tokenizer, rows)
    assert {"good", "house", "Paris", "late"} <= set(method.word_neighbours)
    assert "qzxv" not in method.word_neighbours and "A" not in method.word_neighbours
    assert method.cache_file and (tmp_path / "nb").is_dir()

    def no_recompute(*args, **kwargs):
        raise AssertionError("the cache was not used")

    monkeypatch.setattr(neighbours, "embedding_neighbours", no_recompute)
    again = DataAugmentation(name="code_switch", neighbours=spec, text_fields=["premise", "hypothesis"], seed=1)
    again.setup(classifier, tokenizer, rows)
    assert again.word_neighbours == method.word_neighbours
    transform = again.text_transform()
    for _ in range(10):
        out = transform(rows[:2])
        for field in ("premise", "hypothesis"):
            for before, after in zip(rows[field], out[field], strict=True):
                check_substitution(before, after, again.word_neighbours)


# --------------------------------------------------------------------------------------------------- adv


@pytest.mark.parametrize("norm", ["l2", "linf"])
def test_pgd_raises_the_loss_inside_the_ball(classifier, batch, norm):
    eps, alpha = (0.5, 0.3) if norm == "l2" else (0.05, 0.03)
    method = AdversarialTraining(name="adv", eps_scale="absolute", norm=norm, eps=eps, alpha=alpha, steps=2, seed=0)
    inputs = dict(batch)
    embeds, rest = split_embeddings(classifier, inputs)
    classifier.zero_grad(set_to_none=True)
    delta = method.attack(classifier, embeds, rest)
    assert all(p.grad is None for p in classifier.parameters()), "the ascent must not touch parameter gradients"
    norms = perturb.token_norms(delta, norm)
    real = batch["attention_mask"].bool()
    assert torch.all(norms[~real] == 0) and torch.all(norms[real] <= eps * (1 + 1e-4))
    with torch.no_grad():
        clean = classifier(**inputs).loss
        attacked = classifier(inputs_embeds=embeds + delta, **rest).loss
        mask = perturb.token_mask(batch["attention_mask"], embeds)
        randomly = classifier(inputs_embeds=embeds + perturb.sample_ball(embeds, mask, eps, norm), **rest).loss
    assert attacked > clean
    assert attacked - clean > 3 * abs(randomly - clean), "the ascent direction must beat a random one"


def test_pgd_training_loss_is_clean_plus_adversarial(classifier, batch):
    method = AdversarialTraining(
        name="adv", eps_scale="absolute", eps=0.5, alpha=0.3, steps=1, clean_weight=0.5, adv_weight=2.0, seed=0
    )
    torch.manual_seed(0)
    loss = method.training_loss(classifier, dict(batch))
    with torch.no_grad():
        clean = classifier(**batch).loss
    assert loss > 2.5 * clean  # 0.5 * clean + 2 * (something larger than clean)
    classifier.zero_grad(set_to_none=True)
    loss.backward()
    assert classifier.classifier.weight.grad.abs().sum() > 0
    classifier.zero_grad(set_to_none=True)


def test_freelb_loss_backward_is_the_mean_of_the_step_gradients(classifier, batch):
    method = AdversarialTraining(
        name="adv",
        eps_scale="absolute",
        variant="freelb",
        eps=0.5,
        alpha=0.3,
        steps=2,
        random_start=False,
        clean_weight=0.0,
        seed=0,
    )
    classifier.zero_grad(set_to_none=True)
    loss = method.training_loss(classifier, dict(batch))
    assert all(p.grad is None for p in classifier.parameters())
    loss.backward()
    freelb_grad = classifier.classifier.weight.grad.clone()
    classifier.zero_grad(set_to_none=True)

    # By hand: delta_0 = 0, delta_1 = one projected ascent step from 0; mean of the two losses.
    embeds, rest = split_embeddings(classifier, dict(batch))
    one_step = AdversarialTraining(
        name="adv", eps_scale="absolute", eps=0.5, alpha=0.3, steps=1, random_start=False
    ).attack(classifier, embeds, rest)
    by_hand = (classifier(**batch).loss + classifier(inputs_embeds=embeds + one_step, **rest).loss) / 2
    assert loss.item() == pytest.approx(by_hand.item(), rel=1e-5)
    assert loss > classifier(**batch).loss
    by_hand.backward()
    assert torch.allclose(freelb_grad, classifier.classifier.weight.grad, rtol=1e-4, atol=1e-6)
    classifier.zero_grad(set_to_none=True)


def test_adv_same_seed_same_loss(classifier, batch):
    def loss(seed):
        method = AdversarialTraining(name="adv", steps=1, clean_weight=0.0, seed=seed)
        return method.training_loss(classifier, dict(batch)).item()

    assert loss(11) == loss(11)
    assert loss(11) != loss(12)


@pytest.mark.parametrize(
    "method",
    [
        lambda: RandomPerturbation(name="rs_rp", seed=3),
        lambda: RandomPerturbation(name="rs_rp", seed=3, distribution="gaussian", num_samples=2),
        lambda: AdversarialTraining(name="adv", steps=1, seed=3),
    ],
    ids=["rs_rp", "rs_rp_gaussian", "adv"],
)
def test_noise_state_in_a_checkpoint_continues_the_stream(classifier, batch, method):
    """What a resume relies on: the state saved after one step, loaded into a fresh method, makes the next step
    draw exactly what the uninterrupted method draws (a method whose state_dict is empty restarts from its seed)."""
    uninterrupted = method()
    uninterrupted.setup(classifier, None)
    uninterrupted.training_loss(classifier, dict(batch))
    saved = uninterrupted.state_dict()
    assert saved[uninterrupted.state_key], "the noise generators are missing from the checkpoint state"
    resumed = method()
    resumed.setup(classifier, None)
    resumed.load_state_dict(saved)
    with torch.no_grad():
        expected = uninterrupted.training_loss(classifier, dict(batch))
        assert resumed.training_loss(classifier, dict(batch)) == expected
        restarted = method()
        restarted.setup(classifier, None)
        assert restarted.training_loss(classifier, dict(batch)) != expected  # the stream did move on


# -------------------------------------------------------------------------------------- config and e2e

INVALID = [
    (RandomPerturbation, {"eps": -1.0}, "invalid noise config: noise.eps=-1.0 (must be >= 0)"),
    (RandomPerturbation, {"norm": "l3"}, "noise.norm='l3'"),
    (RandomPerturbation, {"distribution": "laplace"}, "noise.distribution"),
    (RandomPerturbation, {"sigma": -0.1}, "noise.sigma"),
    (RandomPerturbation, {"num_samples": 0}, "noise.num_samples=0"),
    (RandomPerturbation, {"num_test_samples": 0}, "noise.num_test_samples"),
    (RandomPerturbation, {"eps": "big"}, "noise.eps='big' (must be a number)"),
    (AdversarialTraining, {"steps": 0}, "noise.steps=0 (must be >= 1)"),
    (AdversarialTraining, {"alpha": 0.0}, "noise.alpha=0.0 (must be > 0)"),
    (AdversarialTraining, {"eps": -0.5}, "noise.eps"),
    (AdversarialTraining, {"variant": "fgsm"}, "noise.variant"),
    (AdversarialTraining, {"norm": "l1"}, "noise.norm"),
    (AdversarialTraining, {"clean_weight": -1.0}, "noise.clean_weight"),
    (AdversarialTraining, {"adv_weight": 0.0}, "noise.adv_weight"),
    (DataAugmentation, {"neighbours": {"k": 0}}, "noise.neighbours.k=0 (must be >= 1)"),
    (DataAugmentation, {"neighbours": {"source": "wordnet"}}, "noise.neighbours.source"),
    (DataAugmentation, {"neighbours": {"source": "file", "path": "/no/such.json"}}, "noise.neighbours.path"),
    (DataAugmentation, {"neighbours": {"kk": 3}}, "noise.neighbours"),
]


@pytest.mark.parametrize(("cls", "kwargs", "message"), INVALID, ids=lambda v: str(v)[:40])
def test_invalid_hyper_parameters_are_refused_naming_the_field(cls, kwargs, message):
    with pytest.raises(XrobustError) as err:
        cls(name="tested", **kwargs)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_fields_are_coerced_to_their_annotations():
    method = RandomPerturbation(name="rs_rp", eps=1, sigma=0)
    assert method.eps == 1.0 and isinstance(method.eps, float) and isinstance(method.sigma, float)
    with pytest.raises(XrobustError, match=r"noise\.num_samples=True \(must be an integer\)"):
        RandomPerturbation(name="rs_rp", num_samples=True)
    with pytest.raises(XrobustError, match=r"noise\.random_start=1 \(must be a bool\)"):
        AdversarialTraining(name="adv", random_start=1)
    spec = DataAugmentation(name="code_switch", neighbours={"source": "embedding", "k": 3}).neighbours
    assert (spec.path, spec.k, spec.chunk_size) == (None, 3, 512), "unset keys keep their defaults"


@pytest.mark.parametrize("option", sorted(p.stem for p in (CONF_DIR / "noise").glob("*.yaml")))
def test_each_noise_config_names_itself_once_and_records_every_key(option, tmp_path):
    """`name` is YAML data (the class has none of its own); params() are the constructor fields."""
    cfg = compose_config([f"noise={option}"], output_dir=tmp_path)
    method = instantiate(cfg.noise, _partial_=True)()
    assert cfg.noise.name == method.name == method.params()["name"] == option
    assert set(yaml_params(cfg)) <= set(method.params())
    assert json.loads(json.dumps(method.params())) == method.params(), "results.json holds plain JSON values"


def test_invalid_override_stops_the_run_with_one_line(tmp_path):
    cfg = compose_config([*E2E, "noise=adv", "noise.steps=0"], output_dir=tmp_path)
    with pytest.raises(XrobustError, match=r"^invalid noise config: noise\.steps=0 \(must be >= 1\)$"):
        run(cfg)


def yaml_params(cfg) -> dict:
    params = OmegaConf.to_container(cfg.noise, resolve=True)
    params.pop("_target_")
    return params


def assert_params_recorded(results: dict, cfg) -> None:
    recorded = json.loads(json.dumps(results["noise"]))
    for key, value in yaml_params(cfg).items():
        assert key in recorded, f"noise.{key} missing from results.json"
        if isinstance(value, dict):
            assert {k: recorded[key][k] for k in value} == value
        else:
            assert recorded[key] == value, key


@pytest.mark.parametrize("noise", ["rs_rp", "adv"])
def test_noise_trains_end_to_end_and_records_its_parameters(noise, tmp_path):
    cfg = compose_config([*E2E, f"noise={noise}"], output_dir=tmp_path)
    results = run(cfg)
    on_disk = json.loads((tmp_path / "results.json").read_text())
    assert results["model_selection"]["steps_run"] == 2
    assert_params_recorded(on_disk, cfg)
    assert on_disk["noise"]["ball"] == "per-token"


@pytest.fixture(scope="module")
def code_switch_runs(me5_dir, tmp_path_factory):
    """code_switch twice with the same seed (sharing a neighbour cache), losses logged at every step."""
    cache = tmp_path_factory.mktemp("neighbours")
    runs = []
    for _ in range(2):
        out = tmp_path_factory.mktemp("code_switch")
        cfg = compose_config(
            [
                *E2E,
                "noise=code_switch",
                "logger=csv",
                "trainer.log_every_n_steps=1",
                f"noise.neighbours.cache_dir={cache}",
            ],
            output_dir=out,
        )
        runs.append((cfg, run(cfg), out))
    return runs


def train_losses(out) -> list[float]:
    with (out / "csv" / "metrics.csv").open() as fh:
        return [float(row["train/loss"]) for row in csv.DictReader(fh) if row.get("train/loss")]


def test_code_switch_trains_end_to_end_and_records_its_parameters(code_switch_runs):
    cfg, results, out = code_switch_runs[0]
    assert results["model_selection"]["steps_run"] == 2
    on_disk = json.loads((out / "results.json").read_text())
    assert_params_recorded(on_disk, cfg)
    assert on_disk["noise"]["neighbours"]["source"] == "embedding"
    assert on_disk["noise"]["words_with_neighbours"] > 100


def test_same_seed_same_result(code_switch_runs):
    (_, first, out1), (_, second, out2) = code_switch_runs
    losses = train_losses(out1)
    assert len(losses) == 2
    assert losses == train_losses(out2)
    assert first["accuracy"] == second["accuracy"]


def test_generalized_and_perturbed_read_outs_end_to_end(tmp_path):
    """Mixed-language pairs are scored as their own test sets and summarised as an A x B matrix; the perturbed
    read-out gives one accuracy per language beside the clean one."""
    overrides = [*E2E, "noise=none", "eval.generalized=true", "eval.generalized_languages=[en,de,zh]"]
    results = run(compose_config([*overrides, "eval.perturbed=true"], output_dir=tmp_path))
    general = results["generalized"]
    assert general["languages"] == ["en", "de", "zh"]
    assert general["matrix"]["de"]["de"] == results["accuracy"]["de"]
    mixed = [general["matrix"][a][b] for a in "en de zh".split() for b in "en de zh".split() if a != b]
    assert len(mixed) == 6 and general["mixed_pairs_mean"] == pytest.approx(sum(mixed) / 6)
    assert general["excluded_items"] == {}
    assert set(results["perturbed_accuracy"]) == set(results["accuracy"])
    assert all(0 <= acc <= 1 for acc in results["perturbed_accuracy"].values())


def test_the_read_out_and_the_training_noise_share_one_measurement(tmp_path, monkeypatch):
    """build_job measures the embedding matrix once: the module for its perturbed read-out, the noise method's
    setup taking that scale rather than measuring again."""
    measured = []
    measure = EmbeddingScale.measure.__func__

    def counted(cls, model):
        measured.append(model)
        return measure(cls, model)

    monkeypatch.setattr(EmbeddingScale, "measure", classmethod(counted))
    job = build_job(compose_config([*E2E, "noise=rs_rp", "eval.perturbed=true"], output_dir=tmp_path))
    assert len(measured) == 1
    assert job.noise.perturbation.scale is job.module.embedding_scale is job.module.readout_perturbation.scale
    recorded = job.module.test_perturbation
    assert recorded["median_embedding_norm"] == job.noise.params()["median_embedding_norm"]
    assert recorded["eps_absolute"] == job.module.readout_perturbation.radius("eps")


def paws_like_datamodule(me5_dir, folder, labels_de, labels_rest=(1, 0, 1, 0)) -> TransferDataModule:
    """PAWS-X dev files for every language (German with labels_de, the rest with labels_rest), generalized en/de."""
    task = TaskSpec.from_config(compose_config(["task=pawsx"]).task)
    folder.mkdir()
    (folder / "train-en.tsv").write_text("a b\tb a\t1\nc d\td e\t0\n")
    for lang in task.languages:
        labels = labels_de if lang == "de" else labels_rest
        rows = "".join(f"sentence {i} {lang}\tsatz {i} {lang}\t{label}\n" for i, label in enumerate(labels))
        (folder / f"dev-{lang}.tsv").write_text(rows)
    return TransferDataModule(
        task,
        str(me5_dir),
        local_dir=str(folder),
        test_split="dev",
        generalized=True,
        generalized_languages=["en", "de"],
    )


def test_generalized_pairs_leave_out_items_the_two_languages_label_differently(me5_dir, tmp_path, caplog):
    """PAWS-X's translations were relabelled: an item with two gold labels has none as a mixed pair."""
    datamodule = paws_like_datamodule(me5_dir, tmp_path / "pawsx", labels_de=[1, 1, 1, 0])
    datamodule.setup()
    assert datamodule.raw_test_sets["en_de"]["id"] == [0, 2, 3]
    assert datamodule.raw_test_sets["en_de"]["sentence2"] == ["satz 0 de", "satz 2 de", "satz 3 de"]
    assert len(datamodule.raw_test_sets["de"]) == 4, "the standard setting keeps every item"
    assert datamodule.extra_tests.excluded == {"en_de": 1, "de_en": 1}
    assert "dev-en and dev-de give 1 of 4 items different labels" in caplog.text


def test_generalized_setting_refuses_test_sets_with_different_items(me5_dir, tmp_path):
    datamodule = paws_like_datamodule(me5_dir, tmp_path / "pawsx", labels_de=[1, 0, 1])
    with pytest.raises(XrobustError, match="dev-en and dev-de hold different items"):
        datamodule.setup()
