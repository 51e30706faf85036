"""What every embedding-space perturbation needs: the input embeddings apart from the other inputs, seeded
generators on the tensors' device (rs_rp, adv and the perturbed test read-out of `module.py`), and the fields
and checks that rs_rp and adv share (`EmbeddingNoise`)."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import torch
from torch import nn

from xrobust.noise import perturb
from xrobust.noise.base import NoiseMethod, require


def device_generator(seed: int, device: torch.device) -> torch.Generator:
    """A generator on the tensors' device, so sampling never goes through the global RNG (or the CPU)."""
    return torch.Generator(device=device).manual_seed(seed)


class RankGenerators:
    """One generator per device, seeded apart per distributed rank (so ranks draw different noise), with its
    state saved in checkpoints: a resumed run draws what an uninterrupted one would."""

    def __init__(self, seed: int):
        self.seed = seed
        self._generators: dict[torch.device, torch.Generator] = {}

    def get(self, device: torch.device) -> torch.Generator:
        if device not in self._generators:
            self._generators[device] = device_generator(self.seed + 7919 * perturb.process_rank(), device)
        return self._generators[device]

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {str(device): generator.get_state() for device, generator in self._generators.items()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        for device, generator_state in state.items():
            self.get(torch.device(device)).set_state(generator_state)


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
    drawing from per-rank generators kept in checkpoints under `state_key`."""

    norm: perturb.Norm = "l2"
    eps: float
    seed: int = 1
    state_key: ClassVar[str] = "generators"

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self.eps >= 0, "eps", self.eps, "must be >= 0")
        self.generators = RankGenerators(self.seed)

    def state_dict(self) -> dict[str, Any]:
        return {self.state_key: self.generators.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generators.load_state_dict(state.get(self.state_key, {}))

    def params(self) -> dict[str, Any]:
        return super().params() | {"ball": perturb.BALL}
