"""Two points of one sweep never share a run folder: the second stops the sweep instead of resuming from, or
overwriting, the first's run."""

from __future__ import annotations

import pytest

from xrobust.errors import SweepError
from xrobust.run.folder import claim

POINT = ["model=me5-small", "noise=none", "optim.lr_scale=0.5", "seed=1", "data.local_dir=/data/xnli"]


@pytest.fixture
def finished(tmp_path):
    """A folder where POINT ran to its end."""
    claim(tmp_path, POINT, write=True)
    (tmp_path / "results.json").write_text("{}")
    return tmp_path


def test_another_value_of_a_swept_key_is_refused_naming_it(finished):
    other = [o.replace("lr_scale=0.5", "lr_scale=1") for o in POINT]
    with pytest.raises(SweepError, match=r"optim.lr_scale=0.5 there, 1 here.*hydra.sweep.subdir"):
        claim(finished, other, write=True)


def test_the_same_point_again_or_with_an_added_override_is_allowed(finished):
    claim(finished, list(reversed(POINT)), write=True)  # relaunched to complete the sweep
    claim(finished, [*POINT, "trainer.max_epochs=10"], write=True)  # a longer budget for the same point


def test_an_empty_or_new_folder_is_anyones(tmp_path):
    claim(tmp_path, POINT, write=True)
    claim(tmp_path, [o.replace("seed=1", "seed=2") for o in POINT], write=False)  # nothing ran there yet
