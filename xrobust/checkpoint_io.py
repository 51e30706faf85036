"""Checkpoint files a kill cannot tear: written to a temporary name and renamed; a torn file left by an older
writer (or a full disk) is set aside before a resume, so the run resumes from the previous good one or starts clean.
After a job has written results.json, its checkpoints are cut down to what `checkpoint.keep_after_success` keeps."""

from __future__ import annotations

import logging
import shutil
import zipfile
from pathlib import Path
from typing import Any

import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO

from xrobust.atomic import atomic_write
from xrobust.errors import XrobustError

log = logging.getLogger("xrobust")

KEEP_CHOICES = ("none", "best_weights", "all")
# What a checkpoint needs to be loaded as weights (TransferModule.load_from_checkpoint, ckpt_path=...): not the
# optimizer, scheduler, loop or random states, which only a resume needs.
WEIGHT_KEYS = ("state_dict", "epoch", "global_step", "pytorch-lightning_version", "hyper_parameters")


def atomic_torch_save(payload: Any, path: Path) -> None:
    """torch.save streamed into a temporary file that then replaces the target (xrobust.atomic)."""
    atomic_write(path, lambda handle: torch.save(payload, handle))


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint writer (trainer `plugins`), streaming to a temporary file instead of a second copy in
    memory, then renaming it: a kill mid-write leaves the previous file whole and no partial one under its name."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options")
        atomic_torch_save(checkpoint, Path(path))


def is_torn(path: Path) -> bool:
    """A checkpoint file that torch.load cannot open: not a zip archive (cut short) or a dangling link. Folders
    (sharded checkpoints) are not checked."""
    if path.is_symlink() and not path.exists():
        return True
    if path.is_dir():
        return False
    try:
        with zipfile.ZipFile(path) as archive:
            return not archive.namelist()
    except (zipfile.BadZipFile, OSError):
        return True


def set_aside_torn(run_dir: Path) -> list[Path]:
    """Rename every torn checkpoint under `run_dir` (intermediate stages included) to `<name>.torn`, one warning
    line each, so `ckpt_path=last` picks the newest good checkpoint, or none; remove temporary files of cut writes."""
    for leftover in run_dir.glob("**/checkpoints/.*.tmp"):  # a write killed before its rename: never resumable
        leftover.unlink()
    torn = [p for p in sorted(run_dir.glob("**/checkpoints/*.ckpt")) if is_torn(p)]
    for path in torn:
        if path.is_symlink() and not path.exists():
            path.unlink()
            log.warning("checkpoint %s pointed to a missing file: removed", path)
        else:
            path.replace(path.with_name(path.name + ".torn"))
            log.warning("checkpoint %s is incomplete (a write was cut short): set aside as %s.torn", path, path.name)
    return torn


def keep_after_success(checkpoint_dir: Path, selected: str | None, keep: str) -> None:
    """Cut a finished job's checkpoints down: `all` keeps them, `best_weights` keeps the selected checkpoint's
    weights only (no optimizer state) under its own name, `none` removes the folder. A sharded checkpoint (a folder)
    is kept whole under `best_weights`: its weights and optimizer shards are not separable file by file."""
    if keep not in KEEP_CHOICES:
        raise XrobustError(f"invalid config: checkpoint.keep_after_success={keep!r}; choose one of {KEEP_CHOICES}")
    if keep == "all" or not checkpoint_dir.is_dir():
        return
    best = Path(selected).resolve() if keep == "best_weights" and selected else None
    if best is not None and best.is_file():
        full = torch.load(best, map_location="cpu", mmap=True, weights_only=False)
        atomic_torch_save({k: full[k] for k in WEIGHT_KEYS if k in full}, best)
        del full
    for path in checkpoint_dir.iterdir():
        if best is not None and path.resolve() == best and not path.is_symlink():
            continue
        shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
    if best is None:
        checkpoint_dir.rmdir()
