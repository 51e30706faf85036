"""xrobust-report on synthetic sweep folders with known predictions: tables, paired bootstrap, refusals."""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import run_report

from xrobust.report.bootstrap import TARGET_MEAN, paired_bootstrap
from xrobust.report.collect import collect
from xrobust.report.diff_tables import SIZE_DIFF_COLUMNS
from xrobust.report.pairing import NOISE_CHANGE, SIZE, compare
from xrobust.report.tables import TIDY_COLUMNS

LANGS = ["en", "de", "fr"]
N = 60
BIG, SMALL = ("big", 1_000_000_000), ("small", 100_000_000)


def write_job(root: Path, model: tuple[str, int], noise: str, seed: int, wrong: dict[str, set[int]], **extra):
    """A finished job whose model is wrong exactly on the item ids in wrong[lang] (gold = id % 3)."""
    name, params = model
    folder = root / f"{name}_{noise}_toy_s{seed}"
    folder.mkdir(parents=True)
    lines = ["lang\tid\tgold\tpred"]
    accuracy = {}
    for lang in LANGS:
        bad = wrong.get(lang, set())
        lines += [f"{lang}\t{i}\t{i % 3}\t{(i + 1) % 3 if i in bad else i % 3}" for i in range(N)]
        accuracy[lang] = 1 - len(bad) / N
    (folder / "predictions.tsv").write_text("\n".join(lines) + "\n")
    targets = [accuracy[lang] for lang in LANGS[1:]]
    results = {
        "config_hash": f"{name}{noise}{seed}",
        "task": "toy",
        "model": {"name": name, "num_parameters": params},
        "noise": {"name": noise},
        "seed": seed,
        "source_language": "en",
        "accuracy": accuracy,
        "n_examples": dict.fromkeys(LANGS, N),
        "majority_class_accuracy": dict.fromkeys(LANGS, 20 / N),
        "english_accuracy": accuracy["en"],
        "target_mean": sum(targets) / len(targets),
        "transfer_gap": accuracy["en"] - sum(targets) / len(targets),
        "predictions_file": "predictions.tsv",
        **extra,
    }
    (folder / "results.json").write_text(json.dumps(results))
    return folder


def wrong_on(count: int, start: int = 0) -> dict[str, set[int]]:
    return {lang: set(range(start, start + count)) for lang in LANGS}


@pytest.fixture
def sweep(tmp_path):
    """2 models x 2 noises x 1 seed. Small is wrong on items 0-19 everywhere; big on 0-9 (none), 0-14 (adv):
    size gap +10/60 under none, +5/60 under adv, change -5/60."""
    root = tmp_path / "sweep"
    write_job(root, SMALL, "none", 1, wrong_on(20))
    write_job(root, SMALL, "adv", 1, wrong_on(20))
    write_job(root, BIG, "none", 1, wrong_on(10))
    write_job(root, BIG, "adv", 1, wrong_on(15))
    return root


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def by_lang(comparisons, kind, noise):
    [comp] = [c for c in comparisons if c.kind == kind and c.noise == noise]
    return comp


def test_report_writes_every_file_with_the_expected_rows(sweep, capsys, tmp_path):
    out = tmp_path / "out"
    code, stdout, stderr = run_report([str(sweep), "--out", str(out), "--n-boot", "200"], capsys)
    assert code == 0, stderr
    for name in ["results_tidy.csv", "results.md", "size_diff.csv", "size_diff.md", "heatmap.png", "size_diff.png"]:
        assert (out / name).is_file(), name
    for name in ["heatmap.png", "size_diff.png"]:
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    tidy = read_csv(out / "results_tidy.csv")
    assert list(tidy[0]) == TIDY_COLUMNS
    assert len(tidy) == 4 * len(LANGS)
    row = next(r for r in tidy if r["model"] == "big" and r["noise"] == "adv" and r["lang"] == "de")
    assert float(row["accuracy"]) == pytest.approx(45 / 60)
    assert row["n"] == "60" and row["is_source"] == "False" and row["job_dir"] == "big_adv_toy_s1"
    assert float(row["majority_class_accuracy"]) == pytest.approx(1 / 3)
    assert {r["is_source"] for r in tidy if r["lang"] == "en"} == {"True"}

    md = (out / "results.md").read_text()
    assert md in stdout
    lines = [line for line in md.splitlines() if line.startswith("|")]
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    assert header == ["model", "params", "noise", "seeds", *LANGS, "target mean", "all-language mean", "transfer gap"]
    body = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[2:]]
    assert [row[:3] for row in body] == [
        ["big", "1.0B", "none"],
        ["big", "1.0B", "adv"],
        ["small", "100M", "none"],
        ["small", "100M", "adv"],
        ["majority class", "", ""],
    ]
    assert body[0][4:] == ["83.3", "83.3", "83.3", "83.3", "83.3", "+0.0"]
    assert body[4][4:7] == ["33.3", "33.3", "33.3"]

    diff = read_csv(out / "size_diff.csv")
    assert list(diff[0]) == SIZE_DIFF_COLUMNS
    # 2 size gaps (none, adv) + 1 change (adv vs none), each on 3 languages + the target and all-language means.
    assert len(diff) == 3 * (len(LANGS) + 2)
    gap = {(r["kind"], r["noise"], r["lang"]): float(r["diff"]) for r in diff}
    assert gap[(SIZE, "none", "de")] == pytest.approx(10 / 60)
    assert gap[(SIZE, "adv", TARGET_MEAN)] == pytest.approx(5 / 60)
    assert gap[(NOISE_CHANGE, "adv", "fr")] == pytest.approx(-5 / 60)
    assert {(r["larger"], r["smaller"]) for r in diff} == {("big", "small")}
    size_md = (out / "size_diff.md").read_text()
    assert size_md in stdout
    assert "big (1.0B) minus small (100M)" in size_md
    assert "(larger - smaller)[noise] - (larger - smaller)[none]" in size_md


def test_identical_predictions_give_zero_with_a_zero_interval(tmp_path):
    root = tmp_path / "sweep"
    write_job(root, SMALL, "none", 1, wrong_on(25, start=7))
    write_job(root, BIG, "none", 1, wrong_on(25, start=7))
    comparisons, _ = compare(collect(root), n_boot=500, seed=0)
    [comp] = comparisons
    assert comp.larger == "big" and comp.smaller == "small"
    for col in [*LANGS, TARGET_MEAN]:
        est = comp.estimates[col]
        assert (est.value, est.low, est.high) == (0.0, 0.0, 0.0)


def test_larger_right_on_k_more_items_gives_k_over_n_and_a_binomial_width():
    n, k, n_boot = 400, 60, 4000
    contrast = np.zeros(n)
    contrast[:k] = 1.0  # larger right, smaller wrong on k items; both the same elsewhere
    est = paired_bootstrap({"en": contrast, "de": contrast, "fr": contrast}, ["de", "fr"], n_boot=n_boot, seed=3)
    p = k / n
    se = math.sqrt(p * (1 - p) / n)
    for lang in LANGS:
        e = est[lang]
        assert e.value == pytest.approx(p)
        assert e.low < p < e.high
        assert e.high - e.low == pytest.approx(2 * 1.96 * se, rel=0.12)
    # The target mean over 2 independently resampled languages: standard error / sqrt(2).
    mean = est[TARGET_MEAN]
    assert mean.value == pytest.approx(p)
    assert mean.high - mean.low == pytest.approx(2 * 1.96 * se / math.sqrt(2), rel=0.12)


def test_bootstrap_is_deterministic_for_a_seed(sweep):
    jobs = collect(sweep)
    first, _ = compare(jobs, n_boot=300, seed=7)
    again, _ = compare(collect(sweep), n_boot=300, seed=7)
    other, _ = compare(jobs, n_boot=300, seed=8)
    assert [c.estimates for c in first] == [c.estimates for c in again]
    assert [c.estimates for c in first] != [c.estimates for c in other]


def test_difference_of_differences_and_its_interval(sweep):
    comparisons, notes = compare(collect(sweep), n_boot=1000, seed=0)
    assert notes == []
    change = by_lang(comparisons, NOISE_CHANGE, "adv")
    assert change.baseline == "none"
    # Per item: big is wrong on 10-14 under adv but right under none; small is the same under both.
    p = 5 / 60
    se = math.sqrt(p * (1 - p) / 60)
    for lang in LANGS:
        e = change.estimates[lang]
        assert e.value == pytest.approx(-p)
        assert e.low <= -p <= e.high
        assert e.high - e.low == pytest.approx(2 * 1.96 * se, rel=0.35)
    assert change.estimates[TARGET_MEAN].value == pytest.approx(-p)
    assert by_lang(comparisons, SIZE, "none").larger_accuracy["de"] == pytest.approx(50 / 60)


def test_several_seeds_mean_and_std_of_the_difference(tmp_path):
    root = tmp_path / "sweep"
    for seed, big_wrong in [(1, 15), (2, 5)]:
        write_job(root, SMALL, "none", seed, wrong_on(20))
        write_job(root, BIG, "none", seed, wrong_on(big_wrong))
    [comp] = compare(collect(root), n_boot=300, seed=0)[0]
    assert comp.seeds == [1, 2]
    diffs = [5 / 60, 15 / 60]
    assert comp.estimates["de"].value == pytest.approx(np.mean(diffs))
    assert comp.seed_std["de"] == pytest.approx(np.std(diffs, ddof=1))
    assert comp.estimates[TARGET_MEAN].value == pytest.approx(np.mean(diffs))


def test_unpaired_seed_is_noted_not_compared(tmp_path, capsys):
    root = tmp_path / "sweep"
    write_job(root, SMALL, "none", 1, wrong_on(20))
    write_job(root, BIG, "none", 1, wrong_on(10))
    write_job(root, BIG, "adv", 2, wrong_on(10))
    write_job(root, SMALL, "adv", 3, wrong_on(10))
    comparisons, notes = compare(collect(root), n_boot=100)
    assert [(c.kind, c.noise) for c in comparisons] == [(SIZE, "none")]
    assert any("toy/adv: no seed ran both big and small" in note for note in notes)
    assert "note: toy/adv" in capsys.readouterr().err


def test_empty_folder_is_one_line_and_exit_2(tmp_path, capsys):
    code, _, err = run_report([str(tmp_path)], capsys)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("xrobust-report: error:") and "no results.json" in err


@pytest.mark.parametrize(
    ("corrupt", "message"),
    [
        (lambda path: path.write_text('{"task": "toy", "model": '), "not readable as JSON"),
        (lambda path: path.write_text(""), "not readable as JSON"),
        (lambda path: path.write_text("[1, 2]"), "expected a JSON object"),
        (
            lambda path: path.write_text(
                json.dumps({k: v for k, v in json.loads(path.read_text()).items() if k != "seed"})
            ),
            "missing required field(s) seed",
        ),
        (
            lambda path: path.write_text(json.dumps({**json.loads(path.read_text()), "model": {"name": "big"}})),
            "missing required field(s) model.num_parameters",
        ),
    ],
)
def test_broken_results_json_is_refused_with_its_path(sweep, capsys, tmp_path, corrupt, message):
    broken = sweep / "big_adv_toy_s1" / "results.json"
    corrupt(broken)
    code, stdout, err = run_report([str(sweep), "--out", str(tmp_path / "out")], capsys)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith(f"xrobust-report: error: {broken}:")
    assert message in err
    assert "Traceback" not in err and stdout == ""


def test_predictions_that_disagree_with_results_are_refused(sweep, capsys, tmp_path):
    predictions = sweep / "small_none_toy_s1" / "predictions.tsv"
    lines = predictions.read_text().splitlines()
    predictions.write_text("\n".join(lines[:-1]) + "\n")  # one fr item lost
    code, _, err = run_report([str(sweep), "--out", str(tmp_path / "out")], capsys)
    assert code == 2
    assert f"{predictions}: 59 fr predictions, results.json says n_examples=60" in err


def test_missing_predictions_are_refused_with_the_reason(sweep, capsys, tmp_path):
    job = sweep / "big_none_toy_s1"
    (job / "predictions.tsv").unlink()
    results = json.loads((job / "results.json").read_text())
    (job / "results.json").write_text(json.dumps({**results, "predictions_file": None}))
    code, stdout, err = run_report([str(sweep), "--out", str(tmp_path / "out")], capsys)
    assert code == 2
    assert f"{job / 'results.json'}: the job saved no predictions (eval.save_predictions=false)" in err
    # What needs no predictions was written before the refusal.
    assert (tmp_path / "out" / "results.md").is_file() and "| big |" in stdout


def test_different_test_items_cannot_be_paired(tmp_path):
    root = tmp_path / "sweep"
    write_job(root, SMALL, "none", 1, wrong_on(20))
    folder = write_job(root, BIG, "none", 1, wrong_on(10))
    predictions = folder / "predictions.tsv"
    predictions.write_text(predictions.read_text().replace("de\t11\t2\t2\n", "de\t555\t2\t2\n"))
    with pytest.raises(Exception, match="test items .* differ from"):
        compare(collect(root), n_boot=10)


def test_same_job_twice_is_refused(sweep, tmp_path):
    shutil.copytree(sweep / "big_none_toy_s1", sweep / "again" / "big_none_toy_s1")
    with pytest.raises(Exception, match="also ran in"):
        collect(sweep)


def test_console_script_and_wandb_offline(sweep, tmp_path):
    """The installed entry point, with --wandb logging tables and images to an offline run."""
    script = Path(sys.executable).parent / "xrobust-report"
    assert script.is_file(), "console script missing: pip install -e ."
    out = tmp_path / "out"
    proc = subprocess.run(
        [str(script), str(sweep), "--out", str(out), "--n-boot", "100", "--wandb"],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true"},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "W&B run:" in proc.stdout
    runs = list((out / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and list(runs[0].glob("*.wandb"))
    media = sorted(path.name.split("_0_")[0] for path in runs[0].glob("files/media/*/*"))
    assert media == ["heatmap", "results_tidy", "size_diff", "size_diff_plot"]


def test_task_group_scores_are_the_mean_over_tasks_of_target_means(tmp_path, capsys):
    from xrobust.report.groups import group_scores

    root = tmp_path / "sweep"
    group = {"name": "pair", "tasks": ["toy", "other"]}
    write_job(root, SMALL, "none", 1, wrong_on(20), task_group=group)
    other = write_job(root / "o", SMALL, "none", 1, wrong_on(30), task_group=group)
    data = json.loads((other / "results.json").read_text())
    (other / "results.json").write_text(json.dumps({**data, "task": "other"}))
    write_job(root, BIG, "none", 1, wrong_on(10), task_group=group)
    rows = {row["model"]: row for row in group_scores(collect(root))}
    assert rows["small"]["score"] == pytest.approx((40 / 60 + 30 / 60) / 2)
    assert rows["small"]["tasks"] == {"toy": pytest.approx(40 / 60), "other": pytest.approx(30 / 60)}
    # A setting that misses a task of its group is reported as incomplete, never scored on what it has.
    assert rows["big"]["score"] is None and rows["big"]["missing"] == ["other"]
    code, out, _ = run_report([str(root), "--n-boot", "50"], capsys)
    assert code == 0 and "Task group pair" in out and "incomplete" in out
    assert (root / "report" / "groups.md").is_file()


def test_generalized_results_get_their_own_table_with_the_training_cost_ratio(tmp_path, capsys):
    root = tmp_path / "sweep"
    matrix = {"en": {"en": 0.8, "de": 0.6}, "de": {"en": 0.5, "de": 0.7}}
    general = {"languages": ["en", "de"], "matrix": matrix, "mean": 0.65, "mixed_pairs_mean": 0.55}
    write_job(root, SMALL, "none", 1, wrong_on(20), generalized=general, wall_time_s={"train": 100.0})
    write_job(root, SMALL, "adv", 1, wrong_on(20), generalized=general, wall_time_s={"train": 240.0})
    code, out, _ = run_report([str(root), "--n-boot", "50"], capsys)
    assert code == 0
    lines = [line for line in out.splitlines() if line.startswith("| small |")]
    assert "| small | none | 1 | 60.0 | 50.0 | 55.0 | 100 | 1.00 |" in lines
    assert "| small | adv | 1 | 60.0 | 50.0 | 55.0 | 240 | 2.40 |" in lines


def test_generalized_pairs_in_predictions_are_left_out_of_the_paired_statistics(sweep, capsys):
    matrix = {"en": {"en": 0.5, "de": 0.5}, "de": {"en": 0.5, "de": 0.5}}
    general = {"languages": ["en", "de"], "matrix": matrix, "mean": 0.5, "mixed_pairs_mean": 0.5}
    for folder in sweep.iterdir():
        results = json.loads((folder / "results.json").read_text())
        (folder / "results.json").write_text(json.dumps({**results, "generalized": general}))
        with open(folder / "predictions.tsv", "a") as handle:
            handle.write("".join(f"en_de\t{i}\t0\t0\n" for i in range(N)))
    code, out, err = run_report([str(sweep), "--n-boot", "50"], capsys)
    assert code == 0, err
    assert "en_de" not in out.split("generalized setting")[0]
