"""What every embedding-space perturbation needs: the input embeddings apart from the other inputs, seeded
generators on the tensors' device (rs_rp, adv and the perturbed test read-out of `module.py`), the model's
embedding scale that relative radii are measured in, and the fields and checks that rs_rp and adv share
(`EmbeddingNoise`)."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, Literal

import torch
from torch import nn

from xrobust.errors import XrobustError
from xrobust.noise import perturb
from xrobust.noise.base import NoiseMethod, require

# relative: radii are fractions of the model's median token-embedding L2 norm, so one config is the same
# perturbation for every model width; absolute: radii in raw embedding units.
EpsScale = Literal["relative", "absolute"]


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


def median_embedding_norm(model: nn.Module) -> float:
    """The median L2 norm of the rows of the model's input-embedding matrix: the unit of relative radii."""
    weight = model.get_input_embeddings().weight
    if weight.numel() == 0:  # a parameter already sharded away (ZeRO-3): nothing to measure on this rank
        raise XrobustError("noise.eps_scale=relative needs the input-embedding matrix; use eps_scale=absolute")
    with torch.no_grad():
        return float(weight.detach().float().norm(dim=-1).median())


def resolve_perturbation(spec: dict[str, Any], model: nn.Module) -> dict[str, Any]:
    """The test-time perturbation spec (eval.perturbation) with its radius in both scales, measured on `model`."""
    norm = median_embedding_norm(model)
    scale = spec.get("eps_scale", "relative")  # checked at start-up (xrobust.config.validate)
    eps = spec["eps"]
    relative, absolute = (eps, eps * norm) if scale == "relative" else (eps / norm, eps)
    measured = {"median_embedding_norm": norm, "eps_relative": relative, "eps_absolute": absolute}
    return spec | {"eps_scale": scale} | measured


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
    norm, measured once in `setup` (or at the first step when used without it); `radius(field)` is the radius in
    embedding units either way. `perturb_special_tokens: false` leaves CLS/SEP/... untouched, as padding.
    """

    norm: perturb.Norm = "l2"
    eps: float
    eps_scale: EpsScale = "relative"
    perturb_special_tokens: bool = True
    seed: int = 1
    state_key: ClassVar[str] = "generators"
    scaled_fields: ClassVar[tuple[str, ...]] = ("eps",)

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self.eps >= 0, "eps", self.eps, "must be >= 0")
        self.generators = RankGenerators(self.seed)
        self.embedding_norm: float | None = None
        self.special_ids: torch.Tensor | None = None

    def setup(self, model: nn.Module, tokenizer: Any, train_rows: Any = None) -> None:
        self.embedding_norm = median_embedding_norm(model)
        if tokenizer is not None:
            self.special_ids = torch.tensor(sorted(set(tokenizer.all_special_ids)), dtype=torch.long)

    def radius(self, field: str, model: nn.Module | None = None) -> float:
        """The configured radius `field` in embedding units (measuring the model if setup never ran)."""
        value = getattr(self, field)
        if self.eps_scale == "absolute":
            return value
        if self.embedding_norm is None:
            if model is None:
                raise XrobustError("noise.eps_scale=relative: setup(model, tokenizer) must run before radius()")
            self.embedding_norm = median_embedding_norm(model)
        return value * self.embedding_norm

    def positions(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """(batch, length): 1 on the tokens this method perturbs (real tokens; special ones only if enabled)."""
        if self.perturb_special_tokens:
            return attention_mask
        if self.special_ids is None:
            raise XrobustError("noise.perturb_special_tokens=false: setup(model, tokenizer) must run first")
        return attention_mask * ~torch.isin(input_ids, self.special_ids.to(input_ids.device))

    def state_dict(self) -> dict[str, Any]:
        """The per-rank generators' states under `state_key`, so a resume continues the noise stream."""
        return {self.state_key: self.generators.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generators.load_state_dict(state.get(self.state_key, {}))

    def params(self) -> dict[str, Any]:
        """The fields, the ball's geometry, and each radius both relative and absolute (None until measured)."""
        norm = self.embedding_norm
        measured = {"median_embedding_norm": norm}
        for field in self.scaled_fields:
            value = getattr(self, field)
            relative = value if self.eps_scale == "relative" else (value / norm if norm else None)
            absolute = value if self.eps_scale == "absolute" else (value * norm if norm is not None else None)
            measured |= {f"{field}_relative": relative, f"{field}_absolute": absolute}
        return super().params() | {"ball": perturb.BALL} | measured
