"""xrobust-report on synthetic sweeps written in the real format (results.json with its config snapshot,
predictions.tsv): rows labelled by every swept key, --compare along any of them, --pairs, families and body
sizes, the generalized and perturbed read-outs with intervals, corrected significance and --latex."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from helpers import run_report

from xrobust.report.collect import collect
from xrobust.report.pairing import compare
from xrobust.run.predictions import predictions_tsv

LANGS = ["en", "de", "fr"]
N = 90
ME5 = {"name": "me5-small", "total": 117_654_915, "body": 21_640_707, "family": "me5"}
ME5_6L = {"name": "me5-small-6l", "total": 107_008_131, "body": 10_993_923, "family": "me5"}


def write_job(root: Path, model: dict, noise: dict, seed: int, accuracy: float, **options) -> Path:
    """A job as xrobust-train writes it: the model is right on the first round(accuracy * N) items of every
    language (gold = id % 3), seed by seed one item more; options: lr, generalized (languages), perturbed
    (accuracy on perturbed input), drop_body (an older results.json without family and body size)."""
    eps = noise.get("eps")
    folder = root / f"{model['name']}_{noise['name']}{'' if eps is None else eps}_s{seed}"
    right = min(N, round(accuracy * N) + seed)
    gold = [i % 3 for i in range(N)]
    rows = {lang: [(i, gold[i], gold[i] if i < right else (gold[i] + 1) % 3) for i in range(N)] for lang in LANGS}
    languages = options.get("generalized") or []
    for a in languages:
        for b in languages:
            if a != b:
                rows[f"{a}_{b}"] = rows[a]
    perturbed = None
    if "perturbed" in options:
        noisy = min(N, round(options["perturbed"] * N) + seed)
        perturbed = {
            name: [(i, g, g if i < noisy else (g + 1) % 3) for i, g, _ in items] for name, items in rows.items()
        }
    folder.mkdir(parents=True)
    (folder / "predictions.tsv").write_text(predictions_tsv(rows, perturbed))
    acc = dict.fromkeys(LANGS, right / N)
    config = {
        "seed": seed,
        "task": {"name": "toy"},
        "model": {"name": model["name"], "family": model["family"], "pretrained": f"/home/x/{model['name']}"},
        "noise": {**noise, "seed": seed},
        "optim": {"lr": options.get("lr", 1e-4)},
        "module": {"lr": options.get("lr", 1e-4)},
        "data": {"seed": seed, "batch_size": 16},
        "paths": {"output_dir": str(folder)},
        "eval": {"dump_dir": f"{folder.resolve()}/dump"},  # a run's own folder never labels it
        "trainer": {"default_root_dir": str(folder), "max_epochs": 2},
        "logger": {"name": folder.name},
    }
    results = {
        "task": "toy",
        "model": {"name": model["name"], "num_parameters": model["total"]},
        "noise": noise,
        "seed": seed,
        "source_language": "en",
        "accuracy": acc,
        "n_examples": dict.fromkeys(LANGS, N),
        "majority_class_accuracy": dict.fromkeys(LANGS, 1 / 3),
        "predictions_file": "predictions.tsv",
        "config": config,
    }
    if not options.get("drop_body"):
        results["model"] |= {"family": model["family"], "non_embedding_parameters": model["body"]}
    if languages:
        matrix = {a: dict.fromkeys(languages, right / N) for a in languages}
        results["generalized"] = {"languages": languages, "matrix": matrix, "mixed_pairs_mean": right / N}
    if perturbed is not None:
        results["perturbed_accuracy"] = dict.fromkeys(LANGS, min(N, round(options["perturbed"] * N) + seed) / N)
    (folder / "results.json").write_text(json.dumps(results))
    return folder


def table_rows(markdown: str, title: str) -> list[list[str]]:
    """The first markdown table after the text `title`: header, then body rows (the rule left out)."""
    lines = markdown.split(title, 1)[1].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    end = next((i for i in range(start, len(lines)) if not lines[i].startswith("|")), len(lines))
    rows = [[cell.strip() for cell in line.strip().strip("|").split("|")] for line in lines[start:end]]
    return [rows[0], *rows[2:]]


@pytest.fixture
def eps_sweep(tmp_path):
    """2 models x (none, rs_rp eps 0.5, rs_rp eps 0.9) x 2 seeds: the larger model leads by 20 items under
    none, 10 under eps 0.5, 0 under eps 0.9."""
    root = tmp_path / "sweep"
    for seed in (1, 2):
        for noise, big, small in [
            ({"name": "none"}, 0.8, 0.58),
            ({"name": "rs_rp", "eps": 0.5}, 0.7, 0.59),
            ({"name": "rs_rp", "eps": 0.9}, 0.6, 0.6),
        ]:
            write_job(root, ME5, noise, seed, big)
            write_job(root, ME5_6L, noise, seed, small)
    return root


def test_a_sweep_over_noise_eps_reports_one_row_per_eps(eps_sweep, capsys, tmp_path):
    jobs = collect(eps_sweep)
    assert {job.noise: job.setting for job in jobs if job.noise == "none"} == {"none": {"noise.eps": "-"}}
    assert {job.setting["noise.eps"] for job in jobs} == {"-", "0.5", "0.9"}
    out = tmp_path / "out"
    code, stdout, err = run_report([str(eps_sweep), "--out", str(out), "--n-boot", "300"], capsys)
    assert code == 0, err
    results = table_rows(stdout, "test accuracy (%)")
    assert results[0][:5] == ["model", "params", "noise", "noise.eps", "seeds"]
    assert [row[:5] for row in results[1:4]] == [
        ["me5-small", "118M (21.6M body)", "none", "-", "1,2"],
        ["me5-small", "118M (21.6M body)", "rs_rp", "0.5", "1,2"],
        ["me5-small", "118M (21.6M body)", "rs_rp", "0.9", "1,2"],
    ]
    diff = table_rows(stdout, "me5-small (118M) minus me5-small-6l (107M)")
    assert [row[:3] for row in diff] == [["noise", "noise.eps", "seeds"], ["none", "-", "1,2"]] + [
        ["rs_rp", eps, "1,2"] for eps in ("0.5", "0.9")
    ]
    # Two seeds: no significance (MIN_SEEDS = 3), however clear the gap.
    assert diff[1][3].startswith("+22.2 ± 0.0 [") and diff[3][3].startswith("+0.0 ± 0.0 [+0.0, +0.0]")
    assert "Rows with fewer than 3 seeds: significance n/a (never bold)" in stdout
    assert "Non-embedding (body) parameters: 21.6M vs 11.0M." in stdout
    assert "pairs within each model family" in stdout
    change = table_rows(stdout, "(larger - smaller)[noise] - (larger - smaller)[none, noise.eps=-]")
    assert [row[:2] for row in change[1:]] == [["rs_rp", "0.5"], ["rs_rp", "0.9"]]
    with open(out / "size_diff.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    gap = {(r["kind"], r["setting"], r["lang"]): float(r["diff"]) for r in rows}
    assert gap[("noise_change", "noise=rs_rp, noise.eps=0.9", "target_mean")] == pytest.approx(-20 / N)
    assert {r["larger_non_embedding"] for r in rows} == {str(ME5["body"])}
    assert {r["resampling"] for r in rows} == {"joint"} and {r["correction"] for r in rows} == {"holm"}


def test_compare_along_a_swept_key_or_the_noise(eps_sweep):
    jobs = collect(eps_sweep)
    by_eps, notes = compare(jobs, n_boot=100, axis="noise.eps")
    # Within rs_rp, 0.9 minus 0.5 per model; the none rows have one value of noise.eps, nothing to contrast.
    assert sorted((c.condition["model"], c.first, c.second) for c in by_eps) == [
        ("me5-small", "0.9", "0.5"),
        ("me5-small-6l", "0.9", "0.5"),
    ]
    big = next(c for c in by_eps if c.condition["model"] == "me5-small")
    assert big.estimates["de"].value == pytest.approx(-9 / N)
    by_noise, _ = compare(jobs, n_boot=100, axis="noise")
    assert sorted((c.condition["model"], c.first, c.second) for c in by_noise) == [
        ("me5-small", "rs_rp, noise.eps=0.5", "none, noise.eps=-"),
        ("me5-small", "rs_rp, noise.eps=0.9", "none, noise.eps=-"),
        ("me5-small-6l", "rs_rp, noise.eps=0.5", "none, noise.eps=-"),
        ("me5-small-6l", "rs_rp, noise.eps=0.9", "none, noise.eps=-"),
    ]
    chosen, _ = compare(jobs, n_boot=100, axis="noise.eps", pairs=[("0.5", "0.9")])
    assert {(c.first, c.second) for c in chosen} == {("0.5", "0.9")}


def test_unknown_compare_key_is_one_line_and_exit_2(eps_sweep, capsys, tmp_path):
    code, _, err = run_report([str(eps_sweep), "--out", str(tmp_path), "--compare", "optim.lr"], capsys)
    assert code == 2 and err.count("\n") == 1
    assert (
        "--compare optim.lr: not a key that tells this sweep's jobs apart (those are: model, noise, noise.eps)" in err
    )


def test_keys_that_follow_the_model_or_seed_do_not_label_rows_and_a_swept_lr_does(tmp_path):
    root = tmp_path / "sweep"
    for seed in (1, 2):
        # lr follows the model here (like model.recommended.lr): not a label.
        write_job(root / "a", ME5, {"name": "none"}, seed, 0.7, lr=1e-4)
        write_job(root / "a", ME5_6L, {"name": "none"}, seed, 0.6, lr=2e-4)
    assert {tuple(job.setting) for job in collect(root)} == {()}
    for seed in (1, 2):
        write_job(root / "b", ME5, {"name": "none"}, seed, 0.7, lr=3e-4)
    jobs = collect(root)
    assert {job.setting["optim.lr"] for job in jobs} == {"0.0001", "0.0002", "0.0003"}
    assert all(set(job.setting) == {"optim.lr"} for job in jobs)  # module.lr is the same key again


def test_a_key_a_newer_version_added_with_a_null_default_does_not_split_a_setting(tmp_path):
    """Seed 1 ran before `trainer_options` existed, seed 2 after (it records `trainer_options: null`): one setting
    of two seeds, not two settings; a key set to a value still labels its jobs."""
    root = tmp_path / "sweep"
    write_job(root, ME5, {"name": "none"}, 1, 0.7)
    newer = write_job(root, ME5, {"name": "none"}, 2, 0.7)
    results = json.loads((newer / "results.json").read_text())
    results["config"]["trainer_options"] = None
    (newer / "results.json").write_text(json.dumps(results))
    assert [job.setting for job in collect(root)] == [{}, {}]
    results["config"]["trainer_options"] = {"gpu": {"strategy": "auto"}}
    (newer / "results.json").write_text(json.dumps(results))
    assert [job.setting for job in collect(root)] == [
        {"trainer_options.gpu.strategy": "-"},
        {"trainer_options.gpu.strategy": "auto"},
    ]


def test_two_runs_of_one_setting_and_seed_are_refused_but_other_eps_are_not(eps_sweep):
    assert len(collect(eps_sweep)) == 12
    write_job(eps_sweep / "again", ME5, {"name": "rs_rp", "eps": 0.5}, 1, 0.7)
    with pytest.raises(Exception, match=r"noise=rs_rp|rs_rp, noise.eps=0.5.*also ran in"):
        collect(eps_sweep)


def test_default_pairs_stay_within_a_family_and_pairs_choose_others(tmp_path, capsys):
    root = tmp_path / "sweep"
    xlmr_base = {"name": "xlmr-base", "total": 278_045_955, "body": 86_044_419, "family": "xlmr"}
    mdeberta = {"name": "mdeberta-v3-base", "total": 278_811_651, "body": 86_043_651, "family": "mdeberta"}
    for model, acc in [(ME5, 0.7), (ME5_6L, 0.6), (xlmr_base, 0.75), (mdeberta, 0.8)]:
        write_job(root, model, {"name": "none"}, 1, acc)
    comparisons, _ = compare(collect(root), n_boot=50)
    assert {(c.first, c.second) for c in comparisons} == {("me5-small", "me5-small-6l")}
    chosen, notes = compare(collect(root), n_boot=50, pairs=[("xlmr-base", "mdeberta-v3-base"), ("a", "b")])
    assert {(c.first, c.second) for c in chosen} == {("xlmr-base", "mdeberta-v3-base")}
    assert any("--pairs names a, b, not a model of this task" in note for note in notes)
    code, _, err = run_report([str(root), "--out", str(tmp_path / "o"), "--n-boot", "50", "--pairs", "x:x"], capsys)
    assert code == 2 and "FIRST:SECOND with two different names" in err


def test_older_results_without_family_or_body_compare_every_pair_by_total_and_say_so(tmp_path, capsys):
    root = tmp_path / "sweep"
    write_job(root, ME5, {"name": "none"}, 1, 0.7, drop_body=True)
    write_job(root, ME5_6L, {"name": "none"}, 1, 0.6, drop_body=True)
    code, out, _ = run_report([str(root), "--out", str(tmp_path / "o"), "--n-boot", "50"], capsys)
    assert code == 0
    assert "Size = total parameters, embeddings included (results.json lacks model.non_embedding_parameters" in out
    # The family still comes from the config snapshot (config.model.family).
    assert "pairs within each model family" in out
    assert "One seed (1): the interval covers test-set sampling only, not training randomness." in out


def test_generalized_and_perturbed_read_outs_get_intervals(tmp_path, capsys):
    root = tmp_path / "sweep"
    for seed in (1, 2, 3):  # 3 seeds: the fewest with significance
        for noise, big, small in [({"name": "none"}, 0.8, 0.6), ({"name": "rs_rp", "eps": 0.9}, 0.8, 0.7)]:
            write_job(root, ME5, noise, seed, big, generalized=LANGS, perturbed=big - 0.1)
            write_job(root, ME5_6L, noise, seed, small, generalized=LANGS, perturbed=small - 0.2)
    out = tmp_path / "out"
    code, stdout, err = run_report([str(root), "--out", str(out), "--n-boot", "300", "--latex"], capsys)
    assert code == 0, err
    general = table_rows(stdout, "generalized setting (mixed-pair mean: sentence 1 in A, sentence 2 in B): me5-small")
    # eps follows the noise here (one value per noise): no noise.eps column.
    assert general[0] == ["noise", "seeds", "mixed-pair mean"]
    assert general[1][2].startswith("**+20.0 ± 0.0 [")  # larger minus smaller under none, 18 items of 90
    along_noise = table_rows(
        stdout, "generalized setting (mixed-pair mean: sentence 1 in A, sentence 2 in B): contrasts"
    )
    assert along_noise[0] == ["model", "contrast", "seeds", "mixed-pair mean"]
    small_row = next(row for row in along_noise if row[0] == "me5-small-6l")
    assert small_row[1] == "rs_rp - none" and small_row[3].startswith("**+10.0")
    perturbed = table_rows(stdout, "perturbed read-out (eval.perturbed: clean classifier, noisy test input): me5")
    assert perturbed[1][:2] == ["none", "1,2,3"] and perturbed[1][-1].startswith("**+30.0")
    with open(out / "size_diff.csv", newline="") as handle:
        measures = {row["measure"] for row in csv.DictReader(handle)}
    assert measures == {"accuracy", "perturbed", "generalized"}
    tex = (out / "tables.tex").read_text()
    assert tex.count(r"\toprule") == tex.count(r"\bottomrule") >= 6
    assert r"\mathbf{+20.0}" in tex and "Holm-adjusted" in tex and "mixed-pair mean" in tex


def test_test_sets_that_are_not_translations_are_resampled_per_language(tmp_path):
    root = tmp_path / "sweep"
    write_job(root, ME5, {"name": "none"}, 1, 0.7)
    write_job(root, ME5_6L, {"name": "none"}, 1, 0.6)
    labels = {i: int(g) for i, g in enumerate(np.random.default_rng(0).integers(0, 3, N))}
    for folder in root.iterdir():
        text = (folder / "predictions.tsv").read_text().splitlines()
        lines = [text[0]]
        for line in text[1:]:
            lang, item, gold, pred = line.split("\t")
            if lang == "de":  # other items: other gold labels, and the model right exactly where it was
                right = gold == pred
                new_gold = labels[int(item)]
                gold, pred = str(new_gold), str(new_gold if right else (new_gold + 1) % 3)
            lines.append("\t".join([lang, item, gold, pred]))
        (folder / "predictions.tsv").write_text("\n".join(lines) + "\n")
    [comp] = compare(collect(root), n_boot=50)[0]
    assert comp.resampling == "independent"


def test_predictions_tsv_layout_with_the_perturbed_column():
    plain = predictions_tsv({"de": [(1, 0, 0), (0, 2, 1)]})
    assert plain == "lang\tid\tgold\tpred\nde\t0\t2\t1\nde\t1\t0\t0\n"
    noisy = predictions_tsv({"de": [(1, 0, 0), (0, 2, 1)]}, {"de": [(0, 2, 2), (1, 0, 1)]})
    assert noisy.splitlines() == ["lang\tid\tgold\tpred\tperturbed_pred", "de\t0\t2\t1\t2", "de\t1\t0\t0\t1"]
    with pytest.raises(ValueError, match="item 0 has no perturbed prediction"):
        predictions_tsv({"de": [(0, 1, 1)]}, {"de": []})
