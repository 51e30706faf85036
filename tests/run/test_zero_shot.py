"""Prompted zero-shot evaluation (#30 item 2), offline on a tiny random mT5: finetune=none tests the weights as
loaded, xrobust-eval tests a finished job's kept weights under that job's own config, finetune=none with a fresh
classifier head is refused, and the report gives the median and max accuracy over a template sweep."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import ROOT, compose_config, run_cli, run_report
from helpers.small_runs import small_sample
from helpers.tiny_models import tiny_checkpoint
from omegaconf import OmegaConf

from xrobust.config.checks import validate
from xrobust.errors import XrobustError
from xrobust.eval import job_config
from xrobust.run.results import PREDICTIONS_FILE, RESULTS_FILE
from xrobust.run.stages import fitted_stage
from xrobust.train import run

QUIET = ["logger=none", "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict[str, Path]:
    """Two tiny random mT5 checkpoints (same tokenizer, different weights) and the cut-down sample."""
    root = tmp_path_factory.mktemp("zero-shot")
    data = root / "sample"
    data.mkdir()
    return {
        "a": tiny_checkpoint(root / "mt5-a", "mt5", seed=0),
        "b": tiny_checkpoint(root / "mt5-b", "mt5", seed=1),
        "data": small_sample(data),
    }


def seq2seq_run(pretrained: Path, data: Path, out: Path, *extra: str) -> list[str]:
    """A run of the tiny mT5 with the text-to-text head on the small sample (7 test items per language)."""
    model = ["model=mt0-large", f"model.pretrained={pretrained}", "model.architecture=null", "model.head=seq2seq"]
    data_args = ["task=sample", f"data.local_dir={data}", "data.batch_size=8", "data.max_length=48"]
    return [*QUIET, *model, *data_args, f"paths.cache_dir={out / 'cache'}", *extra]


def lm_state(folder: Path) -> dict[str, torch.Tensor]:
    from transformers import AutoModelForSeq2SeqLM

    return AutoModelForSeq2SeqLM.from_pretrained(folder).state_dict()


def run_eval(args: list[str], cwd: Path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    command = [sys.executable, "-m", "xrobust.eval", *args]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=600, env=env)


def predictions(folder: Path) -> list[str]:
    return (folder / PREDICTIONS_FILE).read_text(encoding="utf-8").splitlines()


def test_finetune_none_tests_the_loaded_weights_without_a_step(tiny, tmp_path):
    """No optimizer step: after testing, every weight of the LM is the checkpoint's own; results.json says nothing
    was fitted or selected and records the prompt template."""
    cfg = compose_config(seq2seq_run(tiny["a"], tiny["data"], tmp_path, "finetune=none"), tmp_path)
    task = validate(cfg)
    with fitted_stage(cfg, task, str(tiny["a"])) as job:
        job.trainer.test(job.module, datamodule=job.datamodule, ckpt_path=job.selected, verbose=False)
        tested = job.module.model.state_dict()
        assert job.trainer.global_step == 0 and job.selected is None
    loaded = lm_state(tiny["a"])
    assert loaded and all(torch.equal(tested[f"model.{key}"], value) for key, value in loaded.items())

    results = run(cfg)
    assert results["model_selection"]["best_val_acc"] is None and results["model_selection"]["steps_run"] == 0
    assert results["model"]["trainable_parameters"] == 0
    assert results["prompt_template"]["name"] == "mt5"
    assert set(results["n_examples"].values()) == {7} and (tmp_path / PREDICTIONS_FILE).is_file()
    assert not (tmp_path / "checkpoints").exists()


def test_finetune_none_with_a_classifier_head_is_one_line_naming_both(tmp_path):
    result = run_cli([*QUIET, "finetune=none", f"hydra.run.dir={tmp_path / 'run'}"], cwd=tmp_path)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    assert lines[0].startswith("xrobust: error:") and "finetune=none" in lines[0] and "model.head" in lines[0]


def test_eval_retests_a_finished_jobs_kept_weights(tiny, tmp_path):
    """xrobust-eval ckpt_path=<job> gives the job's own accuracy and predictions. Then the kept checkpoint is made
    to hold another model's weights (tiny b): eval now predicts exactly what b predicts as loaded, so it tests
    the kept weights, not the pretrained ones its config names."""
    job = tmp_path / "job"
    train = seq2seq_run(tiny["a"], tiny["data"], tmp_path, "trainer.max_steps=2", "trainer.max_epochs=1")
    trained = run_cli([*train, "trainer.val_check_interval=2", f"hydra.run.dir={job}"], cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr[-3000:]
    (kept,) = (job / "checkpoints").glob("*.ckpt")

    again = run_eval([f"ckpt_path={job}", f"hydra.run.dir={tmp_path / 'again'}"], cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    first, second = (json.loads((d / RESULTS_FILE).read_text()) for d in (job, tmp_path / "again"))
    assert second["accuracy"] == first["accuracy"] and predictions(tmp_path / "again") == predictions(job)
    assert second["tested_weights"] == {"job": str(job.resolve()), "checkpoint": str(kept.resolve())}
    assert second["model_selection"]["steps_run"] == 0

    checkpoint = torch.load(kept, map_location="cpu", weights_only=True)
    other = lm_state(tiny["b"])
    state = checkpoint["state_dict"]
    lm = "model.model."  # TransferModule.model (RankClassifier).model (the LM)
    checkpoint["state_dict"] = {k: other[k.removeprefix(lm)] if k.startswith(lm) else v for k, v in state.items()}
    torch.save(checkpoint, kept)
    swapped = run_eval([f"ckpt_path={kept}", f"hydra.run.dir={tmp_path / 'swapped'}"], cwd=tmp_path)
    as_loaded = run_eval(
        [*seq2seq_run(tiny["b"], tiny["data"], tmp_path), f"hydra.run.dir={tmp_path / 'b'}"], cwd=tmp_path
    )
    assert swapped.returncode == 0 and as_loaded.returncode == 0, swapped.stderr[-2000:] + as_loaded.stderr[-2000:]
    assert predictions(tmp_path / "b") != predictions(job)  # else the swap could not show which weights were tested
    assert predictions(tmp_path / "swapped") == predictions(tmp_path / "b")


def test_eval_applies_key_overrides_to_the_jobs_own_config_and_refuses_groups(tmp_path):
    (tmp_path / ".hydra").mkdir()
    OmegaConf.save(
        {"ckpt_path": "last", "task": {"template": "mt5"}, "eval": {"perturbed": False}},
        tmp_path / ".hydra/config.yaml",
    )
    cfg = job_config(tmp_path, ["ckpt_path=x", "task.template=gpt3_style", "eval.perturbed=true", "+seed=3"])
    assert cfg.task.template == "gpt3_style" and cfg.eval.perturbed is True and cfg.seed == 3 and cfg.ckpt_path is None
    with pytest.raises(XrobustError, match=r"trainer=gpu picks a config group"):
        job_config(tmp_path, ["trainer=gpu"])
    with pytest.raises(XrobustError, match=r"task.templat=a: the job's config has no task.templat"):
        job_config(tmp_path, ["task.templat=a"])


def test_eval_of_a_job_with_an_intermediate_stage_builds_from_the_stages_encoder(tmp_path):
    job = {
        "ckpt_path": "last",
        "task_label": "${intermediate.name}-${task.name}",
        "task": {"name": "xcopa"},
        "intermediate": {"name": "${intermediate.task.name}", "task": {"name": "xnli"}},
        "model": {"pretrained": "hub/model", "embedded": None},
    }
    (tmp_path / ".hydra").mkdir()
    OmegaConf.save(job, tmp_path / ".hydra/config.yaml")
    with pytest.raises(XrobustError, match=r"intermediate=xnli: .*stages/xnli/encoder holds no finished stage"):
        job_config(tmp_path, [])
    encoder = tmp_path / "stages" / "xnli" / "encoder"
    encoder.mkdir(parents=True)
    (encoder / "stage.json").write_text("{}")
    cfg = job_config(tmp_path, [])
    assert cfg.intermediate is None and cfg.task_label == "xnli-xcopa" and cfg.model.pretrained == str(encoder)


def write_template_job(root: Path, template: str, language: str | None, accuracy: dict[str, float]) -> None:
    """A finished zero-shot job of one prompt template, as xrobust writes it (predictions to match)."""
    folder = root / f"mt0-xxl_none_xnli_{template}_s1"
    folder.mkdir(parents=True)
    n = 10
    lines = ["lang\tid\tgold\tpred"]
    for lang, acc in accuracy.items():
        lines += [f"{lang}\t{i}\t0\t{0 if i < round(acc * n) else 1}" for i in range(n)]
    (folder / PREDICTIONS_FILE).write_text("\n".join(lines) + "\n")
    entry = {"input": "{premise} {hypothesis}"} | ({"language": language} if language else {})
    results = {
        "task": "xnli",
        "model": {"name": "mt0-xxl", "num_parameters": 13},
        "noise": {"name": "none"},
        "seed": 1,
        "source_language": "en",
        "accuracy": accuracy,
        "n_examples": dict.fromkeys(accuracy, n),
        "predictions_file": PREDICTIONS_FILE,
        "config": {"seed": 1, "task": {"name": "xnli", "template": template, "templates": {template: entry}}},
    }
    (folder / RESULTS_FILE).write_text(json.dumps(results))


def test_report_gives_median_and_max_over_templates_naming_them(tmp_path, capsys):
    """Three English templates and one French one: per language the median and max over the English three (the
    best one named), French also over its own template; the rows of each template stay apart in results.md."""
    write_template_job(tmp_path, "gpt3", None, {"en": 0.9, "fr": 0.5, "de": 0.4})
    write_template_job(tmp_path, "can_we_infer", None, {"en": 0.6, "fr": 0.7, "de": 0.4})
    write_template_job(tmp_path, "crowdsource", None, {"en": 0.8, "fr": 0.6, "de": 0.3})
    write_template_job(tmp_path, "can_we_infer_fr", "fr", {"en": 0.2, "fr": 0.8, "de": 0.1})
    code, out, err = run_report([str(tmp_path), "--n-boot", "10"], capsys)
    assert code == 0, err
    rows = {(r["lang"], r["prompts"]): r for r in csv_rows(tmp_path / "report" / "templates.csv")}
    assert set(rows) == {("en", "en"), ("fr", "en"), ("fr", "fr"), ("de", "en"), ("targets mean", "en")}
    assert rows[("en", "en")]["templates"] == "3"
    assert float(rows[("en", "en")]["median"]) == pytest.approx(0.8) and rows[("en", "en")]["best"] == "gpt3"
    assert float(rows[("fr", "en")]["max"]) == pytest.approx(0.7) and rows[("fr", "en")]["best"] == "can_we_infer"
    assert rows[("fr", "fr")]["templates"] == "1" and float(rows[("fr", "fr")]["max"]) == pytest.approx(0.8)
    assert rows[("de", "en")]["best"] == "can_we_infer/gpt3"
    assert float(rows[("targets mean", "en")]["median"]) == pytest.approx(0.45)
    assert rows[("en", "en")]["names"] == "can_we_infer,crowdsource,gpt3"
    text = (tmp_path / "report" / "templates.md").read_text()
    assert (
        "can_we_infer,crowdsource,gpt3" in text
        and "| mt0-xxl, none | fr | en | 3 | 60.0 | 70.0 | can_we_infer |" in text
    )
    results_md = (tmp_path / "report" / "results.md").read_text()
    assert "| task.template |" in results_md and "| none | can_we_infer_fr |" in results_md


def csv_rows(path: Path) -> list[dict]:
    import csv

    with open(path, encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_evaluate_config_is_train_with_finetune_none():
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("evaluate", overrides=["model=mt0-xxl", "task=xnli", "model.head=seq2seq"])
    assert cfg.finetune.method == "none" and cfg.ckpt_path is None and cfg.optim.lr == 1.0e-5
