"""xrobust-report's diagnostics tables (issue #32) on a synthetic two-model, two-seed sweep with known numbers:
alignment per model at the chosen layer, the gap-vs-alignment correlation and its item-bootstrap interval,
certified accuracy and substitution, also as W&B tables; a sweep without read-outs gets none of these files."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import run_report

from xrobust.report.alignment_correlation import average_ranks, correlations
from xrobust.report.collect import collect
from xrobust.report.diagnostics_read import TESTED, diagnosed

LANGS = ["en", "de", "fr", "sw"]
TARGETS = LANGS[1:]
N, DIAGNOSED_ITEMS = 40, 20
MODELS = {"big": 1_000_000_000, "small": 100_000_000}
# Items each run gets wrong (the first k ids), per language.
WRONG = {
    ("big", 1): dict(en=2, de=6, fr=8, sw=14),
    ("big", 2): dict(en=4, de=6, fr=10, sw=16),
    ("small", 1): dict(en=4, de=10, fr=14, sw=24),
    ("small", 2): dict(en=6, de=12, fr=16, sw=22),
}
# Retrieval misses of the tested weights at the last layer (the last k of the first 20 ids); pretrained misses 2
# more, layer 2 misses 4 more.
MISSES = {
    ("big", 1): dict(de=2, fr=3, sw=8),
    ("big", 2): dict(de=2, fr=5, sw=8),
    ("small", 1): dict(de=5, fr=9, sw=14),
    ("small", 2): dict(de=7, fr=9, sw=16),
}
# Substitution: the first k ids wrong (k at least the clean run's, so it only loses items).
SUBSTITUTED_WRONG = {
    run: {lang: min(DIAGNOSED_ITEMS, k + 3) for lang, k in wrong.items()} for run, wrong in WRONG.items()
}
LAYERS = [2, 4]


def retrieval(model: str, seed: int, lang: str, stage: str, layer: int) -> float:
    misses = MISSES[(model, seed)][lang] + (2 if stage == "pretrained" else 0) + (4 if layer == 2 else 0)
    misses = min(DIAGNOSED_ITEMS, misses)
    return 100 * (1 - misses / DIAGNOSED_ITEMS)


def alignment_rows(model: str, seed: int) -> list[str]:
    lines = ["stage\tlayer\tlanguage\tid\tretrieved_id\thit"]
    for stage in ("pretrained", "tested"):
        for layer in LAYERS:
            for lang in TARGETS:
                misses = round(DIAGNOSED_ITEMS * (1 - retrieval(model, seed, lang, stage, layer) / 100))
                for i in range(DIAGNOSED_ITEMS):
                    hit = i < DIAGNOSED_ITEMS - misses
                    lines.append(
                        f"{stage}\t{layer}\t{lang}\t{i}\t{i if hit else (i + 1) % DIAGNOSED_ITEMS}\t{int(hit)}"
                    )
    return lines


def diagnostics(model: str, seed: int) -> dict:
    def stage_summary(stage):
        return {
            lang: {
                str(layer): {
                    "retrieval": retrieval(model, seed, lang, stage, layer),
                    "cosine_pairs": 0.5 + 0.1 * seed + (0.01 if stage == "tested" else 0),
                    "cosine_random": 0.1 * seed,
                    "cka": 0.25 * seed + layer / 100,
                }
                for layer in LAYERS
            }
            for lang in TARGETS
        }

    clean = {lang: 100 * (1 - min(k, DIAGNOSED_ITEMS) / DIAGNOSED_ITEMS) for lang, k in WRONG[(model, seed)].items()}
    substituted = SUBSTITUTED_WRONG[(model, seed)]
    return {
        "alignment": {
            "layers": LAYERS,
            "items": dict.fromkeys(TARGETS, DIAGNOSED_ITEMS),
            "seconds": 2.0 * seed,
            "pretrained": stage_summary("pretrained"),
            "tested": stage_summary("tested"),
        },
        "certify": {
            "covers": "Gaussian noise on every token's input embedding",
            "sigma": 0.1,
            "n0": 10,
            "n": 100,
            "alpha": 0.001,
            "radii": [0.0, 0.5],
            "seconds": 5.0,
            "per_language": {
                lang: {
                    "items": 20,
                    "abstained": 0.1 * seed,
                    "certified_accuracy": {"0.0": 80.0 - seed, "0.5": 50.0 + seed},
                }
                for lang in LANGS
            },
        },
        "substitution": {
            "rate": 0.2,
            "source": "model neighbours",
            "seed": 0,
            "seconds": 1.0,
            "per_language": {
                lang: {
                    "items": DIAGNOSED_ITEMS,
                    "accuracy": 100 * (1 - substituted[lang] / DIAGNOSED_ITEMS),
                    "clean_accuracy": clean[lang],
                    "substituted_words": 0.2,
                }
                for lang in LANGS
            },
        },
    }


def write_job(root: Path, model: str, seed: int, with_diagnostics: bool = True) -> Path:
    """A finished job wrong on the first WRONG[...] ids per language (gold = id % 3), its read-outs beside it."""
    folder = root / f"{model}_s{seed}"
    folder.mkdir(parents=True)
    wrong = WRONG[(model, seed)]
    lines = ["lang\tid\tgold\tpred"]
    for lang in LANGS:
        lines += [f"{lang}\t{i}\t{i % 3}\t{(i + 1) % 3 if i < wrong[lang] else i % 3}" for i in range(N)]
    (folder / "predictions.tsv").write_text("\n".join(lines) + "\n")
    accuracy = {lang: 1 - wrong[lang] / N for lang in LANGS}
    results = {
        "task": "toy",
        "model": {"name": model, "num_parameters": MODELS[model]},
        "noise": {"name": "none"},
        "seed": seed,
        "source_language": "en",
        "accuracy": accuracy,
        "n_examples": dict.fromkeys(LANGS, N),
        "predictions_file": "predictions.tsv",
    }
    if with_diagnostics:
        results["diagnostics"] = diagnostics(model, seed)
        (folder / "alignment.tsv").write_text("\n".join(alignment_rows(model, seed)) + "\n")
        substituted = SUBSTITUTED_WRONG[(model, seed)]
        rows = ["language\tid\tgold\tpred\tsubstituted"]
        for lang in LANGS:
            rows += [
                f"{lang}\t{i}\t{i % 3}\t{(i + 1) % 3 if i < substituted[lang] else i % 3}\t2"
                for i in range(DIAGNOSED_ITEMS)
            ]
        (folder / "substitution.tsv").write_text("\n".join(rows) + "\n")
    (folder / "results.json").write_text(json.dumps(results))
    return folder


def make_sweep(root: Path, with_diagnostics: bool = True) -> Path:
    for model, seed in WRONG:
        write_job(root, model, seed, with_diagnostics)
    return root


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def seed_mean(model: str, value) -> float:
    return float(np.mean([value(model, seed) for seed in (1, 2)]))


@pytest.fixture
def sweep(tmp_path):
    return make_sweep(tmp_path / "sweep")


def test_alignment_table_means_over_seeds_at_the_last_layer(sweep, tmp_path, capsys):
    out = tmp_path / "out"
    code, stdout, stderr = run_report([str(sweep), "--out", str(out), "--n-boot", "200"], capsys)
    assert code == 0, stderr
    for name in ["alignment.md", "alignment.csv", "alignment_correlation.csv", "certified.md", "substitution.md"]:
        assert (out / name).is_file(), name
    assert (out / "alignment_gap.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = read_csv(out / "alignment.csv")
    assert len(rows) == 2 * 2 * len(TARGETS)  # models x stages x languages
    assert {row["layer"] for row in rows} == {"4"}
    row = next(r for r in rows if r["setting"] == "small, none" and r["stage"] == "tested" and r["lang"] == "fr")
    assert float(row["retrieval"]) == pytest.approx(seed_mean("small", lambda m, s: retrieval(m, s, "fr", TESTED, 4)))
    assert float(row["cka"]) == pytest.approx(0.375 + 0.04)
    assert row["seeds"] == "1,2"
    assert float(row["transfer_gap"]) == pytest.approx(25.0)  # en 4 and 6 wrong, fr 14 and 16, of 40
    md = (out / "alignment.md").read_text()
    assert md in stdout
    assert "### toy: big, none (seeds 1,2), layer 4" in md
    assert "read-out time 3.0 s per job" in md
    assert "chance retrieval 5.00% at 20 items" in md
    # big, de: gap (6 - 2) / 40 and (6 - 4) / 40, mean 7.5 points; retrieval tested 90.0 both seeds, pretrained 80.0.
    assert "| de | +7.5 | 80.0 | 90.0 |" in md


def test_alignment_layer_option(sweep, tmp_path, capsys):
    out = tmp_path / "out"
    code, _, stderr = run_report([str(sweep), "--out", str(out), "--n-boot", "50", "--alignment-layer", "2"], capsys)
    assert code == 0, stderr
    rows = read_csv(out / "alignment.csv")
    assert {row["layer"] for row in rows} == {"2"}
    row = next(r for r in rows if r["setting"] == "big, none" and r["stage"] == "pretrained" and r["lang"] == "sw")
    assert float(row["retrieval"]) == pytest.approx(100 * (1 - 14 / 20))
    code, _, stderr = run_report([str(sweep), "--out", str(out), "--alignment-layer", "3"], capsys)
    assert code == 2
    assert "--alignment-layer 3 was not recorded (layers: 2, 4)" in stderr


def test_alignment_by_layer_is_the_target_mean_at_every_recorded_layer(sweep, tmp_path, capsys):
    out = tmp_path / "out"
    code, _, stderr = run_report([str(sweep), "--out", str(out), "--n-boot", "50"], capsys)
    assert code == 0, stderr
    rows = read_csv(out / "alignment_layers.csv")
    assert [(row["setting"], row["layer"]) for row in rows] == [
        (model, str(layer)) for model in ("big, none", "small, none") for layer in LAYERS
    ]
    for row in rows:
        model, layer = row["setting"].split(",")[0], int(row["layer"])
        for stage in ("pretrained", "tested"):
            expected = np.mean([retrieval(model, s, lang, stage, layer) for s in (1, 2) for lang in TARGETS])
            assert float(row[f"retrieval_{stage}"]) == pytest.approx(expected)
            assert float(row[f"cka_{stage}"]) == pytest.approx(0.375 + layer / 100)
        assert (row["seeds"], row["languages"]) == ("1,2", str(len(TARGETS)))
    md = (out / "alignment.md").read_text()
    # small, layer 2: misses 5,9,14 and 7,9,16 plus 4, at most 20 of 20: 14.0 on average, 30.0% tuned; 2 more
    # pretrained: 15.67, 21.7%.
    assert "## Alignment by layer" in md and "| small, none (seeds 1,2) | 2 | 21.7 | 30.0 | 0.395 | 0.395 |" in md


def test_wandb_gets_every_diagnostics_table_and_the_gap_figure(sweep, tmp_path):
    """--wandb (offline): the diagnostics CSVs as W&B tables, row for row, and alignment_gap.png as an image."""
    out = tmp_path / "out"
    script = Path(sys.executable).parent / "xrobust-report"
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    args = [str(script), str(sweep), "--out", str(out), "--n-boot", "20", "--wandb"]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (run,) = (out / "wandb").glob("offline-run-*")
    logged = {path.name.split("_0_")[0]: path for path in run.glob("files/media/*/*")}
    assert "alignment_gap" in logged
    for name in ["alignment", "alignment_layers", "alignment_correlation", "certified", "substitution"]:
        table = json.loads(logged[name].read_text())
        rows = read_csv(out / f"{name}.csv")
        assert table["columns"] == list(rows[0]) and len(table["data"]) == len(rows), name


def test_correlation_is_numpys_on_the_language_means_with_an_item_interval(sweep):
    found = diagnosed(collect(sweep))
    [correlation] = correlations(found, TESTED, None, n_boot=300, seed=0, level=0.95)
    gaps, retrievals = [], []
    for model in MODELS:
        for lang in TARGETS:
            gaps.append(np.mean([100 * (WRONG[(model, s)][lang] - WRONG[(model, s)]["en"]) / N for s in (1, 2)]))
            retrievals.append(np.mean([retrieval(model, s, lang, TESTED, 4) for s in (1, 2)]))
    points = {(p.setting["model"], p.language): (p.retrieval, p.gap) for p in correlation.points}
    assert len(points) == 6
    assert points[("small", "sw")] == pytest.approx((100 * (1 - 15 / 20), 100 * (23 - 5) / 40))
    pearson = np.corrcoef(retrievals, gaps)[0, 1]
    spearman = np.corrcoef(average_ranks(np.array(retrievals)), average_ranks(np.array(gaps)))[0, 1]
    assert correlation.pearson.value == pytest.approx(pearson)
    assert correlation.spearman.value == pytest.approx(spearman)
    assert pearson < -0.5  # better aligned languages transfer with a smaller gap, by construction
    for estimate in (correlation.pearson, correlation.spearman):
        assert estimate.low <= estimate.value <= estimate.high
        assert estimate.low < estimate.high
    again = correlations(found, TESTED, None, n_boot=300, seed=0, level=0.95)[0]
    assert again.pearson == correlation.pearson  # a function of the seed


def test_a_correlation_within_each_setting_takes_its_own_languages_only(sweep):
    found = diagnosed(collect(sweep))
    within = correlations(found, TESTED, None, n_boot=100, seed=0, level=0.95, per_setting=True)
    assert len(within) == len(MODELS)
    for correlation in within:
        [model] = {p.setting["model"] for p in correlation.points}
        assert correlation.task.startswith("toy: ") and model in correlation.task
        gaps = [
            np.mean([100 * (WRONG[(model, s)][lang] - WRONG[(model, s)]["en"]) / N for s in (1, 2)]) for lang in TARGETS
        ]
        retrievals = [np.mean([retrieval(model, s, lang, TESTED, 4) for s in (1, 2)]) for lang in TARGETS]
        assert correlation.pearson.value == pytest.approx(np.corrcoef(retrievals, gaps)[0, 1])
        assert -1 - 1e-9 <= correlation.pearson.low <= correlation.pearson.high <= 1 + 1e-9


def test_correlation_without_alignment_rows_has_no_interval(sweep):
    (sweep / "big_s1" / "alignment.tsv").unlink()
    [correlation] = correlations(diagnosed(collect(sweep)), TESTED, None, n_boot=50, seed=0, level=0.95)
    assert np.isfinite(correlation.pearson.value) and np.isnan(correlation.pearson.low)
    assert "no interval" in correlation.note


def test_a_setting_whose_gap_is_the_same_in_every_language_has_no_correlation(sweep):
    """A model at one accuracy in every language (a majority-class model) has gap 0 everywhere: no correlation, said so,
    not a nan printed as a number."""
    for seed in (1, 2):
        folder = sweep / f"small_s{seed}"
        lines = ["lang\tid\tgold\tpred"]
        lines += [f"{lang}\t{i}\t{i % 3}\t{(i + 1) % 3 if i < N // 2 else i % 3}" for lang in LANGS for i in range(N)]
        (folder / "predictions.tsv").write_text("\n".join(lines) + "\n")
        results = json.loads((folder / "results.json").read_text())
        results["accuracy"] = dict.fromkeys(LANGS, 0.5)
        (folder / "results.json").write_text(json.dumps(results))
    within = correlations(diagnosed(collect(sweep)), TESTED, None, n_boot=50, seed=0, level=0.95, per_setting=True)
    small = next(c for c in within if "small" in c.task)
    assert small.pearson is None and small.spearman is None
    assert small.note == "every point has the same gap: no correlation"
    big = next(c for c in within if "big" in c.task)
    assert np.isfinite(big.pearson.value)


def test_average_ranks_share_ties():
    assert list(average_ranks(np.array([3.0, 1.0, 3.0, 2.0]))) == [3.5, 1.0, 3.5, 2.0]


def test_certified_table(sweep, tmp_path, capsys):
    out = tmp_path / "out"
    code, _, stderr = run_report([str(sweep), "--out", str(out), "--n-boot", "50"], capsys)
    assert code == 0, stderr
    rows = read_csv(out / "certified.csv")
    row = next(r for r in rows if r["setting"] == "big, none" and r["lang"] == "de" and r["radius"] == "0.5")
    assert float(row["certified_accuracy"]) == pytest.approx(51.5)
    assert float(row["abstained"]) == pytest.approx(15.0)
    md = (out / "certified.md").read_text()
    assert "| de | 20 | 15.0 | 78.5 | 51.5 |" in md
    assert "Gaussian noise on every token's input embedding (sigma 0.1, n0 10, n 100, alpha 0.001)" in md
    assert "read-out time 5.0 s per job" in md


def test_substitution_table_with_item_intervals(sweep, tmp_path, capsys):
    out = tmp_path / "out"
    code, _, stderr = run_report([str(sweep), "--out", str(out), "--n-boot", "300"], capsys)
    assert code == 0, stderr
    rows = {(r["setting"], r["lang"]): r for r in read_csv(out / "substitution.csv")}
    row = rows[("small, none", "fr")]
    accuracy = seed_mean("small", lambda m, s: 100 * (1 - SUBSTITUTED_WRONG[(m, s)]["fr"] / 20))
    clean = seed_mean("small", lambda m, s: 100 * (1 - WRONG[(m, s)]["fr"] / 20))
    assert float(row["accuracy"]) == pytest.approx(accuracy)
    assert float(row["clean_accuracy"]) == pytest.approx(clean)
    assert float(row["difference"]) == pytest.approx(accuracy - clean)
    assert float(row["accuracy_low"]) <= accuracy <= float(row["accuracy_high"])
    assert float(row["difference_low"]) <= accuracy - clean <= float(row["difference_high"])
    assert float(row["substituted_words"]) == pytest.approx(20.0)
    assert "target mean" in {lang for _, lang in rows}
    assert "95% item-bootstrap intervals over 300 resamples" in (out / "substitution.md").read_text()


def test_sweep_without_diagnostics_writes_none_of_their_files(tmp_path, capsys):
    sweep = make_sweep(tmp_path / "plain", with_diagnostics=False)
    out = tmp_path / "out"
    code, stdout, stderr = run_report([str(sweep), "--out", str(out), "--n-boot", "50"], capsys)
    assert code == 0, stderr
    assert (out / "results.md").is_file()
    for name in ["alignment.md", "alignment.csv", "alignment_gap.png", "certified.md", "substitution.md"]:
        assert not (out / name).exists(), name
    assert "Cross-lingual alignment" not in stdout


def test_a_sweep_folder_moved_since_its_jobs_wrote_it_keeps_their_settings(sweep, tmp_path, capsys):
    """xrobust-eval's folders (or a sweep copied from a cluster) record paths where they were written: a value
    inside a job's own recorded output_dir is a place, not a setting that tells the jobs apart."""
    for results_file in sweep.glob("*/results.json"):
        results = json.loads(results_file.read_text())
        written = f"/cluster/multirun/{results_file.parent.name}"
        results["config"] = {
            "paths": {"output_dir": written},
            "callbacks": {"crash_checkpoint": {"dirpath": f"{written}/checkpoints"}},
        }
        results_file.write_text(json.dumps(results))
    out = tmp_path / "report"
    code, _, stderr = run_report([str(sweep), "--out", str(out), "--n-boot", "20"], capsys)
    assert code == 0, stderr
    assert {row["setting"] for row in read_csv(out / "alignment.csv")} == {"big, none", "small, none"}
