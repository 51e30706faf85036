"""results.json through its one owner (xrobust/run/run_result.py): written and read back unchanged, a file of an unknown
schema version refused in one line, files from before the version read as version 1; the contamination flag from
model.training_mixture on a tiny run and in the report; the prompt template of the text-to-text head."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from helpers import FAST, compose_config, run_report
from helpers.tiny_models import tiny_checkpoint
from omegaconf import OmegaConf, open_dict

from xrobust.config.checks import validate
from xrobust.data.task import TaskSpec
from xrobust.errors import XrobustError
from xrobust.run.hashing import config_hash
from xrobust.run.results import contamination, prompt_template
from xrobust.run.run_result import SCHEMA_VERSION, ModelRecord, RunResult
from xrobust.train import run

LANGS = ["en", "de", "fr"]
N = 30


def version_1(task: str = "toy", model: str = "big", params: int = 1_000, seed: int = 1, right: int = 20) -> dict:
    """A results.json as xrobust wrote it before schema_version: the family only in the config snapshot."""
    return {
        "config_hash": f"{model}{seed}",
        "task": task,
        "model": {"name": model, "num_parameters": params},
        "noise": {"name": "none"},
        "seed": seed,
        "source_language": "en",
        "accuracy": dict.fromkeys(LANGS, right / N),
        "n_examples": dict.fromkeys(LANGS, N),
        "majority_class_accuracy": dict.fromkeys(LANGS, 1 / 3),
        "predictions_file": "predictions.tsv",
        "config": {"model": {"name": model, "family": "fam"}, "seed": seed},
    }


def version_2(contaminated: bool, **fields) -> dict:
    """The same job as xrobust writes it now: the family in `model`, and whether the job is zero-shot."""
    results = version_1(**fields) | {"schema_version": 2, "contamination": contaminated}
    results["model"]["family"] = "fam"
    return results


def write_job(root: Path, results: dict, right: int) -> Path:
    """A finished job's folder: results.json and predictions.tsv, right on the first `right` items per language."""
    folder = root / f"{results['model']['name']}_s{results['seed']}"
    folder.mkdir(parents=True)
    rows = [f"{lang}\t{i}\t{i % 3}\t{i % 3 if i < right else (i + 1) % 3}" for lang in LANGS for i in range(N)]
    (folder / "predictions.tsv").write_text("\n".join(["lang\tid\tgold\tpred", *rows]) + "\n")
    (folder / "results.json").write_text(json.dumps(results))
    return folder


def test_a_result_is_written_and_read_back_unchanged_with_its_version(tmp_path):
    data = version_1() | {"schema_version": SCHEMA_VERSION, "contamination": True, "stages": [{"stage": "target"}]}
    result = RunResult.from_dict(data, "here")
    assert result.model == ModelRecord(name="big", num_parameters=1_000)
    result.write(tmp_path / "results.json")
    written = json.loads((tmp_path / "results.json").read_text())
    assert list(written)[:2] == ["schema_version", "config_hash"] and written["schema_version"] == 2
    # Read-outs the run did not have are left out, as before the schema had an owner.
    assert not {"generalized", "perturbation", "perturbed_accuracy", "last_epoch_accuracy"} & set(written)
    again = RunResult.read(tmp_path / "results.json")
    assert again == result and again.to_dict() == written


@pytest.mark.parametrize("version", [3, 0, "2", True])
def test_an_unknown_schema_version_is_refused_in_one_line_naming_the_file(version, tmp_path, capsys):
    job = write_job(tmp_path / "sweep", version_1() | {"schema_version": version, "contamination": False}, 20)
    with pytest.raises(XrobustError, match=r"schema_version .* is not one this xrobust reads \(1, 2\)"):
        RunResult.read(job / "results.json")
    code, stdout, err = run_report([str(tmp_path / "sweep"), "--out", str(tmp_path / "out")], capsys)
    assert code == 2 and stdout == "" and err.count("\n") == 1
    assert err.startswith(f"xrobust-report: error: {job / 'results.json'}: schema_version {version!r} is not one")


def test_a_version_2_file_must_say_whether_it_is_zero_shot(tmp_path):
    with pytest.raises(XrobustError, match=r"^here: missing required field\(s\) contamination$"):
        RunResult.from_dict(version_1() | {"schema_version": 2}, "here")
    with pytest.raises(XrobustError, match=r"^here: 'contamination' must be true or false$"):
        RunResult.from_dict(version_1() | {"schema_version": 2, "contamination": "yes"}, "here")


def test_a_file_without_schema_version_is_read_as_version_1():
    old = RunResult.from_dict(version_1() | {"a_later_field": [1]}, "old")
    assert old.schema_version == 1 and old.contamination is None
    assert old.model.family == "fam"  # from config.model.family, where version 1 files kept it
    assert old.model_selection.best_val_acc is None and old.extra == {"a_later_field": [1]}
    assert old.to_dict()["a_later_field"] == [1]


def test_contamination_counts_the_task_and_the_intermediate_task():
    def flag(*overrides: str) -> bool:
        return contamination(compose_config(list(overrides)))

    assert flag("model=mt0-large", "task=pawsx")  # xP3 holds PAWS-X (conf/model/mt0-large.yaml)
    assert not flag("model=mt0-large", "task=xnli") and not flag("model=mt0-large", "task=xcopa")
    assert flag("model=mt0-large", "task=xcopa", "intermediate=pawsx")  # its intermediate stage is not new to it
    assert not flag("model=mt0-large", "task=xcopa", "intermediate=xnli")
    assert not flag("model=xlmr-base", "task=pawsx")  # model.training_mixture: [] (conf/model/base/hub.yaml)
    assert flag("model=xlmr-base", "task=xnli", "model.training_mixture=[xnli]")
    assert not flag("task=pawsx")  # the embedded me5-small declares no mixture


def test_a_mixture_that_is_not_a_list_of_names_is_one_line_naming_the_key(tmp_path):
    cfg = compose_config(["model=mt0-large", "model.training_mixture=pawsx"], output_dir=tmp_path)
    with pytest.raises(XrobustError, match=r"model\.training_mixture='pawsx' \(must be a list of task names"):
        validate(cfg)


def test_keys_the_classifier_never_reads_keep_the_hash_of_jobs_run_before_them(tmp_path):
    """The text-to-text head's keys (under model.head=classifier) and the checkpoint's own facts (its training
    mixture, its base model) are not hashed: a job finished before they existed is still found finished."""
    cfg = compose_config(["model=mt0-large", "task=xnli"], output_dir=tmp_path)
    before = OmegaConf.create(OmegaConf.to_container(cfg))  # untyped, so keys can be removed as if never there
    with open_dict(before):
        for group, key in [("data", "head"), ("module", "head"), ("model", "head"), ("model", "training_mixture")]:
            before[group].pop(key, None)
        before.model.pop("base_model")
        for key in ("verbalizer", "templates", "template"):
            before.task.pop(key)
    assert config_hash(cfg) == config_hash(before)
    other_prompt = compose_config(["model=mt0-large", "task=xnli", "task.template=gpt3_style"], output_dir=tmp_path)
    assert config_hash(other_prompt) == config_hash(cfg)
    text_to_text = ["model=mt0-large", "task=xnli", "model.head=seq2seq"]
    prompted = config_hash(compose_config(text_to_text, output_dir=tmp_path))
    assert prompted != config_hash(compose_config([*text_to_text, "task.template=gpt3_style"], output_dir=tmp_path))


def test_a_tiny_run_on_a_task_of_its_training_mixture_is_flagged(tmp_path):
    folder = tiny_checkpoint(tmp_path / "tiny")
    model = ["model=xlmr-base", f"model.pretrained={folder}", "model.architecture=null", f"paths.cache_dir={tmp_path}"]
    model.append("trainer.limit_test_batches=1")
    flagged = run(compose_config([*FAST, *model, "model.training_mixture=[sample]"], output_dir=tmp_path / "a"))
    assert flagged["contamination"] is True and flagged["schema_version"] == SCHEMA_VERSION
    assert "prompt_template" not in flagged  # the classifier head has no prompt
    assert RunResult.read(tmp_path / "a" / "results.json").to_dict() == json.loads(json.dumps(flagged))
    plain = run(compose_config([*FAST, *model, "model.training_mixture=[xnli]"], output_dir=tmp_path / "b"))
    assert plain["contamination"] is False


def test_the_report_marks_contaminated_rows_and_says_what_the_mark_means(tmp_path, capsys):
    sweep = tmp_path / "sweep"
    for seed in (1, 2):
        write_job(sweep, version_2(True, model="big", params=10_000, seed=seed, right=25), 25)
        write_job(sweep, version_2(False, model="small", seed=seed), 20)
    code, _, err = run_report([str(sweep), "--out", str(tmp_path / "out"), "--n-boot", "200"], capsys)
    assert code == 0, err
    results_md = (tmp_path / "out" / "results.md").read_text()
    first_cells = {line.split("|")[1].strip() for line in results_md.splitlines() if line.startswith("|")}
    assert {"big †", "small"} <= first_cells and "big" not in first_cells
    assert "† not zero-shot: the model's training mixture (model.training_mixture) holds this task" in results_md
    note = "toy: big is not zero-shot (†): its training mixture holds the task or its intermediate task"
    assert note in results_md and note in (tmp_path / "out" / "size_diff.md").read_text() and note in err
    with open(tmp_path / "out" / "results_tidy.csv", newline="") as handle:
        tidy = list(csv.DictReader(handle))
    assert {(row["model"], row["contamination"]) for row in tidy} == {("big", "True"), ("small", "False")}


def test_a_version_1_sweep_is_reported_without_marks(tmp_path, capsys):
    sweep = tmp_path / "sweep"
    write_job(sweep, version_1(model="big", params=10_000, right=25), 25)
    write_job(sweep, version_1(model="small"), 20)
    code, _, err = run_report([str(sweep), "--out", str(tmp_path / "out"), "--n-boot", "200"], capsys)
    assert code == 0, err
    assert "†" not in (tmp_path / "out" / "results.md").read_text()


def test_the_text_to_text_head_records_its_prompt_template():
    def template(*overrides: str) -> dict | None:
        cfg = compose_config(["model=mt0-large", *overrides])
        return prompt_template(cfg, TaskSpec.from_config(cfg.task))

    assert template("task=xnli") is None  # the classifier head has no prompt
    assert template("task=xnli", "model.head=seq2seq") == {
        "name": "mt5",
        "input": "xnli: premise: {premise} hypothesis: {hypothesis}",
        "verbalizer": ["0", "1", "2"],
        "language": None,
    }
    german = {"input": "{premise} Frage: {hypothesis}", "verbalizer": ["ja", "vielleicht", "nein"], "language": "de"}
    override = "+task.templates.de={input:'{premise} Frage: {hypothesis}',verbalizer:[ja,vielleicht,nein],language:de}"
    chosen = template("task=xnli", "model.head=seq2seq", override, "task.template=de")
    assert chosen == {"name": "de", **german}
    assert template("task=xcopa", "model.head=seq2seq")["verbalizer"] is None  # each row's own choices are ranked
