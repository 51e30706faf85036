"""benchmarks/lr_replay.py: cheaper lr-selection rules replayed on per-epoch dev curves."""

from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf

from benchmarks.lr_replay import main, read_run, replay_cell


def write_job(root: Path, lr: float, seed: int, curve: list[float], model: str = "big") -> Path:
    job = root / f"{model}_lr{lr}_s{seed}"
    (job / ".hydra").mkdir(parents=True)
    (job / "csv").mkdir()
    cfg = {"task": {"name": "xnli"}, "model": {"name": model}, "noise": {"name": "none"}, "optim": {"lr_scale": lr}}
    OmegaConf.save(OmegaConf.create({**cfg, "seed": seed}), job / ".hydra" / "config.yaml")
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
