"""hydra/sweeper=halving end to end, through the CLI: of two learning rates x two seeds, the one that cannot learn
(x 1e-10) stops after its first epoch and the other runs to the end, resuming from its rung checkpoint; the report
selects it and names the stopped runs, xrobust-status shows them as stopped, and running the sweep again is a no-op."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import FAST, ROOT, run_cli, run_report

from xrobust.run.predictions import predictions_tsv
from xrobust.status import report as status_report
from xrobust.sweep.halving import LEDGER_FILE
from xrobust.sweep.rung_record import RUNG_FILE, RUNG_TARGET

LOSER, WINNER = "1e-10", "5"
SEEDS = (1, 2)
SUBDIR = "hydra.sweep.subdir=lr${optim.lr_scale}_s${seed}"
# Each pair is its label's word, then the word and the row's number: a working learning rate learns the three within
# the first epoch's 8 steps.
LABEL_WORDS = {"entailment": "yes", "neutral": "maybe", "contradiction": "no"}
LANGUAGES = ["en", "de", "fr", "es", "ru", "zh", "ar"]


def easy_sample(folder: Path) -> Path:
    """The packaged sample's labels, each pair made of its label's word (XTREME layout)."""
    sample = ROOT / "xrobust" / "data" / "sample"
    folder.mkdir(parents=True, exist_ok=True)
    for name, n in [("train-en", 64), ("dev-en", 24), *((f"test-{lang}", 8) for lang in LANGUAGES)]:
        rows = [line.split("\t") for line in (sample / f"{name}.tsv").read_text(encoding="utf-8").splitlines()[:n]]
        words = [(LABEL_WORDS[label], label) for *_, label in rows]
        text = "".join(f"{word}\t{word} {i}\t{label}\n" for i, (word, label) in enumerate(words))
        (folder / f"{name}.tsv").write_text(text, encoding="utf-8")
    return folder


def same(data: Path | None) -> list[str]:
    """What the halving sweep and the plain run share: 2 epochs of 8 batches, every dev item, 8 test items."""
    local = ["task=sample", f"data.local_dir={data}"] if data is not None else []
    limits = ["trainer.limit_train_batches=8", "trainer.limit_val_batches=null", "trainer.limit_test_batches=1"]
    return [*FAST, *local, "trainer.max_steps=-1", "trainer.max_epochs=2", *limits]


def sweep_args(data: Path | None, folder: Path) -> list[str]:
    grid = [f"optim.lr_scale={LOSER},{WINNER}", "seed=1,2"]
    return ["-m", "hydra/sweeper=halving", *same(data), *grid, f"hydra.sweep.dir={folder}", SUBDIR]


def read(path):
    return json.loads(path.read_text(encoding="utf-8"))


def test_hydra_discovers_the_sweeper_plugin():
    from hydra.core.plugins import Plugins
    from hydra.plugins.sweeper import Sweeper

    assert "HalvingSweeper" in [plugin.__name__ for plugin in Plugins.instance().discover(Sweeper)]


def test_a_bad_rule_is_one_line_and_exit_2(tmp_path):
    proc = run_cli([*sweep_args(None, tmp_path), "hydra.sweeper.eta=1"], cwd=ROOT)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert (
        proc.stderr.strip().splitlines()[-1]
        == "xrobust: error: invalid config: hydra.sweeper.eta=1: must be an integer >= 2"
    )
    assert not list(tmp_path.glob("lr*"))


def write_run(root, lr_scale: str, seed: int, dev_en: float, rung: dict | None) -> None:
    """A finished job's results.json and predictions.tsv; with `rung`, a halving rung's (and its rung.json)."""
    folder = root / f"lr{lr_scale}_s{seed}"
    folder.mkdir(parents=True)
    rows = {lang: [(i, i % 3, i % 3 if i < 5 else (i + 1) % 3) for i in range(10)] for lang in ("en", "de")}
    (folder / "predictions.tsv").write_text(predictions_tsv(rows, None), encoding="utf-8")
    callbacks = {"rung_stop": {"_target_": RUNG_TARGET, "epochs": rung["epochs"]}} if rung else {}
    results = {
        "task": "toy",
        "model": {"name": "me5-small", "num_parameters": 1000},
        "noise": {"name": "none"},
        "seed": seed,
        "source_language": "en",
        "accuracy": {"en": 0.5, "de": 0.5},
        "n_examples": {"en": 10, "de": 10},
        "predictions_file": "predictions.tsv",
        "model_selection": {"on": "dev-en", "best_val_acc": dev_en},
        "config": {"seed": seed, "optim": {"lr_scale": float(lr_scale)}, "callbacks": callbacks},
    }
    (folder / "results.json").write_text(json.dumps(results), encoding="utf-8")
    if rung:
        (folder / RUNG_FILE).write_text(json.dumps(rung), encoding="utf-8")


def test_the_report_never_selects_a_stopped_run(tmp_path, capsys):
    """A stopped learning rate's dev-en accuracy at its rung (90%) beats the kept one's (60%): a full grid's rule
    would select it; its results are those of one epoch, so the report names it and selects among the others."""
    stopped, going_on = {"epochs": 1, "decision": "stopped", "mean_dev_acc": 0.9}, {"epochs": 1, "decision": None}
    for seed in SEEDS:
        write_run(tmp_path, "2", seed, 0.9, stopped)
        write_run(tmp_path, "1", seed, 0.6, None)
        write_run(tmp_path, "0.5", seed, 0.95, going_on)  # kept, but its run to the end has not finished
    out = tmp_path / "report"
    code, _, err = run_report([str(tmp_path), "--out", str(out), "--n-boot", "20", "--select-on", "dev-en"], capsys)
    assert code == 0, err
    selection = (out / "selection.md").read_text(encoding="utf-8")
    assert "| toy | me5-small, none | 1,2 | optim.lr_scale=1.0 | 60.0 | optim.lr_scale=1.0: 60.0; " in selection
    assert "optim.lr_scale=2.0: stopped after epoch 1 (2 runs, 90.0 then)" in selection
    assert "stopped 2 runs (2 after epoch 1)" in selection


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return easy_sample(tmp_path_factory.mktemp("easy_sample"))


@pytest.fixture(scope="module")
def sweep(tmp_path_factory, data):
    folder = tmp_path_factory.mktemp("halving") / "sweep"
    proc = run_cli(sweep_args(data, folder), cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return folder


def test_the_losing_lr_stops_after_its_first_epoch(sweep):
    ledger = read(sweep / LEDGER_FILE)["rungs"]["0"]
    (decision,) = ledger.values()
    assert decision["epochs"] == 1 and decision["kept"] == [WINNER]
    assert decision["candidates"][WINNER] > decision["candidates"][LOSER]
    for seed in SEEDS:
        folder = sweep / f"lr{LOSER}_s{seed}"
        rung = read(folder / RUNG_FILE)
        assert (rung["decision"], rung["epochs"], rung["rung"]) == ("stopped", 1, 1)
        results = read(folder / "results.json")
        assert results["config"]["callbacks"]["rung_stop"]["epochs"] == 1
        assert results["config"]["trainer"]["max_epochs"] == 2  # the full run's schedule, stopped early
        assert results["model_selection"]["epochs_run"] == 1
        # Its resume state is cut down to checkpoint.keep_after_success (best_weights) once it is stopped for good.
        assert not (folder / "checkpoints" / "last.ckpt").exists()
        assert len(list((folder / "checkpoints").glob("best-step*.ckpt"))) == 1


def test_the_winner_resumes_from_its_rung_and_ends_as_an_uninterrupted_run(sweep, data, tmp_path):
    for seed in SEEDS:
        folder = sweep / f"lr{WINNER}_s{seed}"
        assert read(folder / RUNG_FILE)["decision"] == "continued"
        results = read(folder / "results.json")
        assert "rung_stop" not in results["config"]["callbacks"]
        assert results["model_selection"]["epochs_run"] == 2
        assert results["resume"] == {"exact": True, "reason": None}  # resumed after epoch 1, not restarted
    reference = tmp_path / "reference"
    proc = run_cli([*same(data), f"optim.lr_scale={WINNER}", "seed=1", f"hydra.run.dir={reference}"], cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-4000:]
    plain, halved = read(reference / "results.json"), read(sweep / f"lr{WINNER}_s1" / "results.json")
    assert halved["config_hash"] == plain["config_hash"]
    assert halved["model_selection"]["best_val_acc"] == plain["model_selection"]["best_val_acc"]
    assert halved["accuracy"] == plain["accuracy"]


def test_the_report_selects_the_winner_and_names_the_stopped_runs(sweep, tmp_path, capsys):
    out = tmp_path / "report"
    code, _, err = run_report([str(sweep), "--out", str(out), "--n-boot", "20", "--select-on", "dev-en"], capsys)
    assert code == 0, err
    selection = (out / "selection.md").read_text(encoding="utf-8")
    assert f"| 1,2 | optim.lr_scale={WINNER} |" in selection
    assert f"optim.lr_scale={LOSER}: stopped after epoch 1 (2 runs" in selection
    assert "stopped 2 runs (2 after epoch 1)" in selection
    with open(out / "results_tidy.csv", encoding="utf-8") as handle:
        assert f"lr{LOSER}_s" not in handle.read()


def test_status_shows_the_stopped_runs_as_such(sweep):
    text, done = status_report(sweep)
    assert done, text
    for seed in SEEDS:
        assert f"stopped      lr{LOSER}_s{seed}  by the halving sweeper after epoch 1 (rung 1)" in text
        assert f"finished     lr{WINNER}_s{seed}" in text
    assert "4 jobs: 2 finished, 2 stopped, 0 resumable" in text


def test_running_the_sweep_again_is_a_no_op(sweep, data):
    files = sorted(p for p in sweep.rglob("*") if p.name in ("results.json", "predictions.tsv", RUNG_FILE))
    before = {path: path.stat().st_mtime_ns for path in files}
    proc = run_cli(sweep_args(data, sweep), cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-4000:]
    log = proc.stdout + proc.stderr
    assert log.count("skipping:") == len(SEEDS), log[-3000:]  # the winners' final jobs; no rung runs again
    assert "halving: rung" not in log
    assert {path: path.stat().st_mtime_ns for path in files} == before


def test_the_rule_keeps_a_third_each_rung_ties_to_the_first_and_reads_finished_rungs_back(tmp_path):
    from xrobust.sweep import halving

    jobs = [[f"optim.lr_scale={lr}", f"seed={seed}"] for lr in ("0.5", "1", "2", "4") for seed in (1, 2)]
    grid = halving.points(jobs, "optim.lr_scale", "seed")
    (cell,) = halving.by_cell(grid).values()
    scores = {"0.5": (0.5, 0.7), "1": (0.6, 0.4), "2": (0.2, 0.2), "4": (0.6, 0.6)}  # 0.6 for 0.5, 1 and 4
    decision = halving.decide({p: scores[p.value][int(p.overrides[1][-1]) - 1] for p in cell}, eta=3)
    assert decision["kept"] == ["0.5", "4"]  # ceil(4 / 3) = 2 of the three tied at 0.6, in sorted order
    assert [halving.rung_epochs(k, 1, 3) for k in range(3)] == [1, 3, 9]
    ledger = halving.Ledger(tmp_path / halving.LEDGER_FILE)
    ledger.record(0, cell, 1, 3, decision)
    ledger.save()
    again = halving.Ledger(tmp_path / halving.LEDGER_FILE)
    assert again.kept(0, cell, 1, 3) == ["0.5", "4"]
    assert again.kept(0, cell, 1, 2) is None  # another rule decides again
    assert again.kept(0, cell[:-1], 1, 3) is None  # so do other jobs
