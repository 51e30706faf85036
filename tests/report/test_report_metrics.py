"""The report is generic over a task kind's headline metric: a kind whose `metrics` start with f1 gets tables, CSV
columns, the difference legend, selection and W&B keys named f1, never accuracy; two metrics in one task are refused
in one line, and so is a difference of a metric that is not the share of items right."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from helpers import run_report

from xrobust.errors import XrobustError
from xrobust.lightning.loggers import summary_metrics
from xrobust.run.predictions import predictions_tsv
from xrobust.run.run_result import RunResult

LANGS = ["en", "de", "fr"]
N = 60
MODELS = {"big": 1_000_000_000, "small": 100_000_000}


def write_job(root: Path, model: str, seed: int, right: int, metric: str | None, task: str = "toy", **extra) -> Path:
    """A finished job right on its first `right` items per language; results.json records `metric` as the kind's
    headline (its `metrics`; None: an accuracy job, which writes no `metrics`)."""
    folder = root / f"{task}_{model}_s{seed}"
    folder.mkdir(parents=True)
    rows = {lang: [(i, i % 3, i % 3 if i < right else (i + 1) % 3) for i in range(N)] for lang in LANGS}
    perturbed = {lang: [(i, g, g if i < right - 6 else (g + 1) % 3) for i, g, _ in rows[lang]] for lang in LANGS}
    (folder / "predictions.tsv").write_text(predictions_tsv(rows, perturbed))
    scores = dict.fromkeys(LANGS, right / N)
    results = {
        "schema_version": 2,
        "contamination": False,
        "task": task,
        "model": {"name": model, "num_parameters": MODELS[model], "family": "fam"},
        "noise": {"name": "none"},
        "seed": seed,
        "source_language": "en",
        "accuracy": scores,
        "n_examples": dict.fromkeys(LANGS, N),
        "majority_class_accuracy": dict.fromkeys(LANGS, 1 / 3),
        "perturbation": {"radius": 0.1},
        "perturbed_accuracy": dict.fromkeys(LANGS, (right - 6) / N),
        "english_accuracy": right / N,
        "target_mean": right / N,
        "transfer_gap": 0.0,
        "predictions_file": "predictions.tsv",
        "model_selection": {"on": "dev-en", "best_val_acc": 0.5 + right / 1000},
        "config": {"seed": seed, "model": {"name": model}, "optim": {"lr_scale": 1}},
        "task_group": {"name": "grp", "tasks": ["toy"]},
        **extra,
    }
    if metric is not None:
        results["metrics"] = {metric: scores, "accuracy": scores}
    (folder / "results.json").write_text(json.dumps(results))
    return folder


def f1_sweep(root: Path) -> Path:
    for seed in (1, 2):
        write_job(root, "big", seed, 45 + seed, "f1")
        write_job(root, "small", seed, 30 + seed, "f1")
    return root


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_every_table_of_an_f1_kind_says_f1(tmp_path, capsys):
    sweep, out = f1_sweep(tmp_path / "sweep"), tmp_path / "out"
    args = [str(sweep), "--out", str(out), "--n-boot", "50", "--latex", "--select-on", "dev-en"]
    code, stdout, stderr = run_report(args, capsys)
    assert code == 0, stderr
    md = (out / "results.md").read_text()
    assert "## toy: test f1 (%)" in md and "accuracy" not in md
    assert "majority class" not in md  # the majority class's accuracy is no f1: not in an f1 column
    tidy = read_csv(out / "results_tidy.csv")
    assert {"f1", "perturbed_f1"} <= set(tidy[0]) and not {"accuracy", "perturbed_accuracy"} & set(tidy[0])
    row = next(r for r in tidy if r["model"] == "big" and r["seed"] == "1" and r["lang"] == "de")
    assert float(row["f1"]) == pytest.approx(46 / N) and float(row["perturbed_f1"]) == pytest.approx(40 / N)
    diff = read_csv(out / "size_diff.csv")
    assert {"larger_f1", "smaller_f1"} <= set(diff[0]) and "larger_accuracy" not in diff[0]
    standard = [r for r in diff if r["measure"] == "f1"]
    assert standard and float(standard[0]["larger_f1"]) == pytest.approx(46.5 / N)
    assert "Cells: f1 difference in points" in (out / "size_diff.md").read_text()
    assert "test f1 (\\%)" in (out / "tables.tex").read_text()
    selection = (out / "selection.md").read_text()
    assert "mean dev-en f1" in selection and "No target-language f1 is read" in selection
    assert "Task group grp (f1 %)" in (out / "groups.md").read_text()


def test_the_wandb_summary_names_the_headline_metric(tmp_path):
    folder = write_job(tmp_path, "big", 1, 45, "f1")
    summary = summary_metrics(RunResult.read(folder / "results.json").to_dict())
    assert {"english_f1", "test/f1/de"} <= set(summary) and "test/acc/de" not in summary
    plain = write_job(tmp_path, "small", 1, 45, None)
    assert {"english_accuracy", "test/acc/de"} <= set(summary_metrics(RunResult.read(plain / "results.json").to_dict()))


def test_results_json_names_the_headline_metric_first_and_files_without_metrics_are_accuracy(tmp_path):
    assert RunResult.read(write_job(tmp_path, "big", 1, 45, "f1") / "results.json").metric_names == ("f1", "accuracy")
    assert RunResult.read(write_job(tmp_path, "small", 1, 45, None) / "results.json").metric_names == ("accuracy",)
    data = json.loads((tmp_path / "toy_big_s1" / "results.json").read_text())
    data["metrics"] = {"accuracy": {lang: 0.1 for lang in LANGS}, "f1": data["accuracy"]}  # reordered: refused
    with pytest.raises(XrobustError, match=r"'metrics' must map .* the headline \(first\) as 'accuracy'"):
        RunResult.from_dict(data, "here")


def test_two_headline_metrics_in_one_task_are_one_error_line(tmp_path, capsys):
    sweep = tmp_path / "sweep"
    write_job(sweep, "big", 1, 45, "f1")
    write_job(sweep, "small", 1, 30, None)
    code, _, stderr = run_report([str(sweep), "--n-boot", "50"], capsys)
    assert code == 2 and stderr.count("\n") == 1
    assert stderr.startswith("xrobust-report: error: ") and "headline metric is" in stderr
    assert "f1" in stderr and "accuracy" in stderr


def test_tasks_of_different_metrics_each_keep_their_own_column(tmp_path, capsys):
    sweep = tmp_path / "sweep"
    group = {"task_group": {"name": "grp", "tasks": ["other", "toy"]}}
    for model, right in (("big", 45), ("small", 30)):
        write_job(sweep, model, 1, right, "f1", **group)
        write_job(sweep, model, 1, right, None, task="other", **group)
    code, stdout, stderr = run_report([str(sweep), "--out", str(tmp_path / "out"), "--n-boot", "50"], capsys)
    assert code == 0, stderr
    assert "## other: test accuracy (%)" in stdout and "## toy: test f1 (%)" in stdout
    tidy = read_csv(tmp_path / "out" / "results_tidy.csv")
    assert {(r["task"], bool(r["accuracy"]), bool(r["f1"])) for r in tidy} == {
        ("other", True, False),
        ("toy", False, True),
    }
    diff = read_csv(tmp_path / "out" / "size_diff.csv")
    assert {(r["task"], r["measure"]) for r in diff if r["measure"] != "perturbed"} == {
        ("other", "accuracy"),
        ("toy", "f1"),
    }
    assert "Task group grp (% of other accuracy, toy f1)" in stdout


def test_a_difference_of_a_metric_that_is_not_the_share_right_is_refused_by_name(tmp_path, capsys):
    """The differences pair items right or wrong: an f1 that predictions.tsv does not give is one error line."""
    sweep = f1_sweep(tmp_path / "sweep")
    path = sweep / "toy_big_s1" / "results.json"
    data = json.loads(path.read_text())
    data["accuracy"] = data["metrics"]["f1"] = dict.fromkeys(LANGS, 0.5)
    path.write_text(json.dumps(data))
    code, _, stderr = run_report([str(sweep), "--out", str(tmp_path / "out"), "--n-boot", "50"], capsys)
    assert code == 2 and stderr.startswith("xrobust-report: error: ")
    assert "f1 from predictions 0.7667 differs from results.json's 0.5000" in stderr and "no share" in stderr
