"""The planner counts the diagnostic read-outs' passes (issue #32) in a job's test time: alignment twice, certify
n0 + n noisy copies, substitution the clean and the substituted text, over at most eval.diagnostics_items items."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from xrobust.plan.read_out_passes import read_out_passes
from xrobust.plan.sweep import plan_sweep

# One test batch of 2 items in each of XNLI's 15 languages, at their recorded mean lengths (conf/plan.yaml).
MEANS = [43.7, 46.9, 50.6, 48.9, 59.0, 48.3, 54.9, 52.2, 49.1, 48.0, 44.6, 44.6, 51.6, 51.5, 38.3]
GRID = ["model=xlmr-base", "task=xnli", "trainer=gpu", "trainer.max_steps=10", "data.batch_size=4"]
GRID += ["trainer.limit_val_batches=0", "trainer.limit_test_batches=1", "data.eval_batch_size=2"]


def eval_config(**blocks) -> OmegaConf:
    return OmegaConf.create(
        {"diagnostics_items": 3, **{name: {"enabled": True, **keys} for name, keys in blocks.items()}}
    )


def test_each_read_out_counts_its_passes_over_the_capped_items():
    assert read_out_passes(OmegaConf.create({}), 100, 1.0) == 0
    assert read_out_passes(eval_config(alignment={}), 100, 1.0) == 3 * 2
    assert read_out_passes(eval_config(certify={"n0": 1, "n": 4}), 100, 1.0) == 3 * 5
    assert read_out_passes(eval_config(substitution={"rate": 0.5}), 100, 1.0) == 3 * 2
    assert read_out_passes(eval_config(substitution={"rate": 0.0}), 100, 1.0) == 3 * 1
    assert read_out_passes(eval_config(certify={}), 2, 1.0) == 2 * (10 + 100)  # the defaults, on a short set
    # In units of the noise method's predict (eval_forward plain forwards): plain forwards count a quarter here.
    assert read_out_passes(eval_config(alignment={}, substitution={}), 100, 4.0) == pytest.approx(3 * (2 / 4 + 2))


def test_a_jobs_test_tokens_and_flops_include_the_read_outs():
    asked = ["eval.diagnostics_items=3", "eval.alignment.enabled=true", "eval.certify.enabled=true"]
    asked += ["eval.certify.n0=1", "eval.certify.n=2", "eval.substitution.enabled=true"]
    plain, read = plan_sweep(GRID).jobs[0].cost, plan_sweep(GRID + asked).jobs[0].cost
    assert plain.eval_tokens == pytest.approx(2 * sum(MEANS))
    assert read.eval_tokens == pytest.approx((2 + 3 * (2 + 3 + 2)) * sum(MEANS))
    assert read.eval_flops / plain.eval_flops == pytest.approx(read.eval_tokens / plain.eval_tokens)
    assert read.train_flops == plain.train_flops
