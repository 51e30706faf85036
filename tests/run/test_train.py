"""End to end: the real CLI and `run` on the packaged sample with the real embedded encoder."""

from __future__ import annotations

import csv
import dataclasses
import json

import pytest
import torch
from helpers import FAST, ROOT, compose_config, run_cli

from xrobust.run.run_result import SCHEMA_VERSION, WRITTEN_WITH, RunResult
from xrobust.train import main, run

# Every field results.json always holds (RunResult's, less the read-outs a run may not have).
REQUIRED_FIELDS = {f.name for f in dataclasses.fields(RunResult)} - set(WRITTEN_WITH) - {"extra"}

TRAINED_RUN = [
    "logger=csv",
    "checkpoint.keep_after_success=all",  # the tests read last.ckpt back
    "trainer.max_epochs=3",
    "trainer.log_every_n_steps=1",
    "trainer.enable_progress_bar=false",
    "data.max_length=64",
]


@pytest.fixture(scope="module")
def trained_run(me5_dir, tmp_path_factory):
    """Three epochs on the sample with a CSV logger, so the loss curve can be read back."""
    out = tmp_path_factory.mktemp("run")
    results = run(compose_config(TRAINED_RUN, output_dir=out))
    return out, results


def test_results_json_is_complete(trained_run):
    out, returned = trained_run
    results = json.loads((out / "results.json").read_text())
    assert REQUIRED_FIELDS <= set(results)
    assert results == json.loads(json.dumps(returned))
    assert RunResult.read(out / "results.json").to_dict() == results  # read back by its owner, unchanged
    assert results["schema_version"] == SCHEMA_VERSION and results["contamination"] is False
    languages = ["en", "de", "fr", "es", "ru", "zh", "ar"]
    assert list(results["accuracy"]) == languages
    assert all(results["n_examples"][lang] == 66 for lang in languages)
    assert all(results["majority_class_accuracy"][lang] == pytest.approx(1 / 3) for lang in languages)
    targets = [results["accuracy"][lang] for lang in languages[1:]]
    assert results["target_mean"] == pytest.approx(sum(targets) / len(targets))
    assert results["transfer_gap"] == pytest.approx(results["accuracy"]["en"] - results["target_mean"])
    assert results["model"]["num_parameters"] > 117_000_000
    assert results["model"]["trainable_parameters"] < results["model"]["num_parameters"]
    assert results["model"]["family"] == "me5"
    assert 0 < results["model"]["non_embedding_parameters"] < results["model"]["trainable_parameters"]
    assert results["model_selection"]["on"] == "dev-en"
    assert results["noise"] == {"name": "none"}


def test_training_loss_falls(trained_run):
    out, _ = trained_run
    with open(out / "csv" / "metrics.csv") as handle:
        losses = [float(row["train/loss"]) for row in csv.DictReader(handle) if row.get("train/loss")]
    assert len(losses) >= 60
    first, last = losses[:10], losses[-10:]
    assert sum(last) / 10 < sum(first) / 10 - 0.05


def test_predictions_file_pairs_every_test_example(trained_run):
    out, results = trained_run
    lines = (out / "predictions.tsv").read_text().splitlines()
    assert lines[0] == "lang\tid\tgold\tpred"
    assert len(lines) - 1 == sum(results["n_examples"].values())


def test_same_config_in_the_same_folder_is_skipped(trained_run):
    out, _ = trained_run
    before = (out / "results.json").stat().st_mtime_ns
    assert run(compose_config(TRAINED_RUN, output_dir=out)) is None
    assert (out / "results.json").stat().st_mtime_ns == before


def test_checkpoint_holds_the_configured_optimizer_as_plain_values(trained_run):
    """optim.optimizer / optim.scheduler build the optimizer; the checkpoint loads with weights_only=True."""
    out, results = trained_run
    checkpoint = torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    hparams = checkpoint["hyper_parameters"]
    assert hparams["optimizer"] == {
        "_target_": "torch.optim.adamw.AdamW",
        "lr": 2e-4,
        "weight_decay": 0.01,
        "fused": True,
    }
    assert hparams["scheduler"] == {"_target_": "transformers.optimization.get_linear_schedule_with_warmup"}
    groups = checkpoint["optimizer_states"][0]["param_groups"]
    # Biases and LayerNorm weights without weight decay, the rest with optim.weight_decay; the embeddings frozen.
    assert [group["weight_decay"] for group in groups] == [0.01, 0.0]
    assert [group["initial_lr"] for group in groups] == [2e-4, 2e-4]
    # The linear schedule: warm-up over the first 10% of the trainer's steps, then down to zero at the last one.
    total, step = results["model_selection"]["steps_run"], checkpoint["lr_schedulers"][0]["last_epoch"]
    warmup = int(0.1 * total)
    assert warmup < step <= total
    assert [group["lr"] for group in groups] == pytest.approx([2e-4 * (total - step) / (total - warmup)] * 2)


def test_main_returns_the_english_dev_selection_metric(trained_run):
    """What an Optuna sweeper optimises: the selected checkpoint's dev-en accuracy, also for a skipped job."""
    out, results = trained_run
    metric = main(compose_config(TRAINED_RUN, output_dir=out))  # skipped: read back from results.json
    assert isinstance(metric, float) and metric == results["model_selection"]["best_val_acc"]


def test_optimizer_swapped_in_the_config_trains_and_main_returns_its_selection(me5_dir, tmp_path):
    overrides = [*FAST, "trainer.max_steps=2", "trainer.limit_test_batches=1", "checkpoint.keep_after_success=all"]
    overrides.append("optim.optimizer._target_=torch.optim.SGD")
    metric = main(compose_config(overrides, output_dir=tmp_path))
    assert metric == json.loads((tmp_path / "results.json").read_text())["model_selection"]["best_val_acc"]
    checkpoint = torch.load(tmp_path / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert checkpoint["hyper_parameters"]["optimizer"]["_target_"] == "torch.optim.sgd.SGD"
    assert "momentum" in checkpoint["optimizer_states"][0]["param_groups"][0]


def test_cli_prints_the_table_and_writes_results(me5_dir, tmp_path):
    proc = run_cli([*FAST, f"hydra.run.dir={tmp_path}"], cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "transfer gap" in proc.stdout and "targets mean" in proc.stdout
    assert (tmp_path / "results.json").is_file()


def test_cli_unknown_group_option_lists_the_choices(tmp_path):
    proc = run_cli(["model=no-such-model", f"hydra.run.dir={tmp_path}"], cwd=ROOT)
    assert proc.returncode != 0
    assert "Could not find 'model/no-such-model'" in proc.stderr
    assert "me5-small" in proc.stderr


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["task=xnli", "data.local_dir=/nonexistent/xnli"], "data folder /nonexistent/xnli does not exist"),
        (["optim.lr=-1"], "invalid config: optim.lr=-1"),
    ],
)
def test_cli_bad_input_gets_one_line_and_exit_2(tmp_path, extra, message):
    proc = run_cli([*FAST, *extra, f"hydra.run.dir={tmp_path}"], cwd=ROOT)
    assert proc.returncode == 2
    errors = [line for line in proc.stderr.splitlines() if line.startswith("xrobust: error:")]
    assert len(errors) == 1 and message in errors[0]
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("precision", ["bf16-mixed", "16-mixed"])
def test_the_fused_optimizer_clips_in_bf16_and_keeps_lightnings_refusal_in_fp16(me5_dir, precision):
    """Lightning refuses to clip for a fused optimizer under any mixed precision (fp16's GradScaler unscales inside
    the step); bf16 has no scaler, so the module clips itself there, with the config's fused AdamW."""
    from types import SimpleNamespace

    from hydra.utils import instantiate
    from pytorch_lightning.plugins.precision import MixedPrecision

    cfg = compose_config([])
    module = instantiate(cfg.module, _partial_=True)(
        pretrained=str(me5_dir),
        label_names=["a", "b", "c"],
        test_names=[],
        noise=instantiate(cfg.noise),
        task_kind="pair",
    )
    params = [p for p in module.parameters() if p.requires_grad]
    optimizer = instantiate(cfg.optim.optimizer)(params)
    plugin = MixedPrecision(precision, "cpu")
    module._trainer = SimpleNamespace(
        precision_plugin=plugin, strategy=None, gradient_clip_val=None, gradient_clip_algorithm=None
    )
    for p in params:
        p.grad = torch.ones_like(p)
    assert optimizer.defaults["fused"]
    if precision == "16-mixed":
        with pytest.raises(RuntimeError, match="fused"):
            module.configure_gradient_clipping(optimizer, 1.0, "norm")
        return
    module.configure_gradient_clipping(optimizer, 1.0, "norm")
    assert torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in params])) == pytest.approx(1.0, rel=1e-3)
