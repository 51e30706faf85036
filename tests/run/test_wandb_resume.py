"""A requeued or resumed job logs to its one W&B run: the run id is stored in the run folder at the first start and
the next start in that folder resumes the run (offline here, as by default)."""

from __future__ import annotations

import pytest

from xrobust.lightning.loggers import RUN_ID_FILE, wandb_logger

pytest.importorskip("wandb")


def start_run(run_dir) -> str:
    """One start of a job in `run_dir`: the logger's W&B run is created, its id read, the run finished."""
    logger = wandb_logger(project="xrobust", save_dir=str(run_dir), name="job")
    try:
        return logger.experiment.id
    finally:
        logger.experiment.finish()


def test_two_starts_in_one_folder_are_one_run_and_two_folders_two(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    first_dir, other_dir = tmp_path / "job", tmp_path / "other-job"
    first_dir.mkdir()
    other_dir.mkdir()
    first = start_run(first_dir)
    assert (first_dir / RUN_ID_FILE).read_text().strip() == first
    assert start_run(first_dir) == first
    assert start_run(other_dir) != first
