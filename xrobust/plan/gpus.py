"""The GPUs a plan can be made for, from the vendors' datasheets: memory, dense 16-bit tensor FLOP/s (the
sparse figures halved) and the links between GPUs."""

from __future__ import annotations

from dataclasses import dataclass, replace
from types import MappingProxyType

from omegaconf import DictConfig

from xrobust.errors import XrobustError
from xrobust.plan.options import PlanOptions


@dataclass(frozen=True)
class Gpu:
    """Vendor datasheet figures: dense (not 2:4 sparse) 16-bit tensor FLOP/s and the links between GPUs."""

    name: str
    peak_flops: float
    memory_gb: float
    link_gbs: float  # NVLink, GB/s each way (half the sheet's bidirectional figure)
    network_gbs: float  # between nodes, GB/s per GPU (one NIC per GPU in a DGX)


GPUS = MappingProxyType(
    {
        # H100 SXM5: BF16 1,979 TFLOP/s with sparsity = 989 dense; 80 GB; NVLink 900 GB/s; DGX H100 400 Gb/s NICs.
        "h100": Gpu("H100 SXM 80GB", 989e12, 80, 450, 50),
        # A100 SXM4: BF16 312 TFLOP/s dense; 80 GB; NVLink 600 GB/s; DGX A100 200 Gb/s NICs.
        "a100": Gpu("A100 SXM 80GB", 312e12, 80, 300, 25),
        # H200 SXM: the H100's compute (989 dense) with 141 GB of HBM3e; NVLink 900 GB/s.
        "h200": Gpu("H200 SXM 141GB", 989e12, 141, 450, 50),
    }
)


def gpu_of(plan: PlanOptions | DictConfig) -> Gpu:
    """plan.gpu, with plan.peak_tflops (e.g. a CPU's measured rate) replacing the sheet's peak when set."""
    name = str(plan.gpu).lower()
    if name not in GPUS:
        raise XrobustError(f"plan.gpu={name!r}: expected one of {', '.join(GPUS)}")
    gpu = GPUS[name]
    if plan.peak_tflops:
        peak = float(plan.peak_tflops)
        return replace(gpu, name=f"{gpu.name} at {peak:g} TFLOP/s (plan.peak_tflops)", peak_flops=peak * 1e12)
    return gpu
