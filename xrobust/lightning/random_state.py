"""Every rank's random streams in a checkpoint, so a resumed run draws what an uninterrupted one would.

Dropout draws from the global torch generators (CPU, and the rank's CUDA device) and each noise method from its
own; all differ between ranks. Under DDP only rank 0 writes the checkpoint, so the states are gathered from
every rank into it, one entry per global rank, and each rank restores its own entry on load.
"""

from __future__ import annotations

import logging
import random
from typing import Any

import pytorch_lightning as pl
import torch
import torch.distributed as dist

from xrobust.noise.base import NoiseMethod

log = logging.getLogger("xrobust")


def capture(noise: NoiseMethod, device: torch.device) -> dict[str, Any]:
    """This process's random state: torch CPU and CUDA (the rank's device), Python's, the noise method's."""
    state = {"torch": torch.get_rng_state(), "python": random.getstate(), "noise": noise.state_dict()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def restore(state: dict[str, Any], noise: NoiseMethod, device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    noise.load_state_dict(state["noise"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def gather(state: dict[str, Any]) -> list[dict[str, Any]]:
    """Every rank's state, indexed by global rank (a collective: every rank must call it)."""
    if not (dist.is_available() and dist.is_initialized()):
        return [state]
    states: list = [None] * dist.get_world_size()
    dist.all_gather_object(states, state)
    return states


def rank_device(module: pl.LightningModule) -> torch.device:
    """The device whose CUDA stream is this rank's: the strategy's root device. Single-device and DDP resumes load
    the checkpoint before the strategy moves the module, so `module.device` is still the CPU there."""
    trainer = module._trainer  # None when loaded outside a Trainer (load_from_checkpoint)
    return trainer.strategy.root_device if trainer is not None else module.device


def restore_own(states: list[dict[str, Any]], noise: NoiseMethod, device: torch.device) -> None:
    """Restore this rank's entry; a checkpoint from another number of ranks cannot continue every stream."""
    rank = dist.get_rank() if dist.is_available() and dist.is_initialized() else 0
    world = dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1
    if len(states) != world:
        log.warning(
            "checkpoint written by %d rank(s), resumed on %d: random streams start afresh, so this run will "
            "differ from an uninterrupted one",
            len(states),
            world,
        )
        return
    restore(states[rank], noise, device)
