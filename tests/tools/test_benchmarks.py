"""The benchmarks run, report every field, and the xrobust and HF Trainer paths agree; no timing is asserted."""

from __future__ import annotations

import json
import os
from dataclasses import replace

import pytest
import torch
from helpers import CONF_DIR
from hydra.utils import instantiate

from benchmarks import grid, levers, noise_overhead, throughput
from benchmarks.measure import Spec, step_examples, train_rate
from benchmarks.paths import run
from benchmarks.rounds import markdown_table

# The packaged sample (no ../shared/data needed), a few steps, a few examples per language, one thread.
TINY = ["--data", "/nonexistent", "--steps", "3", "--warmup-steps", "1", "--rounds", "1"]
TINY += ["--max-eval-examples", "8", "--threads", "1"]


@pytest.fixture(autouse=True)
def torch_threads():
    """The benchmark paths set torch's thread count for their process (Spec.threads); the tests after these ones
    run in the same process and must get the machine's count back (a 1-thread trajectory is another run)."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_step_sizes_and_rate():
    assert step_examples(70, 32, 5) == [32, 32, 6, 32, 32]
    assert train_rate([0.0, 1.0, 3.0], [32, 32, 32], warmup=1) == pytest.approx(64 / 3)
    with pytest.raises(ValueError):
        train_rate([1.0], [32], warmup=1)


def test_agreement_tolerates_only_near_ties():
    ours = {"predictions": {"de": {"1": 0, "2": 1}}, "target_mean": 0.5}
    near_tie = {"predictions": {"de": {"1": 0, "2": 2}}, "margins": {"de": {"1": 3.0, "2": 1e-6}}, "target_mean": 0.5}
    assert throughput.agreement(ours, near_tie, 1e-3) | {"max_margin_of_differing": 0} == {
        "compared": 2,
        "differ": 1,
        "max_margin_of_differing": 0,
        "accuracy_difference": 0.0,
        "ok": True,
    }
    clear = {**near_tie, "margins": {"de": {"1": 3.0, "2": 0.5}}}
    assert not throughput.agreement(ours, clear, 1e-3)["ok"]


def test_noise_overhead_measures_every_noise_config():
    """Each conf/noise option at its defaults (none, the baseline, first), then the variants; every row composes."""
    rows = noise_overhead.noise_rows()
    labels = [label for label, _, _ in rows]
    assert labels[0] == "none"
    assert {path.stem for path in (CONF_DIR / "noise").glob("*.yaml")} <= set(labels)
    for label, overrides, _ in rows:
        noise = instantiate(noise_overhead.compose_cfg(overrides).noise, _partial_=True)()
        assert label.startswith(noise.name)


def test_markdown_table():
    assert markdown_table(["a", "b"], [["1", "2"]]).splitlines() == ["| a | b |", "|---|---|", "| 1 | 2 |"]


@pytest.mark.parametrize("reference_path", ["hf", "hf_tuned"])
def test_same_weights_give_the_same_predictions_through_both_evaluation_paths(me5_dir, tmp_path, reference_path):
    """xrobust's evaluation (length-sorted, inference_mode) against the HF Trainer's, as written and tuned (its sets
    sorted by length, predictions mapped back to their rows), in this process."""
    spec = Spec(task="sample", data_dir=None, test_split="test", steps=0, max_eval_examples=8, threads=1)
    ours = run(Spec(**{**vars(spec), "save_model_dir": str(tmp_path)}))
    reference = run(Spec(**{**vars(spec), "path": reference_path, "model_dir": str(tmp_path)}))
    ours, reference = json.loads(json.dumps(ours)), json.loads(json.dumps(reference))
    assert ours["eval_examples"] == reference["eval_examples"] == 6 * 8
    assert throughput.agreement(ours, reference, 1e-3)["ok"]
    assert ours["accuracy"] == pytest.approx(reference["accuracy"], abs=1 / 8)


@pytest.mark.slow
def test_throughput_benchmark_runs_and_agrees(me5_dir, tmp_path, capsys):
    out = tmp_path / "throughput.json"
    assert throughput.main([*TINY, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "| xrobust (defaults), " in printed and "| HF Trainer, tuned, " in printed and "AGREE" in printed
    report = json.loads(out.read_text())
    assert set(report["summary"]) == {"xrobust", "xrobust_grouped", "hf_tuned", "hf", "pad128"}
    for figures in report["summary"].values():
        assert figures["train_examples_per_s"] > 0 and figures["eval_examples_per_s"] > 0
        assert figures["peak_rss_mb"] > 0 and 0 <= figures["target_mean"] <= 1
    assert report["agreement"]["ok"] and report["agreement"]["compared"] == 6 * 8


@pytest.mark.slow
def test_levers_benchmark_runs(me5_dir, tmp_path, capsys):
    out = tmp_path / "levers.json"
    assert levers.main([*TINY, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "tokenization cache" in printed
    report = json.loads(out.read_text())
    labels = set(report["levers"])
    assert {*levers.LEVERS, *levers.OPT_IN} <= labels and any(label.startswith("bf16 autocast") for label in labels)
    assert "torch.compile's compile time" in printed
    assert report["tokenization_cache"]["first_s"] > 0


def test_grid_benchmark_runs_the_same_jobs_one_and_two_at_a_time(me5_dir, tmp_path, capsys):
    """Hydra's basic launcher against its joblib launcher on a two-job slice of the CPU size grid."""
    out = tmp_path / "grid.json"
    tiny = ["model=me5-small-6l", "noise=none,rs_rp", "trainer.max_epochs=1", "trainer.limit_train_batches=2"]
    assert grid.main(["--concurrent", "1,2", "--out", str(out), "--", *tiny]) == 0
    assert f"| 2 | {max(os.cpu_count() // 2, 1)} | 2 |" in capsys.readouterr().out  # two at once, half the cores each
    sweeps = json.loads(out.read_text())["sweeps"]
    assert [sorted(s["jobs"]) for s in sweeps] == [sorted(sweeps[0]["jobs"])] * 2 and len(sweeps[0]["jobs"]) == 2


def test_packing_is_a_lever_measured_beside_the_padded_default():
    """make bench's packed row: the default's spec with data.packing=true, trained and evaluated in the same rounds
    (the run itself: tests/tools/test_gpu_check.py's packed-vs-padded dry run)."""
    base = Spec(task="sample", data_dir=None, test_split="test", steps=3)
    specs = levers.lever_specs(base)
    packed = specs[levers.PACKED]
    assert packed.overrides == ["data.packing=true"] and packed.steps == 3 and packed.evaluate
    assert replace(packed, overrides=[]) == specs["defaults"]
