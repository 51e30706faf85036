"""The mT5-vs-mT0 control as a user sweeps it: `-m model=mt5-large,mt0-large finetune=full,none model.head=seq2seq`
runs every job (here on one tiny random mT5 standing in for both checkpoints) and the report pairs each mT0 with
the mT5 it was trained from."""

from __future__ import annotations

import json

from helpers import ROOT, run_cli, run_report
from helpers.small_runs import overrides, small_sample
from helpers.tiny_models import tiny_checkpoint


def test_the_mt5_mt0_grid_runs_every_job_and_the_report_pairs_them(tmp_path, capsys):
    tiny = tiny_checkpoint(tmp_path / "tiny-mt5", "mt5")
    (tmp_path / "data").mkdir()
    data = small_sample(tmp_path / "data")
    sweep = tmp_path / "sweep"
    args = [
        "-m",
        "model=mt5-large,mt0-large",
        "finetune=full,none",
        *overrides(tiny, data, "model.head=seq2seq", "trainer=cpu", "trainer.max_steps=2", "data.eval_batch_size=8"),
        "trainer.limit_val_batches=1",
        f"hydra.sweep.dir={sweep}",
        "hydra.sweep.subdir=${model.name}_${finetune.method}_s${seed}",
    ]
    proc = run_cli(args, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    jobs = {
        folder.name: json.loads((folder / "results.json").read_text())
        for folder in sweep.iterdir()
        if (folder / "results.json").is_file()
    }
    assert set(jobs) == {f"{m}_{f}_s1" for m in ("mt5-large", "mt0-large") for f in ("full", "none")}
    for name, result in jobs.items():
        assert result["prompt_template"]["name"] == "mt5", name
        assert result["contamination"] is False, name  # the sample task is in no model's training mixture
        steps = result["stages"][-1]["steps_run"]
        assert steps == (0 if name.endswith("_none_s1") else 2), (name, steps)

    code, out, err = run_report([str(sweep), "--out", str(tmp_path / "report")], capsys)
    assert code == 0, err
    table = (tmp_path / "report" / "size_diff.md").read_text()
    assert "mt0-large" in table and "mt5-large" in table, table
