"""model.gradient_checkpointing recomputes each layer with torch's non-reentrant checkpoint: the reentrant one
(transformers 4's default, which pyproject admits) breaks DDP when a noise method runs several forwards a step."""

from __future__ import annotations

from functools import partial

import pytest
import torch
from helpers.tiny_models import tiny_checkpoint
from transformers.modeling_layers import GradientCheckpointingLayer

from xrobust.lightning.module import TransferModule
from xrobust.noise.none import NoNoise


@pytest.mark.parametrize("model_type", ["xlm-roberta", "mt5"])  # a transformers classifier; the encoder head
def test_every_layer_checkpoints_without_reentrancy(model_type, tmp_path):
    module = TransferModule(
        pretrained=str(tiny_checkpoint(tmp_path, model_type)),
        label_names=["a", "b", "c"],
        test_names=[],
        noise=NoNoise(name="none"),
        task_kind="pair",
        optimizer=partial(torch.optim.AdamW, lr=1e-3),
        scheduler=partial(torch.optim.lr_scheduler.LambdaLR, lr_lambda=lambda step: 1.0),
        gradient_checkpointing=True,
    )
    layers = [m for m in module.model.modules() if isinstance(m, GradientCheckpointingLayer)]
    assert layers and all(layer.gradient_checkpointing for layer in layers)
    assert all(layer._gradient_checkpointing_func.keywords == {"use_reentrant": False} for layer in layers)
