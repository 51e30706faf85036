"""Task kinds, task groups and intermediate-task training: XCOPA as multiple choice, group scores, stages."""

from __future__ import annotations

import json

import pytest
from helpers import FAST, ROOT, compose_config, run_cli

from xrobust.data.datamodule import TransferDataModule, split_by_item
from xrobust.data.sources import LocalFolderSource, make_source
from xrobust.data.task import TaskSpec
from xrobust.errors import XrobustError
from xrobust.report.collect import collect
from xrobust.report.groups import group_scores
from xrobust.run.stages import intermediate_stage_config
from xrobust.train import run

XCOPA_LANGS = ["et", "ht", "id", "it", "qu", "sw", "ta", "th", "tr", "vi", "zh"]
ROW = {"premise": "The man turned on the faucet.", "choice1": "The toilet filled.", "choice2": "Water flowed."}


def task_spec(name: str) -> TaskSpec:
    return TaskSpec.from_config(compose_config([f"task={name}"]).task)


def jsonl(rows: list[dict]) -> str:
    return "".join(json.dumps(row) + "\n" for row in rows)


@pytest.mark.parametrize("name", ["xnli", "pawsx", "xcopa", "americasnli", "sample"])
def test_task_configs_validate(name):
    task = task_spec(name)
    assert task.kind == ("multiple_choice" if name == "xcopa" else "pair")
    assert len(task.languages) == {"xnli": 15, "pawsx": 7, "xcopa": 11, "americasnli": 10, "sample": 7}[name]


def test_xcopa_english_training_files_are_concatenated_with_item_ids(tmp_path):
    task = task_spec("xcopa")
    first = [{**ROW, "question": "effect", "label": 1, "idx": 0}, {**ROW, "question": "cause", "label": 0, "idx": 1}]
    (tmp_path / "train-en-from-et.jsonl").write_text(jsonl(first))
    (tmp_path / "train-en-from-zh.jsonl").write_text(jsonl(first[:1]))
    rows = LocalFolderSource(task, tmp_path).load("train", "en")
    assert rows["id"] == [0, 1, 0] and rows["label"] == [1, 0, 1] and rows["question"] == ["effect", "cause", "effect"]
    assert set(rows["lang"]) == {"en"}


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", r"dev-et\.jsonl:2: not a JSON object"),
        (json.dumps({**ROW, "question": "effect", "label": 2}), r"dev-et\.jsonl:2: unknown label 2"),
        (json.dumps({**ROW, "question": "why", "label": 0}), r"dev-et\.jsonl:2: unknown question 'why'"),
        (json.dumps({**ROW, "choice2": " ", "question": "cause", "label": 0}), r"dev-et\.jsonl:2: .*'choice2'"),
    ],
)
def test_bad_jsonl_rows_are_refused_with_file_and_line(tmp_path, line, message):
    good = json.dumps({**ROW, "question": "cause", "label": 0, "idx": 50})
    (tmp_path / "dev-et.jsonl").write_text(good + "\n" + line + "\n")
    with pytest.raises(XrobustError, match=message):
        LocalFolderSource(task_spec("xcopa"), tmp_path).load("dev", "et")


def test_held_out_english_dev_keeps_every_rendering_of_an_item_on_one_side():
    import datasets

    rows = datasets.Dataset.from_dict({"id": [i % 10 for i in range(100)], "x": list(range(100))})
    train, dev = split_by_item(rows, 0.2, seed=1)
    assert len(dev) == 20 and len(train) == 80
    assert not set(train["id"]) & set(dev["id"])


def test_multiple_choice_batch_is_batch_by_choices_by_length(me5_dir, shared_data):
    task = task_spec("xcopa")
    rows = make_source(task, str(shared_data / "xcopa")).load("dev", "tr").select(range(4))
    module = TransferDataModule(task, str(me5_dir), local_dir=str(shared_data / "xcopa"), max_length=64)
    encoded = module._tokenize(rows)
    batch = task.task_kind.collator(module.tokenizer)([encoded[i] for i in range(4)])
    assert batch["input_ids"].shape[:2] == (4, 2) and batch["attention_mask"].shape == batch["input_ids"].shape
    assert batch["labels"].tolist() == rows["label"] and batch["id"].tolist() == rows["id"]
    # Each choice is (premise + the question's prompt, choice): both choices share the premise.
    text = module.tokenizer.decode(batch["input_ids"][0, 1], skip_special_tokens=True)
    prompt = task.question_prompts[rows[0]["question"]]
    assert rows[0]["premise"] in text and prompt in text and rows[0]["choice2"] in text


def test_generalized_setting_refuses_a_multiple_choice_task(me5_dir, tmp_path):
    with pytest.raises(XrobustError, match="eval.generalized needs a pair task"):
        TransferDataModule(task_spec("xcopa"), str(me5_dir), local_dir=str(tmp_path), generalized=True)


@pytest.fixture(scope="module")
def xcopa_run(me5_dir, shared_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("xcopa")
    overrides = [
        "task=xcopa",
        f"data.local_dir={shared_data / 'xcopa'}",
        "data.test_split=dev",
        "data.heldout=true",
        *FAST,
    ]
    return run(compose_config(overrides, output_dir=out)), out


def test_xcopa_trains_and_reports_accuracy_per_target_language(xcopa_run):
    results, out = xcopa_run
    assert results["task_kind"] == "multiple_choice"
    assert list(results["accuracy"]) == XCOPA_LANGS
    assert set(results["n_examples"].values()) == {50}
    assert all(0.0 <= acc <= 1.0 for acc in results["accuracy"].values())
    # English is the source but XCOPA has no English test set: no English accuracy, hence no transfer gap.
    assert results["english_accuracy"] is None and results["transfer_gap"] is None
    assert results["model_selection"]["on"].startswith("10% of train-en")
    predictions = (out / "predictions.tsv").read_text().splitlines()
    assert len(predictions) == 1 + 11 * 50


def test_noise_methods_train_on_multiple_choice(me5_dir, shared_data, tmp_path):
    synonyms = shared_data / "synonyms" / "counterfitted_neighbors.json"
    for noise in ["rs_rp", "adv", "rs_da"]:
        overrides = [
            "task=xcopa",
            f"data.local_dir={shared_data / 'xcopa'}",
            "data.test_split=dev",
            "data.heldout=true",
            *FAST,
        ]
        overrides += [f"noise={noise}", "trainer.max_steps=1", "trainer.limit_test_batches=1"]
        overrides += [f"noise.neighbours.path={synonyms}"] if noise == "rs_da" else []
        results = run(compose_config(overrides, output_dir=tmp_path / noise))
        assert results["noise"]["name"] == noise and results["model_selection"]["steps_run"] == 1


def test_intermediate_stage_config_swaps_task_and_noise_and_merges_the_rest(tmp_path):
    cfg = compose_config(["task=xcopa", "intermediate=xnli", "noise@intermediate.noise=rs_da", "noise=rs_rp"])
    assert cfg.task_label == "xnli-xcopa" and cfg.intermediate.task.name == "xnli"
    stage = intermediate_stage_config(cfg, tmp_path / "stage")
    assert (stage.task.name, stage.noise.name, stage.intermediate) == ("xnli", "rs_da", None)
    # The stage's noise reads the stage's own task, not the target's.
    assert list(stage.noise.text_fields) == ["premise", "hypothesis"]
    assert stage.trainer.max_epochs == 3 and stage.data.local_dir is None and not stage.data.with_test_sets
    assert stage.paths.output_dir == str(tmp_path / "stage") and stage.task_label == "xnli"
    assert cfg.noise.name == "rs_rp" and cfg.task.name == "xcopa"


def test_intermediate_stage_then_target_stage(me5_dir, shared_data, tmp_path):
    overrides = [
        "task=xcopa",
        f"data.local_dir={shared_data / 'xcopa'}",
        "data.test_split=dev",
        "data.heldout=true",
        *FAST,
        "intermediate=xnli",
        f"intermediate.data.local_dir={shared_data / 'xnli'}",
        "+intermediate.trainer.max_steps=3",
    ]
    results = run(compose_config(overrides, output_dir=tmp_path))
    stages = results["stages"]
    assert [s["stage"] for s in stages] == ["intermediate", "target"]
    assert (stages[0]["task"], stages[0]["steps_run"], stages[1]["task"]) == ("xnli", 3, "xcopa")
    encoder = tmp_path / "stages" / "xnli" / "encoder"
    assert stages[1]["initialized_from"] == str(encoder) and (encoder / "model.safetensors").is_file()
    assert 0.0 <= stages[0]["selected_val_acc"] <= 1.0
    assert results["task_label"] == "xnli-xcopa" and list(results["accuracy"]) == XCOPA_LANGS
    # A re-run (new output folder for the target, same stage folder) reuses the finished stage.
    cfg = compose_config([*overrides, "skip_completed=false"], output_dir=tmp_path)
    again = run(cfg)
    assert again["stages"][0]["config_hash"] == stages[0]["config_hash"]


@pytest.mark.slow
def test_task_group_runs_every_task_and_writes_the_group_score(me5_dir, shared_data, tmp_path):
    sweep = tmp_path / "sweep"
    args = [
        "task_group=robust_xlt",
        f"data.local_dir={shared_data}/${{task.name}}",
        "data.test_split=dev",
        "data.heldout=true",
        *FAST,
        "trainer.max_steps=2",
        "trainer.limit_test_batches=1",
        f"hydra.sweep.dir={sweep}",
    ]
    proc = run_cli(args, cwd=ROOT, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sorted(p.parent.name for p in sweep.glob("*/results.json")) == [
        "me5-small_none_pawsx_s1",
        "me5-small_none_xnli_s1",
    ]
    scores = json.loads((sweep / "group_scores.json").read_text())
    assert len(scores) == 1 and scores[0]["group"] == "robust_xlt" and scores[0]["missing"] == []
    assert scores[0]["score"] == pytest.approx(sum(scores[0]["tasks"].values()) / 2)
    assert "Task group robust_xlt" in proc.stdout
    assert group_scores(collect(sweep)) == scores
