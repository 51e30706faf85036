"""The alignment read-out's numbers against hand computations on tiny matrices, and its config: off by default,
refused with one line where it cannot run, invisible to the config hash while off."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from helpers import compose_config
from omegaconf import OmegaConf

from xrobust.config.checks import validate
from xrobust.diagnostics.alignment import derangement, linear_cka, scores
from xrobust.diagnostics.hooks import merge, write
from xrobust.diagnostics.readout import Readout
from xrobust.errors import XrobustError
from xrobust.eval import job_config
from xrobust.run.hashing import config_hash
from xrobust.run.run_result import RunResult


def test_cka_of_a_matrix_with_itself_is_one_and_survives_rotation_and_scale():
    x = torch.randn(12, 5, generator=torch.Generator().manual_seed(0))
    rotation, _ = torch.linalg.qr(torch.randn(5, 5, generator=torch.Generator().manual_seed(1)))
    assert linear_cka(x, x) == pytest.approx(1.0)
    assert linear_cka(x, x @ rotation) == pytest.approx(1.0)
    assert linear_cka(x, 3.5 * x @ rotation) == pytest.approx(1.0)
    y = torch.randn(12, 5, generator=torch.Generator().manual_seed(2))
    assert linear_cka(x, y) == pytest.approx(linear_cka(2.0 * x @ rotation, y)) and linear_cka(x, y) < 1


def test_cka_against_a_hand_computation():
    # Centred columns: x = [[-1], [0], [1]], y = [[-1, 1], [0, -2], [1, 1]] (already centred).
    x = torch.tensor([[0.0], [1.0], [2.0]])
    y = torch.tensor([[-1.0, 1.0], [0.0, -2.0], [1.0, 1.0]])
    # y'x = [2, 0]: ||.||^2 = 4; x'x = [[2]]: ||.|| = 2; y'y = [[2, 0], [0, 6]]: ||.|| = sqrt(40).
    assert linear_cka(x, y) == pytest.approx(4 / (2 * 40**0.5))


def test_retrieval_and_cosines_against_a_hand_computation():
    english = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    # Item 0 and 1 sit nearest their own translation; item 2 ([1, 0.1]) nearest English item 0.
    target = torch.tensor([[2.0, 0.1], [0.0, 3.0], [1.0, 0.1]])
    summary, found = scores(target, english, seed=0)
    assert found.tolist() == [0, 1, 0]
    assert summary["retrieval"] == pytest.approx(100 * 2 / 3, abs=1e-3)
    cos = lambda a, b: float(np.dot(a, b) / np.linalg.norm(a) / np.linalg.norm(b))  # noqa: E731
    t, e = target.numpy(), english.numpy()
    assert summary["cosine_pairs"] == pytest.approx(np.mean([cos(t[i], e[i]) for i in range(3)]), abs=1e-6)
    other = derangement(3, 0)
    assert summary["cosine_random"] == pytest.approx(np.mean([cos(t[i], e[other[i]]) for i in range(3)]), abs=1e-6)
    assert summary["cka"] == pytest.approx(linear_cka(target, english), abs=1e-6)


def test_random_pairs_never_pair_an_item_with_its_own_translation():
    for n in (2, 3, 10, 101):
        for seed in range(5):
            order = derangement(n, seed)
            assert sorted(order) == list(range(n)) and all(order != np.arange(n))
    assert derangement(50, 3).tolist() == derangement(50, 3).tolist()


def test_stages_merge_into_one_summary_and_one_tsv(tmp_path):
    before = Readout({"layers": [0], "pretrained": {"de": {}}}, [{"stage": "pretrained", "hit": 1}], 1.0)
    after = Readout({"layers": [0], "tested": {"de": {}}}, [{"stage": "tested", "hit": 0}], 2.0)
    written = write(tmp_path, merge({"alignment": before}, {"alignment": after}))
    assert written == {"alignment": {"layers": [0], "pretrained": {"de": {}}, "tested": {"de": {}}, "seconds": 3.0}}
    assert (tmp_path / "alignment.tsv").read_text().splitlines() == ["stage\thit", "pretrained\t1", "tested\t0"]
    assert write(tmp_path, merge({}, {})) is None


def test_results_json_keeps_diagnostics_and_older_files_read_without_it(tmp_path):
    base = {
        "schema_version": 2,
        "task": "sample",
        "model": {"name": "m", "num_parameters": 1},
        "contamination": False,
        "noise": {"name": "none"},
        "seed": 1,
        "source_language": "en",
        "accuracy": {"en": 50.0},
        "n_examples": {"en": 2},
    }
    older = RunResult.from_dict(base, "older")
    assert older.diagnostics is None and "diagnostics" not in older.to_dict()
    newer = RunResult.from_dict(base | {"diagnostics": {"alignment": {"layers": [0]}}}, "newer")
    newer.write(tmp_path / "results.json")
    assert json.loads((tmp_path / "results.json").read_text())["diagnostics"] == {"alignment": {"layers": [0]}}


def test_the_read_outs_are_off_by_default_and_hash_as_before_while_off(tmp_path):
    cfg = compose_config([], output_dir=tmp_path)
    assert not cfg.eval.alignment.enabled and not cfg.eval.certify.enabled and not cfg.eval.substitution.enabled
    plain = config_hash(cfg)
    with_layers = compose_config(["eval.alignment.layers=[1]", "eval.diagnostics_items=5"], output_dir=tmp_path)
    assert config_hash(with_layers) == plain
    assert config_hash(compose_config(["eval.alignment.enabled=true"], output_dir=tmp_path)) != plain


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        (["task=xcopa"], "is of kind multiple_choice"),
        (["task=americasnli"], "has no en test set"),
        (["trainer.devices=2"], "set trainer.devices=1"),
        (["eval.alignment.layers=[]"], "eval.alignment.layers"),
        (["eval.diagnostics_items=1"], "eval.diagnostics_items"),
    ],
)
def test_alignment_where_it_cannot_run_is_one_line_at_start_up(tmp_path, overrides, reason):
    cfg = compose_config(["eval.alignment.enabled=true", *overrides], output_dir=tmp_path)
    with pytest.raises(XrobustError, match=reason) as err:
        validate(cfg)
    assert "\n" not in str(err.value) and "eval." in str(err.value)


def test_xrobust_eval_switches_a_read_out_on_for_a_job_from_before_them(tmp_path):
    """A finished job's saved config may predate the read-outs: `eval.alignment.enabled=true` still sets a key."""
    saved = OmegaConf.to_container(compose_config([], output_dir=tmp_path), resolve=False)
    saved.pop("hydra")
    for key in ("alignment", "certify", "substitution", "diagnostics_items"):
        saved["eval"].pop(key)
    (tmp_path / ".hydra").mkdir()
    OmegaConf.save(OmegaConf.create(saved), tmp_path / ".hydra" / "config.yaml")
    cfg = job_config(tmp_path, ["eval.alignment.enabled=true"])
    assert cfg.eval.alignment.enabled and cfg.eval.alignment.layers is None and cfg.eval.diagnostics_items is None
    assert not cfg.eval.certify.enabled and not cfg.eval.substitution.enabled
