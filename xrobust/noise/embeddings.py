"""What every embedding-space training method shares: the input embeddings apart from the other inputs, and
`EmbeddingNoise`, the fields and checks of rs_rp and adv, whose `Perturbation` (perturbation.py: radii, sampling,
generators) is the same object the perturbed test read-out uses."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import torch
from torch import nn

from xrobust.errors import XrobustError
from xrobust.noise import perturb
from xrobust.noise.base import NoiseMethod, require
from xrobust.noise.perturbation import EmbeddingScale, EpsScale, Perturbation


def split_embeddings(model: nn.Module, inputs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict]:
    """The input word embeddings (in the autograd graph of the embedding matrix) and the other inputs."""
    rest = {k: v for k, v in inputs.items() if k != "input_ids"}
    embeds = model.get_input_embeddings()(inputs["input_ids"])
    if "attention_mask" not in rest:
        rest["attention_mask"] = torch.ones(embeds.shape[:2], dtype=torch.long, device=embeds.device)
    return embeds, rest


@dataclasses.dataclass(kw_only=True, eq=False)
class EmbeddingNoise(NoiseMethod):
    """A method that moves each real token's input embedding within its own ball of radius eps (perturb.py),
    drawing from per-rank generators kept in checkpoints under `state_key`.

    With `eps_scale: relative` the radii (`scaled_fields`) are fractions of the model's median token-embedding
    norm, or of median_norm / sqrt(d) for per-coordinate ones (`coordinate_fields`, and every radius under
    `norm: linf`), measured once in `setup` (or at the first step when used without it); `radius(field)` is the
    radius in embedding units either way. `perturb_special_tokens: false` leaves CLS/SEP/... untouched, as padding.
    """

    norm: perturb.Norm = "l2"
    eps: float
    eps_scale: EpsScale = "relative"
    perturb_special_tokens: bool = True
    seed: int = 1
    state_key: ClassVar[str] = "generators"
    scaled_fields: ClassVar[tuple[str, ...]] = ("eps",)
    coordinate_fields: ClassVar[tuple[str, ...]] = ()  # per coordinate whatever the norm (a Gaussian sigma)

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self.eps >= 0, "eps", self.eps, "must be >= 0")
        self.perturbation = Perturbation(
            radii={field: getattr(self, field) for field in self.scaled_fields},
            norm=self.norm,
            distribution=getattr(self, "distribution", "uniform"),
            eps_scale=self.eps_scale,
            coordinate_fields=self.coordinate_fields,
            seed=self.seed,
        )
        self.special_ids: torch.Tensor | None = None

    def setup(
        self, model: nn.Module, tokenizer: Any, train_rows: Any = None, scale: EmbeddingScale | None = None
    ) -> None:
        self.perturbation.measure(model, scale)
        if tokenizer is not None:
            self.special_ids = torch.tensor(sorted(set(tokenizer.all_special_ids)), dtype=torch.long)

    def radius(self, field: str, model: nn.Module | None = None) -> float:
        """The configured radius `field` in embedding units (measuring the model if setup never ran)."""
        return self.perturbation.radius(field, model)

    def positions(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """(batch, length): 1 on the tokens this method perturbs (real tokens; special ones only if enabled)."""
        if self.perturb_special_tokens:
            return attention_mask
        if self.special_ids is None:
            raise XrobustError("noise.perturb_special_tokens=false: setup(model, tokenizer) must run first")
        return attention_mask * ~torch.isin(input_ids, self.special_ids.to(input_ids.device))

    def state_dict(self) -> dict[str, Any]:
        """The per-rank generators' states under `state_key`, so a resume continues the noise stream."""
        return {self.state_key: self.perturbation.generators.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.perturbation.generators.load_state_dict(state.get(self.state_key, {}))

    def params(self) -> dict[str, Any]:
        """The fields, the ball's geometry, and each radius both relative and absolute (None until measured)."""
        return self.perturbation.record(super().params() | {"ball": perturb.BALL})
