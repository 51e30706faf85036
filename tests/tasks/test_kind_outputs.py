"""What a task kind owns downstream of the model: the metrics its test sets report (into results.json), the columns
of its predictions.tsv rows, and, for the planner, its task's recorded sizes (task.sizes in the task YAML)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import CONF_DIR
from hydra import compose, initialize_config_dir
from omegaconf import open_dict

from xrobust.errors import XrobustError
from xrobust.kinds import get_kind
from xrobust.kinds.pair import PairKind
from xrobust.plan.data import data_stats
from xrobust.run.predictions import scored_test_sets
from xrobust.run.results import kind_metrics, write_predictions
from xrobust.run.run_result import ModelRecord, RunResult


class ScoredPairKind(PairKind):
    """A made-up kind: pairs whose rows also carry the model's confidence, scored by accuracy and a second metric."""

    name = "scored_pair"
    metrics = ("accuracy", "confident_accuracy")
    prediction_columns = ("id", "gold", "pred", "confidence")

    def prediction_rows(self, ids, gold, predicted):
        return [(i, g, p, 0.9 if i % 2 else 0.4) for i, g, p in zip(ids, gold, predicted, strict=True)]

    def score(self, rows):
        confident = [row for row in rows if row[3] > 0.5]
        right = sum(row[1] == row[2] for row in confident)
        accuracy = sum(row[1] == row[2] for row in rows) / len(rows)
        return {"accuracy": accuracy, "confident_accuracy": right / len(confident)}


def result_of(kind, predictions, perturbed=None) -> RunResult:
    """results.json's per-language fields as collect_results fills them from the module's test results."""
    results = scored_test_sets(kind, list(predictions), predictions, perturbed)
    return RunResult(
        task="t",
        model=ModelRecord(name="m", num_parameters=1),
        contamination=False,
        noise={"name": "none"},
        seed=1,
        source_language="en",
        accuracy={name: r[kind.metrics[0]] for name, r in results.items()},
        metrics=kind_metrics(kind, results),
        n_examples={name: r["n"] for name, r in results.items()},
    )


def test_a_kinds_metric_names_and_row_columns_flow_into_results_json_and_predictions_tsv(tmp_path):
    kind = ScoredPairKind()
    predictions = {"en": kind.prediction_rows([0, 1, 2, 3], [0, 1, 2, 0], [0, 1, 1, 1])}
    perturbed = {"en": kind.prediction_rows([0, 1, 2, 3], [0, 1, 2, 0], [1, 1, 2, 0])}
    assert scored_test_sets(kind, ["en"], predictions, perturbed)["en"] == {
        "accuracy": 0.5,
        "confident_accuracy": 0.5,
        "n": 4,
        "perturbed_accuracy": 0.75,
        "perturbed_confident_accuracy": 1.0,
    }
    result_of(kind, predictions).write(tmp_path / "results.json")
    written = json.loads((tmp_path / "results.json").read_text())
    assert written["metrics"] == {"accuracy": {"en": 0.5}, "confident_accuracy": {"en": 0.5}}
    assert RunResult.read(tmp_path / "results.json").metrics == written["metrics"]
    write_predictions(tmp_path / "predictions.tsv", predictions, perturbed, kind)
    lines = (tmp_path / "predictions.tsv").read_text().splitlines()
    assert lines[0].split("\t") == ["lang", *kind.prediction_columns, "perturbed_pred", "perturbed_confidence"]
    assert lines[2].split("\t") == ["en", "1", "1", "1", "0.9", "1", "0.9"]


def test_the_label_kinds_write_what_they_always_wrote(tmp_path):
    """pair and multiple_choice: accuracy alone (no `metrics` in results.json), rows (lang, id, gold, pred)."""
    for name in ("pair", "multiple_choice"):
        kind = get_kind(name)
        predictions = {"de": kind.prediction_rows([1, 0], [0, 2], [0, 1])}
        assert scored_test_sets(kind, ["de"], predictions)["de"] == {"accuracy": 0.5, "n": 2}
        assert "metrics" not in result_of(kind, predictions).to_dict()
        write_predictions(tmp_path / "p.tsv", predictions, {"de": [(0, 2, 2), (1, 0, 1)]}, kind)
        legacy = "lang\tid\tgold\tpred\tperturbed_pred\nde\t0\t2\t1\t2\nde\t1\t0\t0\t1\n"
        assert (tmp_path / "p.tsv").read_text() == legacy


def test_the_planner_reads_a_tasks_sizes_from_its_yaml():
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("plan", overrides=["task=xcopa"])
    stats = data_stats(cfg)
    assert (stats.train_examples, stats.dev_examples, stats.test_examples["qu"]) == (400, 100, 500)
    assert stats.test_tokens["qu"] == pytest.approx(2 * 39.3)  # two choices, one sequence each
    assert "datasets" not in cfg.plan  # conf/plan.yaml keeps no task table
    with open_dict(cfg):
        cfg.task.sizes = {"train": 400, "test": 500}
    with pytest.raises(XrobustError, match=r"task\.sizes\.dev is missing"):
        data_stats(cfg)


def test_a_task_yaml_without_sizes_is_one_planner_line_naming_the_key(tmp_path):
    """A new Hub task's YAML alone makes it trainable; xrobust-plan then names the key its figures go under."""
    (tmp_path / "task").mkdir()
    task = (CONF_DIR / "task" / "pawsx.yaml").read_text().replace("name: pawsx", "name: pawsx_copy")
    (tmp_path / "task" / "pawsx_copy.yaml").write_text(task.split("\nsizes:")[0] + "\n")
    proc = subprocess.run(
        [sys.executable, "-m", "xrobust.plan", f"hydra.searchpath=[file://{tmp_path}]", "task=pawsx_copy"]
        + ["model=xlmr-large", "trainer=gpu"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = [line for line in proc.stdout.splitlines() if "no figures" in line]
    assert lines == [
        "  cost        not planned: xrobust-plan has no figures for task 'pawsx_copy': add task.sizes (examples and "
        "mean tokens of its splits, as conf/task/xnli.yaml has them) to conf/task/pawsx_copy.yaml, or point "
        "data.local_dir at its files to measure them"
    ]
    assert not Path(tmp_path / "outputs").exists()
