"""What every embedding-space perturbation needs: the input embeddings apart from the other inputs, seeded
generators on the tensors' device (rs_rp, adv and the perturbed test read-out of `module.py`), the model's
embedding scale that relative radii are measured in, and the fields and checks that rs_rp and adv share
(`EmbeddingNoise`).

Relative radii mean the same perturbation size at every width d: an L2 radius is a fraction of the median token
norm, while a per-coordinate quantity (a Gaussian sigma, an L-inf bound, an L-inf step) is a fraction of
median_norm / sqrt(d), because d coordinates of size s make an L2 length of s * sqrt(d)."""

from __future__ import annotations

import dataclasses
import math
from typing import Any, ClassVar, Literal

import torch
from torch import nn

from xrobust.errors import XrobustError
from xrobust.noise import perturb
from xrobust.noise.base import NoiseMethod, require

# relative: radii are fractions of the model's median token-embedding L2 norm (per-coordinate ones of that norm
# over sqrt(d)), so one config is the same perturbation for every model width; absolute: raw embedding units.
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


def embedding_width(model: nn.Module) -> int:
    """d, the input embeddings' width (read from the module, so a sharded-away weight still answers)."""
    embedding = model.get_input_embeddings()
    return int(getattr(embedding, "embedding_dim", embedding.weight.shape[-1]))


def relative_unit(median_norm: float, width: int, per_coordinate: bool) -> float:
    """The embedding length that a relative radius of 1 stands for: the median token norm for an L2 quantity,
    median_norm / sqrt(d) for a per-coordinate one (whose L2 size is sqrt(d) times larger)."""
    return median_norm / math.sqrt(width) if per_coordinate else median_norm


def resolve_perturbation(spec: dict[str, Any], model: nn.Module) -> dict[str, Any]:
    """The test-time perturbation spec (eval.perturbation) with its radius in both scales, measured on `model`
    (an L-inf eps is per coordinate: relative to median_norm / sqrt(d))."""
    norm, width = median_embedding_norm(model), embedding_width(model)
    unit = relative_unit(norm, width, spec.get("norm", "l2") == "linf")
    scale = spec.get("eps_scale", "relative")  # checked at start-up (xrobust.config.checks.validate)
    eps = spec["eps"]
    relative, absolute = (eps, eps * unit) if scale == "relative" else (eps / unit, eps)
    measured = {"median_embedding_norm": norm, "embedding_dim": width, "eps_relative": relative}
    return spec | {"eps_scale": scale} | measured | {"eps_absolute": absolute}


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
        self.generators = RankGenerators(self.seed)
        self.embedding_norm: float | None = None
        self.embedding_dim: int | None = None
        self.special_ids: torch.Tensor | None = None

    def setup(self, model: nn.Module, tokenizer: Any, train_rows: Any = None) -> None:
        self.measure(model)
        if tokenizer is not None:
            self.special_ids = torch.tensor(sorted(set(tokenizer.all_special_ids)), dtype=torch.long)

    def measure(self, model: nn.Module) -> None:
        """The model's median token-embedding norm and width: what relative radii are fractions of."""
        self.embedding_norm, self.embedding_dim = median_embedding_norm(model), embedding_width(model)

    def per_coordinate(self, field: str) -> bool:
        """Whether `field` bounds each coordinate (a Gaussian sigma, any L-inf radius) rather than an L2 length."""
        return field in self.coordinate_fields or self.norm == "linf"

    def unit(self, field: str) -> float | None:
        """The embedding length of a relative `field` of 1 (None until the model is measured)."""
        if self.embedding_norm is None:
            return None
        return relative_unit(self.embedding_norm, self.embedding_dim, self.per_coordinate(field))

    def radius(self, field: str, model: nn.Module | None = None) -> float:
        """The configured radius `field` in embedding units (measuring the model if setup never ran)."""
        value = getattr(self, field)
        if self.eps_scale == "absolute":
            return value
        if self.embedding_norm is None:
            if model is None:
                raise XrobustError("noise.eps_scale=relative: setup(model, tokenizer) must run before radius()")
            self.measure(model)
        return value * self.unit(field)

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
        measured = {"median_embedding_norm": self.embedding_norm, "embedding_dim": self.embedding_dim}
        for field in self.scaled_fields:
            value, unit = getattr(self, field), self.unit(field)
            relative = value if self.eps_scale == "relative" else (value / unit if unit else None)
            absolute = value if self.eps_scale == "absolute" else (value * unit if unit is not None else None)
            measured |= {f"{field}_relative": relative, f"{field}_absolute": absolute}
        return super().params() | {"ball": perturb.BALL} | measured
