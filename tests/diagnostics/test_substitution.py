"""eval.substitution (issue #32 item 3): words replaced by their neighbours at a rate, seeded per item; at rate 0
the accuracy is the clean one, which is the test loop's own."""

from __future__ import annotations

import dataclasses
import json
import random
from functools import partial

import pytest
import pytorch_lightning as pl
import torch
from helpers import compose_config
from helpers.small_runs import small_sample, varied_tiny_checkpoint

from xrobust.data.datamodule import TransferDataModule
from xrobust.data.task import TaskSpec
from xrobust.diagnostics import substitution
from xrobust.diagnostics.config import SubstitutionConfig
from xrobust.lightning.module import TransferModule
from xrobust.noise import perturb
from xrobust.noise.none import NoNoise

NEIGHBOURS = {"house": ["home", "building"], "Paris": ["Lyon"], "late": ["delayed"]}


def test_rate_zero_changes_nothing_and_rate_one_replaces_every_word_with_neighbours():
    text = "The house near Paris, late again."
    for verbatim in (False, True):
        same, count = substitution.substitute_at_rate(text, NEIGHBOURS, 0.0, random.Random(0), verbatim)
        assert (same, count) == (text, 0)
    changed, count = substitution.substitute_at_rate(text, NEIGHBOURS, 1.0, random.Random(0), verbatim=False)
    assert count == 3 and changed.startswith("The ") and changed.endswith(" again.")
    assert "Lyon," in changed and ("home" in changed or "building" in changed) and "delayed" in changed
    # Robust-XLT's rule looks tokens up verbatim: "Paris," (with its comma) has no entry.
    verbatim, count = substitution.substitute_at_rate(text, NEIGHBOURS, 1.0, random.Random(0), verbatim=True)
    assert count == 2 and "Paris," in verbatim


def test_the_rate_is_the_share_of_words_with_neighbours_replaced():
    text = " ".join(["house"] * 2000)
    _, count = substitution.substitute_at_rate(text, NEIGHBOURS, 0.3, random.Random(1), verbatim=False)
    assert count / 2000 == pytest.approx(0.3, abs=0.03)


@pytest.fixture(scope="module")
def sample_job(tmp_path_factory):
    """A tiny XLM-R whose predictions vary, the cut-down sample (7 test items per language), a neighbour file
    that covers every word of the test sets, and the test loop's accuracies."""
    root = tmp_path_factory.mktemp("substitution")
    (root / "data").mkdir()
    data = small_sample(root / "data")
    pretrained = varied_tiny_checkpoint(root / "tiny")
    task = TaskSpec.from_config(compose_config(["task=sample"]).task)
    datamodule = TransferDataModule(task, str(pretrained), local_dir=str(data), max_length=48, eval_batch_size=4)
    datamodule.setup()
    texts = [text for rows in datamodule.raw_test_sets.values() for field in task.text_fields for text in rows[field]]
    words = {word for text in texts for word in text.split(" ")}
    table = root / "neighbours.json"
    table.write_text(json.dumps({w: [w[::-1], "casa"] for w in words}), encoding="utf-8")
    module = TransferModule(
        pretrained=str(pretrained),
        label_names=list(task.label_names),
        test_names=datamodule.test_names,
        noise=NoNoise(name="none"),
        task_kind="pair",
        optimizer=partial(torch.optim.AdamW, lr=1e-3),
        scheduler=partial(torch.optim.lr_scheduler.LambdaLR, lr_lambda=lambda step: 1.0),
    )
    trainer = pl.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False, accelerator="cpu")
    trainer.test(module, datamodule=datamodule, verbose=False)
    module.eval()
    return module, datamodule, table


def settings(table, **changes) -> dict:
    base = dataclasses.asdict(SubstitutionConfig(enabled=True, source="file", path=str(table)))
    return base | {"items": None} | changes


def read(module, datamodule, **given):
    with torch.no_grad():
        return substitution.read_out(module, datamodule, given, "tested")


def test_at_rate_zero_the_accuracy_is_the_clean_accuracy_of_the_test_loop(sample_job):
    module, datamodule, table = sample_job
    found = read(module, datamodule, **settings(table, rate=0.0))
    tested = {lang: 100 * result["accuracy"] for lang, result in module.test_results.items()}
    assert set(found.summary["per_language"]) == set(tested)
    for lang, result in found.summary["per_language"].items():
        assert result["accuracy"] == result["clean_accuracy"] == pytest.approx(tested[lang])
        assert result["items"] == 7 and result["substituted_words"] == 0.0
    assert {row["substituted"] for row in found.rows} == {0}
    assert found.summary["source"] == str(table) and found.summary["word_rule"] == "robust_xlt_verbatim"


def test_above_rate_zero_words_change_reproducibly_by_seed(sample_job):
    module, datamodule, table = sample_job
    first = read(module, datamodule, **settings(table, rate=0.5, seed=3))
    again = read(module, datamodule, **settings(table, rate=0.5, seed=3))
    other = read(module, datamodule, **settings(table, rate=0.5, seed=4))
    assert first.rows == again.rows and first.summary == again.summary
    assert [r["substituted"] for r in first.rows] != [r["substituted"] for r in other.rows]
    for result in first.summary["per_language"].values():
        assert 0.3 < result["substituted_words"] < 0.7
    assert list(first.rows[0]) == ["language", "id", "gold", "pred", "substituted"]
    capped = read(module, datamodule, **settings(table, rate=0.5, seed=3, items=3))
    assert capped.rows == [r for r in first.rows if r["id"] in {row["id"] for row in capped.rows}]
    assert {result["items"] for result in capped.summary["per_language"].values()} == {3}


def test_an_item_draws_the_same_words_whatever_is_read_with_it():
    rows = {"id": [7, 8], "premise": ["house house house", "late late"], "label": [0, 1]}
    both, replaced, words = substitution.substituted_rows(
        rows, ["premise"], NEIGHBOURS, {"seed": 1, "rate": 0.5}, "de", False
    )
    alone = {"id": [8], "premise": ["late late"], "label": [1]}
    single, _, _ = substitution.substituted_rows(alone, ["premise"], NEIGHBOURS, {"seed": 1, "rate": 0.5}, "de", False)
    assert both["premise"][1] == single["premise"][0]
    assert words == [3, 2] and sum(replaced) > 0
    kept = sum(
        perturb.words_of(text).count(word) for text, word in zip(both["premise"], ("house", "late"), strict=True)
    )
    assert kept == 5 - sum(replaced)


def test_the_embedding_source_finds_neighbours_for_the_target_languages(sample_job, tmp_path):
    """code_switch's source: the tested model's nearest whole words, for the chosen items' words of every language."""
    module, datamodule, _ = sample_job
    given = settings(None, source="embedding", path=None, cache_dir=str(tmp_path), rate=1.0, items=2)
    found = read(module, datamodule, **given)
    assert found.summary["word_rule"] == "alphabetic_core" and "embedding neighbours (k=8)" in found.summary["source"]
    assert str(tmp_path) in found.summary["source"]
    for lang in ("en", "de", "fr", "ru"):
        assert found.summary["per_language"][lang]["substituted_words"] > 0.2
