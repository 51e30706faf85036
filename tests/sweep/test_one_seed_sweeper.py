"""hydra/sweeper=one_seed end to end, through the CLI: of two learning rates x two seeds, both run to the end on
seed 1, the one that cannot learn (x 1e-10) runs no other seed and the other runs seed 2; the report selects it,
xrobust-status counts the seed never run as stopped, and running the sweep again launches nothing new."""

from __future__ import annotations

import pytest
from helpers import ROOT, run_cli, run_report
from test_halving_sweeper import LOSER, SUBDIR, WINNER, easy_sample, read, same

from xrobust.status import report as status_report
from xrobust.sweep.halving import LEDGER_FILE
from xrobust.sweep.rung_record import RUNG_FILE


def sweep_args(data, folder) -> list[str]:
    grid = [f"optim.lr_scale={LOSER},{WINNER}", "seed=1,2"]
    return ["-m", "hydra/sweeper=one_seed", *same(data), *grid, f"hydra.sweep.dir={folder}", SUBDIR]


def test_an_unknown_rule_is_one_line_and_exit_2(tmp_path):
    proc = run_cli([*sweep_args(None, tmp_path), "hydra.sweeper.rule=best"], cwd=ROOT)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.strip().splitlines()[-1] == (
        "xrobust: error: invalid config: hydra.sweeper.rule='best': must be one of halving, one_seed"
    )
    assert not list(tmp_path.glob("lr*"))


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    data = easy_sample(tmp_path_factory.mktemp("easy_sample"))
    folder = tmp_path_factory.mktemp("one_seed") / "sweep"
    proc = run_cli(sweep_args(data, folder), cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return data, folder


def test_every_lr_runs_on_seed_1_and_only_the_winner_on_seed_2(sweep):
    _, folder = sweep
    assert sorted(p.name for p in folder.glob("lr*")) == sorted([f"lr{LOSER}_s1", f"lr{WINNER}_s1", f"lr{WINNER}_s2"])
    (decision,) = read(folder / LEDGER_FILE)["rungs"]["0"].values()
    assert (decision["rule"], decision["epochs"], decision["kept"]) == ("one_seed", 2, [WINNER])
    assert decision["candidates"][WINNER] > decision["candidates"][LOSER]
    for lr, verdict in ((LOSER, "stopped"), (WINNER, "continued")):
        rung = read(folder / f"lr{lr}_s1" / RUNG_FILE)
        assert (rung["rule"], rung["decision"], rung["value"]) == ("one_seed", verdict, lr)
    for name in (f"lr{LOSER}_s1", f"lr{WINNER}_s1", f"lr{WINNER}_s2"):
        results = read(folder / name / "results.json")
        assert "rung_stop" not in results["config"]["callbacks"]  # every run is a full one
        assert results["model_selection"]["epochs_run"] == 2


def test_the_report_selects_the_winner_on_seed_1(sweep, tmp_path, capsys):
    out = tmp_path / "report"
    code, _, err = run_report([str(sweep[1]), "--out", str(out), "--n-boot", "20", "--select-on", "dev-en"], capsys)
    assert code == 0, err
    assert f"| 1 | optim.lr_scale={WINNER} |" in (out / "selection.md").read_text(encoding="utf-8")
    tidy = (out / "results_tidy.csv").read_text(encoding="utf-8")
    assert f"lr{LOSER}_s" not in tidy and f"lr{WINNER}_s1" in tidy and f"lr{WINNER}_s2" in tidy


def test_status_counts_the_seed_never_run_as_stopped(sweep):
    text, done = status_report(sweep[1])
    assert done, text
    assert f"not run: the one_seed rule chose optim.lr_scale={WINNER} on seed 1" in text
    assert "4 jobs: 3 finished, 1 stopped, 0 resumable" in text


def test_running_the_sweep_again_launches_nothing_new(sweep):
    data, folder = sweep
    files = sorted(p for p in folder.rglob("*") if p.name in ("results.json", "predictions.tsv", RUNG_FILE))
    before = {path: path.stat().st_mtime_ns for path in files}
    proc = run_cli(sweep_args(data, folder), cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-4000:]
    log = proc.stdout + proc.stderr
    assert log.count("skipping:") == 1, log[-3000:]  # the winner's seed 2; seed 1's choice is read back
    assert "one_seed: every" not in log
    assert {path: path.stat().st_mtime_ns for path in files} == before
    assert not (folder / f"lr{LOSER}_s2").exists()
