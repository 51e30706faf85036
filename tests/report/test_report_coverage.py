"""xrobust-report on a sweep where 3 of 4 jobs did not finish: each is named on stderr (failed, interrupted,
never started), and a requested cell with no finished job ends in exit status 1."""

from __future__ import annotations

import json

from helpers import run_report
from omegaconf import OmegaConf
from test_report_sweeps import ME5, ME5_6L, write_job

from xrobust.status import FAILED_FILE

JOBS = [(ME5, 1), (ME5, 2), (ME5_6L, 1), (ME5_6L, 2)]


def sweep_of_four(root, finished):
    """model x seed: the `finished` jobs wrote results, the others failed, but me5-small-6l s2 never started."""
    root.mkdir()
    task = ["model=me5-small,me5-small-6l", "seed=1,2"]
    OmegaConf.save(
        {"hydra": {"sweeper": {"params": None}, "overrides": {"hydra": [], "task": task}}}, root / "multirun.yaml"
    )
    for model, seed in JOBS:
        if (model, seed) not in finished and (model, seed) == (ME5_6L, 2):
            continue
        folder = write_job(root, model, {"name": "none"}, seed, 0.6)
        (folder / ".hydra").mkdir()
        OmegaConf.save([f"model={model['name']}", f"seed={seed}"], folder / ".hydra" / "overrides.yaml")
        if (model, seed) not in finished:
            (folder / "results.json").unlink()
            failure = {"exit_status": 2, "step": None, "error": f"invalid config: boom {seed}"}
            (folder / FAILED_FILE).write_text(json.dumps(failure))
    return root


def test_the_report_names_every_job_without_results_and_fails_on_an_empty_cell(tmp_path, capsys):
    sweep = sweep_of_four(tmp_path / "sweep", finished=[(ME5, 1)])
    code, out, err = run_report([str(sweep), "--n-boot", "50"], capsys)
    assert code == 1
    lines = err.splitlines()
    assert "xrobust-report: job me5-small_none_s2 failed: exit 2: invalid config: boom 2" in lines
    assert "xrobust-report: job me5-small-6l_none_s1 failed: exit 2: invalid config: boom 1" in lines
    assert "xrobust-report: job model=me5-small-6l seed=2 missing (never started)" in lines
    assert lines[-1] == "xrobust-report: error: no finished job for 1 requested cell(s): model=me5-small-6l"
    assert "me5-small" in out  # the finished job is still reported


def test_a_complete_sweep_reports_with_exit_0_and_nothing_on_stderr(tmp_path, capsys):
    code, _, err = run_report([str(sweep_of_four(tmp_path / "sweep", finished=JOBS)), "--n-boot", "50"], capsys)
    assert code == 0 and not [
        line for line in err.splitlines() if line.startswith(("xrobust-report: job", "xrobust-report: error"))
    ]
