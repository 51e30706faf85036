"""Social IQa and XTREME-R's XCOPA protocol, offline: the Hub's Parquet conversion of allenai/social_i_qa rebuilt
here in its layout (branch refs/convert/parquet: `default/<split>/0000.parquet`, no README, the loading script's
string columns, the label as "1"/"2"/"3"), read as a Hub run reads it, then `intermediate=siqa task=xcopa` on a
tiny checkpoint: SIQA's three answers trained first, XCOPA's two next, every XCOPA language tested."""

from __future__ import annotations

from pathlib import Path

import datasets
import pytest
import torch
from helpers import FAST, compose_config
from helpers.tiny_models import tiny_checkpoint
from hydra.utils import instantiate
from test_hub_data import TASK_MIRRORS, mirror_overrides, write_mirror

from xrobust.data.hub_source import HubSource
from xrobust.data.task import TaskSpec
from xrobust.errors import XrobustError
from xrobust.train import run

SIQA_ROWS = {"train": 12, "validation": 5}
SIQA_FEATURES = datasets.Features(
    {name: datasets.Value("string") for name in ("context", "question", "answerA", "answerB", "answerC", "label")}
)
XCOPA_LANGS = ["et", "ht", "id", "it", "qu", "sw", "ta", "th", "tr", "vi", "zh"]


def siqa_row(split: str, i: int) -> dict[str, str]:
    return {
        "context": f"Tracy {split} {i} gave a book to Riley.",
        "question": f"How would Riley feel {i}?",
        "answerA": f"grateful {i}",
        "answerB": f"angry {i}",
        "answerC": f"bored {i}",
        "label": str(i % 3 + 1),
    }


def write_siqa(root: Path, rows=siqa_row) -> Path:
    folder = root / "allenai" / "social_i_qa"
    for split, n in SIQA_ROWS.items():
        path = folder / "default" / split / "0000.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        datasets.Dataset.from_list([rows(split, i) for i in range(n)], features=SIQA_FEATURES).to_parquet(str(path))
    return folder


@pytest.fixture(scope="module")
def siqa(tmp_path_factory) -> Path:
    return write_siqa(tmp_path_factory.mktemp("hub"))


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    return tiny_checkpoint(tmp_path_factory.mktemp("tiny-xlmr"))


@pytest.fixture(scope="module")
def tiny_mt5(tmp_path_factory) -> Path:
    return tiny_checkpoint(tmp_path_factory.mktemp("tiny-mt5"), "mt5")


def siqa_task(siqa: Path, tmp_path: Path) -> TaskSpec:
    return TaskSpec.from_config(compose_config(["task=siqa", f"task.hub_id='{siqa}'"], output_dir=tmp_path).task)


def test_siqa_rows_labels_and_three_choices(siqa, tiny_model, tmp_path):
    """The string labels become answer indices ("1" = answerA); each item is three (context + question, answer)
    pairs, the question appended as written."""
    task = siqa_task(siqa, tmp_path)
    source = HubSource(task, str(tmp_path / "cache"))
    train = source.load("train", "en")
    assert train["label"] == [i % 3 for i in range(SIQA_ROWS["train"])]
    assert source.load("dev", "en").num_rows == SIQA_ROWS["validation"]
    record = source.provenance["train-en"]
    assert (record["config"], record["split"], record["data_files"]) == ("default", "train", "default/train/*.parquet")
    cfg = compose_config(["task=siqa", f"task.hub_id='{siqa}'", "data.test_split=dev", "data.heldout=true"])
    datamodule = instantiate(cfg.data, _partial_=True)(task=task, tokenizer_path=str(tiny_model))
    datamodule.setup()
    batch = next(iter(datamodule.test_dataloader()[0]))
    assert batch["input_ids"].shape[:2] == (len(batch["labels"]), 3)
    i = int(batch["id"][0])
    third = datamodule.tokenizer.decode(batch["input_ids"][0, 2], skip_special_tokens=True)
    assert f"validation {i} gave a book to Riley. How would Riley feel {i}?" in third
    assert third.endswith(f"bored {i}") and int(batch["labels"][0]) == i % 3


def test_an_unknown_siqa_label_is_one_error_line(tmp_path):
    def bad(split: str, i: int) -> dict[str, str]:
        return siqa_row(split, i) | ({"label": "D"} if i == 3 else {})

    task = siqa_task(write_siqa(tmp_path, bad), tmp_path)
    with pytest.raises(XrobustError, match=r"social_i_qa/default split 'train': unknown label 'D' \(known: answerA"):
        HubSource(task, str(tmp_path / "cache")).load("train", "en")


def test_xtreme_r_xcopa_is_siqa_then_copa():
    cfg = compose_config(["experiment=xcopa_xtreme_r"])
    assert (cfg.intermediate.task.name, cfg.task.name, cfg.task_label) == ("siqa", "xcopa", "siqa-xcopa")
    assert cfg.intermediate.trainer.max_epochs == cfg.trainer.max_epochs == 5
    assert cfg.data.max_length == 128 and cfg.data.batch_size == 32


@pytest.mark.parametrize("head", ["classifier", "seq2seq"])
def test_siqa_intermediate_stage_then_xcopa(head, siqa, tiny_model, tiny_mt5, tmp_path):
    """intermediate=siqa task=xcopa: 2 steps on SIQA's three answers (selected on its dev set), its weights handed
    on, 2 steps on COPA, every XCOPA language tested; all from offline Hub mirrors. The encoder-only head on a tiny
    XLM-R; the text-to-text head on a tiny mT5 (mt0-large's config), ranking SIQA's answers and COPA's choices."""
    hub = tmp_path / "hub"
    mirrors = {repo: write_mirror(hub, repo) for repo in TASK_MIRRORS["xcopa"]}
    model = [f"model.pretrained='{tiny_model}'", "model.embedded=null"]
    if head == "seq2seq":
        model = ["model=mt0-large", f"model.pretrained='{tiny_mt5}'", "model.architecture=null", "model.head=seq2seq"]
    overrides = [
        *mirror_overrides("xcopa", mirrors),
        "intermediate=siqa",
        f"intermediate.task.hub_id='{siqa}'",
        "+intermediate.trainer.max_steps=2",
        *model,
        f"paths.cache_dir='{tmp_path / 'cache'}'",
        *FAST,
        "trainer.max_steps=2",
        "data.batch_size=4",
    ]
    torch.manual_seed(0)
    results = run(compose_config(overrides, output_dir=tmp_path / "run"))
    stages = results["stages"]
    assert [(s["stage"], s["task"], s["steps_run"]) for s in stages] == [
        ("intermediate", "siqa", 2),
        ("target", "xcopa", 2),
    ]
    assert stages[0]["data_source"] == str(siqa) and 0.0 <= stages[0]["selected_val_acc"] <= 1.0
    assert stages[1]["initialized_from"] == str(tmp_path / "run" / "stages" / "siqa" / "encoder")
    assert results["task_label"] == "siqa-xcopa" and list(results["accuracy"]) == XCOPA_LANGS
