"""optim.lr_scale multiplies each model's own learning rate (issue 17), so one sweep over it scales every size
alike."""

from __future__ import annotations

import pytest
from helpers import compose_config


@pytest.mark.parametrize("model", ["me5-small", "xlmr-xxl"])
def test_lr_scale_multiplies_each_models_own_learning_rate(model):
    base = compose_config([f"model={model}"]).optim.lr
    for scale in (0.5, 2):
        cfg = compose_config([f"model={model}", f"optim.lr_scale={scale}"])
        assert cfg.optim.lr == base and cfg.module.optimizer.lr == pytest.approx(base * scale)
