"""run/saved_config.py: a job saved before the layout move and before newer keys is tested by today's code with
every value of its own."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from xrobust.errors import XrobustError
from xrobust.run.saved_config import moved, saved_config

OVERRIDES = ["task=xnli", "noise=rs_rp", "noise.distribution=gaussian", "optim.lr_scale=2", "seed=3"]


def write_job(tmp_path, config: dict, overrides: list[str]):
    hydra_dir = tmp_path / ".hydra"
    hydra_dir.mkdir(parents=True)
    (hydra_dir / "config.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(config)))
    (hydra_dir / "overrides.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(overrides)))
    return tmp_path


def test_moved_targets_get_their_new_module_and_others_stay():
    assert moved("xrobust.module.TransferModule") == "xrobust.lightning.module.TransferModule"
    assert moved("xrobust.selection.LatestBestCheckpoint") == "xrobust.lightning.latest_best.LatestBestCheckpoint"
    assert moved("xrobust.noise.random_perturbation.RandomPerturbation") == (
        "xrobust.noise.random_perturbation.RandomPerturbation"
    )


def test_an_old_job_keeps_every_value_and_gains_only_the_missing_keys(tmp_path):
    from xrobust.run.saved_config import current_config

    today = OmegaConf.to_container(current_config(OVERRIDES))
    old = OmegaConf.to_container(current_config(OVERRIDES))
    old["module"]["_target_"] = "xrobust.module.TransferModule"
    old["callbacks"]["model_checkpoint"]["_target_"] = "xrobust.selection.LatestBestCheckpoint"
    del old["data"]["packing"]
    del old["module"]["packing"]
    old["optim"]["weight_decay"] = 0.123  # a value of the job's own that today's default does not have
    job = write_job(tmp_path, old, OVERRIDES)

    cfg = saved_config(job)

    assert cfg.module._target_ == "xrobust.lightning.module.TransferModule"
    assert cfg.callbacks.model_checkpoint._target_ == "xrobust.lightning.latest_best.LatestBestCheckpoint"
    assert cfg.data.packing is False and OmegaConf.to_container(cfg)["module"]["packing"] == "${data.packing}"
    assert cfg.optim.weight_decay == 0.123
    assert cfg.noise.distribution == "gaussian" and cfg.seed == 3
    assert OmegaConf.to_container(cfg).keys() == today.keys()


def test_a_job_whose_overrides_no_longer_compose_is_one_line_naming_the_file(tmp_path):
    job = write_job(tmp_path, {"seed": 1}, ["noise=no_such_method"])
    with pytest.raises(XrobustError, match="overrides.yaml no longer composes"):
        saved_config(job)
