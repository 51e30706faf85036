"""The one small interface every noise method implements; the LightningModule's training step calls it."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from xrobust.errors import XrobustError


def require(ok: bool, field: str, value: Any, rule: str) -> None:
    """Refuse a bad hyper-parameter with one line naming it: `invalid noise config: noise.eps=-1.0 (...)`."""
    if not ok:
        raise XrobustError(f"invalid noise config: noise.{field}={value!r} ({rule})")


def as_float(field: str, value: Any) -> float:
    """A config number as a float (YAML may give an int), refusing anything that is not a number."""
    require(isinstance(value, (int, float)) and not isinstance(value, bool), field, value, "must be a number")
    return float(value)


def as_int(field: str, value: Any) -> int:
    require(isinstance(value, int) and not isinstance(value, bool), field, value, "must be an integer")
    return int(value)


def one_of(field: str, value: Any, allowed: tuple[str, ...]) -> str:
    require(value in allowed, field, value, f"must be one of {', '.join(allowed)}")
    return str(value)


class NoiseMethod:
    """Plain fine-tuning behaviour; a method overrides only the hooks it changes.

    - `training_loss(model, batch)`: the loss the optimizer minimises for one batch.
    - `predict(model, inputs)`: predicted labels for an evaluation batch (inputs without labels).
    - `text_transform()`: a function that rewrites raw training text each time an example is drawn, or None.
    - `setup(model, tokenizer, train_rows)`: one-off preparation that needs the model or the raw training rows
      (a `datasets.Dataset` with the task's text fields), e.g. embedding neighbours of the training words.
    - `params()`: every hyper-parameter, recorded in results.json.
    - `state_dict()` / `load_state_dict(state)`: the method's own random streams, kept in checkpoints (per rank)
      so a resumed run draws the noise an uninterrupted one would.
    """

    name = "base"

    def setup(self, model: nn.Module, tokenizer: Any, train_rows: Any = None) -> None:
        return None

    def training_loss(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return model(**batch).loss

    def predict(self, model: nn.Module, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        return model(**inputs).logits.argmax(dim=-1)

    def text_transform(self):
        return None

    def params(self) -> dict[str, Any]:
        return {"name": self.name}

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        return None
