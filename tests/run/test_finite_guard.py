"""The non-finite loss guard without a host sync per step: a fused optimizer skips every step on the device from
the first non-finite loss on, and the guard raises at its next check, naming the step the loss went bad."""

from __future__ import annotations

import pytest
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, TensorDataset

from xrobust.lightning.callbacks import FiniteLossGuard, NonFiniteLoss

BAD_STEP = 3


class Regression(pl.LightningModule):
    """A linear model whose loss is NaN at BAD_STEP only, trained by fused AdamW (or the for-loop one)."""

    def __init__(self, fused: bool):
        super().__init__()
        self.layer = torch.nn.Linear(4, 1)
        self.fused = fused
        self.weights_at_bad_step: torch.Tensor | None = None

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.layer(x), y)
        if self.global_step == BAD_STEP:
            self.weights_at_bad_step = self.layer.weight.detach().clone()
            loss = loss * float("nan")
        return loss

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=0.1, fused=self.fused)


def fit(fused: bool, check_every: int) -> tuple[Regression, NonFiniteLoss, pl.Trainer]:
    torch.manual_seed(0)
    data = TensorDataset(torch.randn(64, 4), torch.randn(64, 1))
    module = Regression(fused)
    trainer = pl.Trainer(
        accelerator="cpu",
        max_steps=12,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[FiniteLossGuard(check_every_n_steps=check_every)],
    )
    with pytest.raises(NonFiniteLoss) as raised:
        trainer.fit(module, DataLoader(data, batch_size=4))
    return module, raised.value, trainer


def test_fused_optimizer_skips_on_device_and_the_guard_raises_at_its_next_check():
    module, error, trainer = fit(fused=True, check_every=8)
    # The steps after the bad one (finite losses again) were skipped too: the weights are those before it.
    assert torch.equal(module.layer.weight, module.weights_at_bad_step)
    assert f"at step {BAD_STEP} " in str(error) and "weights are unchanged" in str(error)
    assert trainer.global_step == 8  # raised at the check, not at the step: no host sync in between


def test_other_optimizers_are_checked_before_every_backward():
    module, error, trainer = fit(fused=False, check_every=8)
    assert torch.equal(module.layer.weight, module.weights_at_bad_step)
    assert f"at step {BAD_STEP} " in str(error) and trainer.global_step == BAD_STEP


def test_check_interval_must_be_positive():
    with pytest.raises(Exception, match="check_every_n_steps=0"):
        FiniteLossGuard(check_every_n_steps=0)
