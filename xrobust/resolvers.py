"""The OmegaConf resolvers xrobust's configs use, registered when the package is imported (before Hydra composes).

`${xrobust.scaled:VALUE,SCALE}` is VALUE x SCALE: the optimizer's learning rate is each model's own
(optim.lr) times optim.lr_scale, so one sweep over lr_scale is a per-size learning-rate grid.
"""

from __future__ import annotations

from omegaconf import OmegaConf


def scaled(value: float, scale: float) -> float:
    return float(value) * float(scale)


def register() -> None:
    """Register once per process; importing xrobust calls it."""
    if not OmegaConf.has_resolver("xrobust.scaled"):
        OmegaConf.register_new_resolver("xrobust.scaled", scaled)
