"""The typed schemas of the noise group (conf/noise/*.yaml): one per method, each field a keyword argument of the
method's class (xrobust/noise/), so a misspelled or mistyped noise key fails at composition.

Each conf/noise/<option>.yaml lists its schema first (`schema/<name>@_here_`, stored under noise/schema, out of the
group's options, so `noise=glob(*)` sweeps only the methods), as task, data and eval do: listed after `_self_` it
would resolve `text_fields: ${task.text_fields}` as it merged. The fields are in the YAML's order, so the composed
keys keep their place; every value is the YAML's (MISSING here). The ranges and the allowed strings (norm: l2 |
linf, ...) stay the classes' own checks, which Python callers get too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from omegaconf import MISSING

from xrobust.config.fields import Number


@dataclass
class NoiseConfig:
    """What every method's config holds (all of noise=none): the class and the name runs and reports go by."""

    _target_: str = MISSING
    name: str = MISSING


@dataclass
class RandomPerturbationConfig(NoiseConfig):
    """noise=rs_rp (xrobust/noise/random_perturbation.py; norm, eps_scale, eps, perturb_special_tokens and seed are
    EmbeddingNoise's, in embeddings.py)."""

    distribution: str = MISSING
    norm: str = MISSING
    eps_scale: str = MISSING
    eps: Number = MISSING
    sigma: Number = MISSING
    perturb_special_tokens: bool = MISSING
    num_samples: int = MISSING
    smoothed_prediction: bool = MISSING
    num_test_samples: int = MISSING
    seed: int = MISSING


@dataclass
class AdversarialConfig(NoiseConfig):
    """noise=adv (xrobust/noise/adversarial.py; the EmbeddingNoise fields as rs_rp's)."""

    variant: str = MISSING
    norm: str = MISSING
    eps_scale: str = MISSING
    eps: Number = MISSING
    alpha: Number = MISSING
    perturb_special_tokens: bool = MISSING
    steps: int = MISSING
    random_start: bool = MISSING
    clean_weight: Number = MISSING
    adv_weight: Number = MISSING
    seed: int = MISSING


@dataclass
class FileNeighboursConfig:
    """noise=rs_da's neighbours: Robust-XLT's synonym file (null: downloaded once into cache_dir)."""

    source: str = MISSING
    path: str | None = MISSING
    cache_dir: str | None = MISSING


@dataclass
class EmbeddingNeighboursConfig:
    """noise=code_switch's neighbours: each model's own nearest whole words."""

    source: str = MISSING
    k: int = MISSING
    cache_dir: str | None = MISSING
    chunk_size: int = MISSING


@dataclass
class AugmentationConfig(NoiseConfig):
    """What noise=rs_da and noise=code_switch share (xrobust/noise/augmentation.py DataAugmentation)."""

    # Each source's own (the subclasses), declared here to keep its place before text_fields.
    neighbours: Any = MISSING
    # The text columns rewritten; null: every text column.
    text_fields: list[str] | None = MISSING
    seed: int = MISSING


@dataclass
class FileAugmentationConfig(AugmentationConfig):
    """noise=rs_da: the substitution with the synonym file's neighbours."""

    neighbours: FileNeighboursConfig = field(default_factory=FileNeighboursConfig)


@dataclass
class EmbeddingAugmentationConfig(AugmentationConfig):
    """noise=code_switch: the substitution with the model's embedding neighbours."""

    neighbours: EmbeddingNeighboursConfig = field(default_factory=EmbeddingNeighboursConfig)


# Each schema's name under noise/schema, as conf/noise/<option>.yaml lists it.
NOISE_SCHEMAS: dict[str, type] = {
    "none": NoiseConfig,
    "random_perturbation": RandomPerturbationConfig,
    "adversarial": AdversarialConfig,
    "file_augmentation": FileAugmentationConfig,
    "embedding_augmentation": EmbeddingAugmentationConfig,
}
