"""The selection set is never scored as a test (issue 28.7): a local folder without a test split tests its dev files
with `data.heldout=true`, selection on a held-out part of train-en, so the `en` column is an English set that chose
nothing; `data.test_split=dev` alone (dev-en both selecting and tested) is refused with one line naming the fix."""

from __future__ import annotations

import pytest
from helpers import FAST, compose_config
from hydra.utils import instantiate

from xrobust.config.checks import validate
from xrobust.errors import XrobustError
from xrobust.train import run


def test_testing_on_the_selection_split_is_refused_naming_the_fix(shared_data, tmp_path):
    cfg = compose_config([f"data.local_dir={shared_data / 'xnli'}", "data.test_split=dev"], output_dir=tmp_path)
    with pytest.raises(XrobustError, match=r"^invalid .*data\.dev_split='dev'.*set data\.heldout=true") as caught:
        validate(cfg)
    assert "\n" not in str(caught.value)


def test_heldout_selects_on_train_en_and_keeps_every_dev_file_as_a_test(me5_dir, shared_data, tmp_path):
    overrides = [f"data.local_dir={shared_data / 'xnli'}", "data.test_split=dev", "data.heldout=true"]
    cfg = compose_config(overrides, output_dir=tmp_path)
    dm = instantiate(cfg.data, _partial_=True)(task=validate(cfg), tokenizer_path=str(me5_dir))
    dm.setup()
    assert dm.selection_source == "10% of train-en (seed 1)"
    selection, trained = set(dm.val_set.with_format(None)["id"]), set(dm.train_rows["id"])
    assert len(dm.raw_test_sets["en"]) == 498, "all of dev-en is tested"
    assert selection and not selection & trained, "the selection items come out of train-en"
    assert len(selection) + len(trained) == 1494


def test_the_data_route_end_to_end_reports_an_untouched_english_test(me5_dir, shared_data, tmp_path):
    overrides = [f"data.local_dir={shared_data / 'xnli'}", "data.test_split=dev", "data.heldout=true", *FAST]
    results = run(
        compose_config([*overrides, "trainer.max_steps=2", "trainer.limit_test_batches=1"], output_dir=tmp_path)
    )
    assert results["model_selection"]["on"] == "10% of train-en (seed 1)"
    assert "en" in results["accuracy"]
