"""The one small interface every noise method implements; the LightningModule's training step calls it."""

from __future__ import annotations

import dataclasses
import functools
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from xrobust.config import fields as validation
from xrobust.noise.step_cost import StepMemory, StepPasses

if TYPE_CHECKING:
    from xrobust.noise.perturbation import EmbeddingScale

# `invalid noise config: noise.eps=-1.0 (must be >= 0)`: noise fields are named relative to the group.
require = functools.partial(validation.require, group="noise")


@dataclasses.dataclass(kw_only=True, eq=False)
class NoiseMethod:
    """Plain fine-tuning behaviour; a method is a dataclass of its hyper-parameters that overrides only the hooks
    it changes. Its `name` comes from its conf/noise/*.yaml (one class may serve several configs).

    - `training_loss(model, batch)`: the loss the optimizer minimises for one batch.
    - `predict(model, inputs)`: predicted labels for an evaluation batch (inputs without labels).
    - `text_transform()`: a function that rewrites raw training text each time an example is drawn, or None.
    - `setup(model, tokenizer, train_rows, scale)`: one-off preparation that needs the model or the raw training rows
      (a `datasets.Dataset` with the task's text fields), e.g. embedding neighbours of the training words; `scale`
      is the model's embedding scale when the module measured it already (for its perturbed read-out), or None.
    - `params()`: every hyper-parameter (the dataclass fields), recorded in results.json.
    - `state_dict()` / `load_state_dict(state)`: the method's own random streams, kept in checkpoints (per rank)
      so a resumed run draws the noise an uninterrupted one would.
    - `step_memory()` / `step_passes()`: what `training_loss` keeps alive and computes beside plain fine-tuning
      (xrobust/noise/step_cost.py), for `xrobust-plan`'s memory and FLOPs.

    Fields are coerced to their annotations (`validation.check_fields`); a method's `__post_init__` adds its
    range checks with `require` and creates its run-time state (generators, neighbours) as plain attributes.
    """

    name: str

    def __post_init__(self) -> None:
        validation.check_fields(self, group="noise")

    def setup(
        self, model: nn.Module, tokenizer: Any, train_rows: Any = None, scale: EmbeddingScale | None = None
    ) -> None:
        return None

    def training_loss(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return model(**batch).loss

    def predict(self, model: nn.Module, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        return model(**inputs).logits.argmax(dim=-1)

    def text_transform(self):
        return None

    def params(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        return None

    def step_memory(self) -> StepMemory:
        """One forward graph of the micro-batch, built inside the model (no embedding tensor held outside it)."""
        return StepMemory()

    def step_passes(self) -> StepPasses:
        """One forward and one backward per training step, one forward per evaluated item."""
        return StepPasses()
