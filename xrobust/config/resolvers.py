"""The OmegaConf resolvers xrobust's configs use, registered when the package is imported (before Hydra composes).

`${xrobust.scaled:VALUE,SCALE}` is VALUE x SCALE: the optimizer's learning rate is each model's own
(optim.lr) times optim.lr_scale, so one sweep over lr_scale is a per-size learning-rate grid.
`${xrobust.native_precision:ACCELERATOR}` is the trainer's default precision, decided here and nowhere else.
"""

from __future__ import annotations

from omegaconf import OmegaConf


def scaled(value: float, scale: float) -> float:
    return float(value) * float(scale)


def native_precision(accelerator: str) -> str:
    """`bf16-mixed` where the device computes bf16 natively, else `32-true`. CPU: AVX-512 BF16 or AMX, where bf16
    autocast trains ~1.5x faster at the same accuracy (docs/performance.md) and without which it is slower than
    fp32. GPU: compute capability 8.0 or later (Ampere on); torch.cuda.is_bf16_supported() also counts the slow
    emulated bf16 of a V100 or T4. With no GPU visible (planning on a login node) the GPU configs get bf16-mixed,
    what the GPUs they are meant for have."""
    import torch

    if accelerator == "auto":
        accelerator = "gpu" if torch.cuda.is_available() else "cpu"
    if accelerator == "cpu":
        # torch's own CPU feature probes (private, hence looked up: a torch without them counts as no bf16)
        probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
        native = any(getattr(torch.cpu, probe, lambda: False)() for probe in probes)
    else:
        native = not torch.cuda.is_available() or torch.cuda.get_device_capability() >= (8, 0)
    return "bf16-mixed" if native else "32-true"


RESOLVERS = {"xrobust.scaled": scaled, "xrobust.native_precision": native_precision}


def register() -> None:
    """Register once per process; importing xrobust calls it."""
    for name, resolver in RESOLVERS.items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, resolver)
