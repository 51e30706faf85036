"""Sharded checkpoint folders (FSDP2's distributed checkpoints) that a kill cannot tear: every rank writes its
shard into a hidden sibling folder, and only once all have written does rank 0 swap it in for the target.

Lightning's ModelParallelStrategy rewrites `last.ckpt/` in place, so a kill mid-save leaves the previous
`.metadata` beside half-new shards and every later resume fails. A kill at any point of the swap leaves either
the previous folder or the new one under the target name, or, between the two renames, the previous one under
`.<name>.old`, which `recover_interrupted_swaps` puts back before a resume.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger("xrobust")

STAGING_SUFFIX = ".tmp"
OLD_SUFFIX = ".old"


def staging_path(target: Path) -> Path:
    """Where a checkpoint is written before it is swapped in: hidden, and not named `*.ckpt`, so neither Lightning's
    `ckpt_path=last` nor a report ever takes it for a checkpoint."""
    return target.with_name(f".{target.name}{STAGING_SUFFIX}")


def old_path(target: Path) -> Path:
    return target.with_name(f".{target.name}{OLD_SUFFIX}")


def remove(path: Path) -> None:
    """Remove a checkpoint file or folder, if there is one."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def swap_in(staging: Path, target: Path) -> None:
    """Replace `target` by the written `staging` folder: the previous one is renamed away, the new one renamed in,
    then the previous one removed (a folder cannot be renamed over a non-empty folder in one step)."""
    for written in staging.iterdir():
        if written.is_file():
            fsync(written)
    fsync(staging)
    previous = old_path(target)
    remove(previous)
    if target.exists() or target.is_symlink():
        target.rename(previous)
    staging.rename(target)
    fsync(target.parent)
    remove(previous)


def save_swapped(strategy: Any, save: Callable[[dict, Path], None], checkpoint: dict, filepath: Any) -> None:
    """`save(checkpoint, folder)` (the strategy's own sharded save, collective) into the staging folder, then rank 0
    swaps it in; the barriers make every rank's shard land before the swap and the swap land before anyone goes on."""
    target = Path(strategy.broadcast(filepath))
    staging = staging_path(target)
    if strategy.is_global_zero:
        remove(staging)  # a save killed earlier: never resumable
    strategy.barrier("sharded_checkpoint_staging")
    save(checkpoint, staging)
    strategy.barrier("sharded_checkpoint_written")
    if strategy.is_global_zero:
        swap_in(staging, target)
    strategy.barrier("sharded_checkpoint_swapped")


def recover_interrupted_swaps(checkpoint_dir: Path) -> None:
    """Remove staging leftovers (a save cut short) and put back a previous checkpoint whose replacement never
    arrived (a kill between the two renames of `swap_in`), one warning line each."""
    for leftover in checkpoint_dir.glob(f".*{STAGING_SUFFIX}"):
        remove(leftover)
    for previous in checkpoint_dir.glob(f".*{OLD_SUFFIX}"):
        target = previous.with_name(previous.name[1 : -len(OLD_SUFFIX)])
        if target.exists():
            remove(previous)
        else:
            previous.rename(target)
            log.warning("checkpoint %s: a save was cut short while swapping it in; the previous one is back", target)
