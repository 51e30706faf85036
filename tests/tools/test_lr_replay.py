"""benchmarks/lr_replay.py: cheaper lr-selection rules replayed on per-epoch dev curves."""

from __future__ import annotations

import json
from pathlib import Path

from omegaconf import OmegaConf

from benchmarks.lr_replay import Halving, group_by_lr, main, read_run, replay_cell


def write_job(
    root: Path,
    lr: float,
    seed: int,
    curve: list[float],
    model: str = "big",
    heldout: float | None = None,
    max_epochs: int | None = None,
) -> Path:
    """A finished job's folder; `heldout`: its results.json English accuracy under data.heldout=true."""
    job = root / f"{model}_lr{lr}_s{seed}"
    (job / ".hydra").mkdir(parents=True)
    (job / "csv").mkdir()
    cfg = {"task": {"name": "xnli"}, "model": {"name": model}, "noise": {"name": "none"}, "optim": {"lr_scale": lr}}
    cfg |= {"data": {"heldout": heldout is not None}, "trainer": {"max_epochs": max_epochs}}
    OmegaConf.save(OmegaConf.create({**cfg, "seed": seed}), job / ".hydra" / "config.yaml")
    if heldout is not None:
        (job / "results.json").write_text(json.dumps({"english_accuracy": heldout}))
    rows = ["epoch,step,train/loss,val/acc"]
    for epoch, acc in enumerate(curve):
        rows += [f"{epoch},{epoch * 10 + 5},1.0,", f"{epoch},{epoch * 10 + 9},,{acc}"]
    (job / "csv" / "metrics.csv").write_text("\n".join(rows) + "\n")
    return job


def test_a_losing_lr_stops_after_its_first_rung_and_the_winner_is_kept(tmp_path):
    # lr 0.5 learns slowly but ends best; lr 1 leads after epoch 1 and ends second; lr 2 stays at the majority class.
    curves = {0.5: [0.40, 0.60, 0.70], 1.0: [0.50, 0.55, 0.58], 2.0: [0.33, 0.33]}
    runs = [read_run(write_job(tmp_path, lr, seed, curve)) for lr, curve in curves.items() for seed in (1, 2)]
    result = replay_cell(runs, rung=1)
    assert result["full grid"] == (0.5, 2 * (3 + 3 + 2))
    # Halving keeps lr 1 after one epoch (it leads there) and loses the late winner: what the replay must expose.
    assert result["halving"] == (1.0, 2 * (1 + 3 + 1))
    # Keeping two after the first rung, lr 0.5 overtakes lr 1 by epoch 2 and wins.
    assert result["halving2"] == (0.5, 2 * (3 + 2 + 1))
    assert result["one_seed"] == (0.5, (3 + 3 + 2) + 3)


def test_the_replay_table_counts_agreement_and_cost(tmp_path, capsys):
    for seed in (1, 2, 3):
        write_job(tmp_path, 0.5, seed, [0.6, 0.7])
        write_job(tmp_path, 1.0, seed, [0.4, 0.45])
    main([str(tmp_path)])
    out = capsys.readouterr().out
    assert "| halving | 1 / 1 | 9 | 0.75 |" in out
    assert "| full grid | 1 / 1 | 12 | 1.00 |" in out


def test_regret_and_per_seed_agreement_say_what_a_wrong_early_pick_costs(tmp_path, capsys):
    # lr 0.5 starts behind on seeds 1 and 2 but ends best everywhere (held-out 70 vs 60); seed 3 leads from epoch 1.
    for seed in (1, 2, 3):
        early = [0.6, 0.65, 0.7] if seed == 3 else [0.4, 0.7, 0.75]
        write_job(tmp_path, 0.5, seed, early, heldout=0.70, max_epochs=3)
        write_job(tmp_path, 1.0, seed, [0.5, 0.55, 0.6], heldout=0.60, max_epochs=3)
    main([str(tmp_path)])
    out = capsys.readouterr().out
    # One epoch: lr 1 leads on the mean and on seeds 1 and 2 alone, and the cell loses 10 held-out points.
    assert "| xnli | big | none | halving | 1 | 12 | 1 / 3 | 60.0 | +10.0 |" in out
    assert "| halving | 0 / 1 | 12 | 0.67 | 1 / 3 | +10.0 | +10.0 | 0 |" in out
    # A first rung of two epochs sees lr 0.5 overtake on every seed.
    assert "| halving, rung 2 | 1 / 1 | 15 | 0.83 | 3 / 3 | +0.0 | +0.0 | 0 |" in out
    # Choosing on any one seed picks lr 0.5.
    assert "| one_seed | 1 / 1 | 12 | 0.67 | 3 / 3 | +0.0 | +0.0 | 0 |" in out
    assert "| full grid | 1 / 1 | 18 | 1.00 | — | +0.0 | +0.0 | 0 |" in out


def test_a_kept_run_that_early_stopping_ended_inside_the_rung_costs_one_more_epoch(tmp_path):
    curves = {0.5: [0.5, 0.5], 1.0: [0.4, 0.45, 0.46, 0.47, 0.48], 2.0: [0.3, 0.3]}
    runs = [read_run(write_job(tmp_path, lr, s, c, max_epochs=5)) for lr, c in curves.items() for s in (1, 2)]
    by_lr = group_by_lr(runs)
    # Rung of 2 epochs: lr 0.5 (ended at epoch 2 by early stopping) is kept and resumes for one epoch per seed.
    assert replay_cell(runs, rung=2)["halving"] == (0.5, 2 * (2 + 2 + 2) + 2)
    assert Halving(2, 3).resumed_epochs(by_lr) == 2
    # Patience cannot end a run in a first rung of one epoch: nothing resumed.
    assert Halving(1, 3).resumed_epochs(by_lr) == 0
    # A rung that would reach trainer.max_epochs is not run: every lr to the end, as the full grid.
    assert Halving(5, 3)(by_lr) == replay_cell(runs, rung=1)["full grid"]
