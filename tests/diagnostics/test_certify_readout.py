"""eval.certify's read-out on the tiny model and the sample's test sets: certify.tsv's rows, certified accuracy per
radius, `covers`, and the smoothed classifier at a vanishing sigma being the clean one, never abstaining."""

from __future__ import annotations

from functools import partial

import pytest
import torch
from helpers import compose_config
from helpers.small_runs import small_sample, varied_tiny_checkpoint

from xrobust.data.datamodule import TransferDataModule
from xrobust.data.task import TaskSpec
from xrobust.diagnostics import certify
from xrobust.lightning.module import TransferModule
from xrobust.noise.random_perturbation import RandomPerturbation

SETTINGS = {"n0": 4, "n": 24, "alpha": 0.001, "batch": 10, "radii": [0.0, 0.001, 0.01], "items": 3}


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    root = tmp_path_factory.mktemp("certify")
    (root / "data").mkdir()
    data = small_sample(root / "data")
    pretrained = varied_tiny_checkpoint(root / "tiny")
    task = TaskSpec.from_config(compose_config(["task=sample"]).task)
    datamodule = TransferDataModule(task, str(pretrained), local_dir=str(data), max_length=48)
    datamodule.setup()
    datamodule.test_sets = {lang: datamodule.test_sets[lang] for lang in ("en", "de")}  # two are enough, and fast
    module = TransferModule(
        pretrained=str(pretrained),
        label_names=list(task.label_names),
        test_names=datamodule.test_names,
        noise=RandomPerturbation(name="rs_rp", distribution="gaussian"),
        task_kind="pair",
        optimizer=partial(torch.optim.AdamW, lr=1e-3),
        scheduler=partial(torch.optim.lr_scheduler.LambdaLR, lr_lambda=lambda step: 1.0),
    )
    module.eval()
    return module, datamodule


def read(module, datamodule, sigma: float, **changes):
    module.noise = RandomPerturbation(name="rs_rp", distribution="gaussian", sigma=sigma, seed=2)
    module.noise.setup(module.model, datamodule.tokenizer)
    with torch.no_grad():
        return certify.read_out(module, datamodule, SETTINGS | changes, "tested")


def test_rows_and_certified_accuracy_per_radius(parts):
    module, datamodule = parts
    found = read(module, datamodule, sigma=0.5)
    assert list(found.rows[0]) == ["language", "id", "gold", "pred", "p_lower", "radius", "correct"]
    assert len(found.rows) == 3 * len(datamodule.test_sets)
    summary = found.summary
    median = summary["median_embedding_norm"]
    assert summary["sigma"] == pytest.approx(0.5 * median / module.model.config.hidden_size**0.5)
    assert summary["radii_absolute"] == pytest.approx([r * median for r in SETTINGS["radii"]])
    assert "Frobenius" in summary["covers"] and f"{summary['sigma']:.6g}" in summary["covers"]
    for row in found.rows:
        assert row["p_lower"] <= 0.001 ** (1 / 24) + 1e-6 and row["radius"] <= summary["max_radius"] + 1e-6
        assert (row["pred"] == certify.ABSTAIN) == (row["p_lower"] < 0.5)
        if row["pred"] == certify.ABSTAIN:
            assert row["radius"] == 0 and row["correct"] == 0
    for lang, result in summary["per_language"].items():
        rows = [row for row in found.rows if row["language"] == lang]
        assert result["items"] == 3
        assert result["abstained"] == sum(row["pred"] == certify.ABSTAIN for row in rows) / 3
        for radius, absolute in zip(SETTINGS["radii"], summary["radii_absolute"], strict=True):
            hits = sum(row["correct"] and row["radius"] >= absolute - 1e-6 for row in rows)
            assert result["certified_accuracy"][str(radius)] == pytest.approx(100 * hits / 3)
    assert read(module, datamodule, sigma=0.5).rows == found.rows, "seeded per item"


def test_a_vanishing_sigma_certifies_the_clean_prediction(parts):
    """All n draws agree with the clean classifier: pA_lower = alpha^(1/n) > 1/2, no abstention."""
    module, datamodule = parts
    found = read(module, datamodule, sigma=1e-9)
    collate = datamodule.kind.collator(datamodule.tokenizer)
    for lang, tested in datamodule.test_sets.items():
        batch = collate([tested[i] for i in range(3)])
        clean = module.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits.argmax(-1)
        rows = [row for row in found.rows if row["language"] == lang]
        assert [row["pred"] for row in rows] == clean.tolist()
        assert [row["p_lower"] for row in rows] == pytest.approx([0.001 ** (1 / 24)] * 3, rel=1e-5)
