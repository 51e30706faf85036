"""One embedding-space perturbation for training (rs_rp, adv) and for the perturbed test read-out
(eval.perturbation): its radii in embedding units, how it samples, and its seeded generators, in one object.

Relative radii mean the same perturbation size at every width d: an L2 radius is a fraction of the median token
norm, while a per-coordinate quantity (a Gaussian sigma, an L-inf bound, an L-inf step) is a fraction of
median_norm / sqrt(d), because d coordinates of size s make an L2 length of s * sqrt(d). The scale is measured
once per model (`EmbeddingScale`) and shared by every perturbation of that model."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any, Literal

import torch
from torch import nn

from xrobust.errors import XrobustError
from xrobust.noise import perturb

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


@dataclasses.dataclass(frozen=True)
class EmbeddingScale:
    """What relative radii are fractions of, measured on the input-embedding matrix while it is whole (before
    any sharding): its median row norm and its width."""

    median_norm: float
    width: int

    @classmethod
    def measure(cls, model: nn.Module) -> EmbeddingScale:
        return cls(median_embedding_norm(model), embedding_width(model))

    def unit(self, per_coordinate: bool) -> float:
        """The embedding length that a relative radius of 1 stands for: the median token norm for an L2 quantity,
        median_norm / sqrt(d) for a per-coordinate one (whose L2 size is sqrt(d) times larger)."""
        return self.median_norm / math.sqrt(self.width) if per_coordinate else self.median_norm


@dataclasses.dataclass(kw_only=True, eq=False)
class Perturbation:
    """Per-token noise on input embeddings (perturb.py's balls, or a Gaussian), zero where the mask is 0.

    `radii` are the configured sizes by field name (`eps`, `sigma`, `alpha`) in the `eps_scale` they name;
    `radius(field)` is one in embedding units, per coordinate for `coordinate_fields` and every radius under
    `norm: linf`. `generators` is the training stream (per rank, kept in checkpoints); the read-outs re-seed a
    generator from what they read, so a prediction depends only on the model and the batch."""

    radii: dict[str, float]
    norm: perturb.Norm = "l2"
    distribution: perturb.Distribution = "uniform"
    eps_scale: EpsScale = "relative"
    coordinate_fields: tuple[str, ...] = ()
    seed: int = 0
    scale: EmbeddingScale | None = None

    def __post_init__(self) -> None:
        self.generators = RankGenerators(self.seed)

    @classmethod
    def readout(cls, spec: Mapping[str, Any], scale: EmbeddingScale) -> Perturbation:
        """eval.perturbation: a uniform draw from each real token's ball of radius eps, identical for every method."""
        return cls(
            radii={"eps": spec["eps"]},
            norm=spec.get("norm", "l2"),
            eps_scale=spec.get("eps_scale", "relative"),  # checked at start-up (xrobust.config.checks.validate)
            seed=spec.get("seed", 0),
            scale=scale,
        )

    def measure(self, model: nn.Module, scale: EmbeddingScale | None = None) -> None:
        """Take the model's embedding scale: `scale` when something measured it already, else measured here."""
        self.scale = scale if scale is not None else EmbeddingScale.measure(model)

    def per_coordinate(self, field: str) -> bool:
        """Whether `field` bounds each coordinate (a Gaussian sigma, any L-inf radius) rather than an L2 length."""
        return field in self.coordinate_fields or self.norm == "linf"

    def unit(self, field: str) -> float | None:
        """The embedding length of a relative `field` of 1 (None until the model is measured)."""
        return None if self.scale is None else self.scale.unit(self.per_coordinate(field))

    def radius(self, field: str, model: nn.Module | None = None) -> float:
        """The configured radius `field` in embedding units (measuring `model` if nothing measured one yet)."""
        value = self.radii[field]
        if self.eps_scale == "absolute":
            return value
        if self.scale is None:
            if model is None:
                raise XrobustError("noise.eps_scale=relative: setup(model, tokenizer) must run before radius()")
            self.measure(model)
        return value * self.unit(field)

    def sample(
        self, like: torch.Tensor, mask: torch.Tensor, generator: torch.Generator, model: nn.Module | None = None
    ) -> torch.Tensor:
        """One draw shaped like `like`: uniform in each masked token's ball of radius eps, or N(0, sigma^2 I)."""
        if self.distribution == "gaussian":
            return perturb.sample_gaussian(like, mask, self.radius("sigma", model), generator)
        return perturb.sample_ball(like, mask, self.radius("eps", model), self.norm, generator)

    def training_generator(self, device: torch.device) -> torch.Generator:
        """The training noise's stream on `device`: continues across steps, seeded apart per rank."""
        return self.generators.get(device)

    def prediction_generator(self, device: torch.device) -> torch.Generator:
        """The smoothed classifier's generator, re-seeded per batch."""
        return device_generator(self.seed + 1, device)

    def test_batch_generator(self, device: torch.device, dataloader_idx: int, batch_idx: int) -> torch.Generator:
        """The perturbed read-out's generator for one test batch: every test set and batch draws apart."""
        return device_generator(self.seed * 1_000_003 + dataloader_idx * 10_007 + batch_idx, device)

    def measured(self) -> dict[str, Any]:
        """The scale and each radius in both scales (None until measured)."""
        measured = self.scale is not None
        out = {
            "median_embedding_norm": self.scale.median_norm if measured else None,
            "embedding_dim": self.scale.width if measured else None,
        }
        for field, value in self.radii.items():
            unit = self.unit(field)
            relative = value if self.eps_scale == "relative" else (value / unit if unit else None)
            absolute = value if self.eps_scale == "absolute" else (value * unit if unit is not None else None)
            out |= {f"{field}_relative": relative, f"{field}_absolute": absolute}
        return out

    def record(self, asked: Mapping[str, Any]) -> dict[str, Any]:
        """What results.json records: the configured keys, then what `measured` adds."""
        return dict(asked) | {"eps_scale": self.eps_scale} | self.measured()
