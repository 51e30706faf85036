"""Multiple-comparison adjustment of the p-values of one table row (its languages and their mean).

Holm (1979) controls the family-wise error rate: the chance of calling any cell of the row significant when
none differs. Benjamini-Hochberg (1995) controls the false discovery rate: the expected share of false calls
among the cells called. Written here because neither scipy nor statsmodels is a dependency.
"""

from __future__ import annotations

import numpy as np

HOLM = "holm"
BH = "bh"
NO_CORRECTION = "none"


def holm(p_values) -> np.ndarray:
    """Holm's step-down adjusted p-values: the k-th smallest times (m - k + 1), made monotone, capped at 1."""
    p = np.asarray(p_values, dtype=np.float64)
    order = np.argsort(p, kind="stable")
    scaled = (len(p) - np.arange(len(p))) * p[order]
    adjusted = np.empty_like(p)
    adjusted[order] = np.minimum(1.0, np.maximum.accumulate(scaled))
    return adjusted


def benjamini_hochberg(p_values) -> np.ndarray:
    """Benjamini-Hochberg step-up adjusted p-values: the k-th smallest times m / k, made monotone from the
    largest down, capped at 1."""
    p = np.asarray(p_values, dtype=np.float64)
    order = np.argsort(p, kind="stable")[::-1]
    ranks = len(p) - np.arange(len(p))
    adjusted = np.empty_like(p)
    adjusted[order] = np.minimum(1.0, np.minimum.accumulate(p[order] * len(p) / ranks))
    return adjusted


CORRECTIONS = {HOLM: holm, BH: benjamini_hochberg, NO_CORRECTION: lambda p: np.asarray(p, dtype=np.float64)}
CORRECTION_NAMES = {HOLM: "Holm", BH: "Benjamini-Hochberg", NO_CORRECTION: "no correction"}


def adjust(p_values: dict[str, float], method: str = HOLM) -> dict[str, float]:
    """The row's p-values (cell -> p), adjusted together by `method` (holm, bh or none)."""
    if method not in CORRECTIONS:
        raise ValueError(f"unknown correction {method!r}; choose one of {', '.join(CORRECTIONS)}")
    names = list(p_values)
    adjusted = CORRECTIONS[method]([p_values[name] for name in names]) if names else []
    return {name: float(value) for name, value in zip(names, adjusted, strict=True)}
