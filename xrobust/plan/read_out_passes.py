"""The diagnostic read-outs' forward passes (issue #32: eval.alignment, eval.certify, eval.substitution), which
cost.py counts in a job's test time beside the test loop's.

Per test set, over at most eval.diagnostics_items items (all when null): alignment encodes them twice (the
pretrained and the tested weights), certify runs n0 + n noisy copies of each through the base classifier, and
substitution predicts the clean and the substituted text (the clean only, at rate 0) as the test loop predicts.
"""

from __future__ import annotations

from typing import Any

from xrobust.diagnostics.config import ITEMS_KEY, enabled, settings


def read_out_passes(eval_cfg: Any, items: int, eval_forward: float) -> float:
    """The read-outs' passes over a test set of `items` items, in the test loop's unit: a pass through the noise
    method's predict, which is `eval_forward` plain forwards (a plain forward counts 1 / eval_forward of one)."""
    cap = eval_cfg.get(ITEMS_KEY) if eval_cfg is not None else None
    read = items if cap is None else min(items, int(cap))
    plain = 0.0
    if enabled(eval_cfg, "alignment"):
        plain += 2
    if enabled(eval_cfg, "certify"):
        certify = settings(eval_cfg, "certify")
        plain += int(certify["n0"]) + int(certify["n"])
    predicted = 0.0
    if enabled(eval_cfg, "substitution"):
        predicted += 2 if float(settings(eval_cfg, "substitution")["rate"]) > 0 else 1
    return read * (plain / eval_forward + predicted)
