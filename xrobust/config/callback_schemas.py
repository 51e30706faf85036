"""The typed schemas of the callbacks group (conf/callbacks/*.yaml): each callback the YAML configures, its keys
typed as its class takes them, so `callbacks.early_stopping.patiense=3` or `patience=abc` fails at composition.

Each option lists one schema per callback before `_self_` (`schema/<name>@<name>`, stored under callbacks/schema),
in the YAML's order, and every value is the YAML's (MISSING here). The callbacks node itself stays open:
`~callbacks.model_checkpoint` drops a callback, and one added whole (`+callbacks.timer._target_=...`) or a key a
class takes beside these (`+callbacks.model_checkpoint.every_n_epochs=2`) is checked against its class's signature
at start-up (keys.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from omegaconf import MISSING

from xrobust.config.fields import Number


@dataclass
class ModelCheckpointConfig:
    """callbacks.model_checkpoint: the selected weights (xrobust/lightning/latest_best.py LatestBestCheckpoint, a
    Lightning ModelCheckpoint)."""

    _target_: str = MISSING
    dirpath: str | None = MISSING
    monitor: str | None = MISSING
    mode: str = MISSING
    save_top_k: int = MISSING
    # true, false, null or Lightning's "link".
    save_last: bool | str | None = MISSING
    filename: str | None = MISSING
    auto_insert_metric_name: bool = MISSING


@dataclass
class CrashCheckpointConfig:
    """callbacks.crash_checkpoint (xrobust/lightning/callbacks.py CrashCheckpoint)."""

    _target_: str = MISSING
    dirpath: str | None = MISSING
    filename: str = MISSING


@dataclass
class FiniteLossGuardConfig:
    """callbacks.finite_loss_guard (xrobust/lightning/callbacks.py FiniteLossGuard)."""

    _target_: str = MISSING
    check_every_n_steps: int = MISSING


@dataclass
class RequeueConfig:
    """callbacks.requeue (xrobust/lightning/requeue.py RequeueOnSignal)."""

    _target_: str = MISSING
    signal_name: str | None = MISSING
    check_every_n_steps: int = MISSING


@dataclass
class LastEveryConfig:
    """callbacks.last_every: last.ckpt on a clock (Lightning's ModelCheckpoint)."""

    _target_: str = MISSING
    dirpath: str | None = MISSING
    save_top_k: int = MISSING
    save_last: bool | str | None = MISSING
    # A datetime.timedelta node (its own _target_), or null.
    train_time_interval: Any = MISSING


@dataclass
class EarlyStoppingConfig:
    """callbacks.early_stopping (Lightning's EarlyStopping)."""

    _target_: str = MISSING
    monitor: str = MISSING
    mode: str = MISSING
    patience: int = MISSING
    min_delta: Number = MISSING
    strict: bool = MISSING
    verbose: bool = MISSING


# Each callback's schema under callbacks/schema, named as its key in conf/callbacks/<option>.yaml.
CALLBACK_SCHEMAS: dict[str, type] = {
    "model_checkpoint": ModelCheckpointConfig,
    "crash_checkpoint": CrashCheckpointConfig,
    "finite_loss_guard": FiniteLossGuardConfig,
    "requeue": RequeueConfig,
    "last_every": LastEveryConfig,
    "early_stopping": EarlyStoppingConfig,
}
