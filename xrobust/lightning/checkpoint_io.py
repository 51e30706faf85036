"""Checkpoint files a kill cannot tear: written to a temporary name and renamed; a torn file left by an older
writer (or a full disk) is set aside before a resume, so the run resumes from the previous good one or starts clean.
After a job has written results.json, its checkpoints are cut down to what `checkpoint.keep_after_success` keeps."""

from __future__ import annotations

import logging
import pickle
import shutil
import zipfile
from pathlib import Path
from typing import Any

import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO
from torch.distributed.checkpoint import FileSystemReader

from xrobust.atomic import atomic_write
from xrobust.errors import XrobustError
from xrobust.lightning.sharded_checkpoint import recover_interrupted_swaps

log = logging.getLogger("xrobust")

KEEP_CHOICES = ("none", "best_weights", "all")
# What a checkpoint needs to be loaded as weights (TransferModule.load_from_checkpoint, ckpt_path=...): not the
# optimizer, scheduler, loop or random states, which only a resume needs.
WEIGHT_KEYS = ("state_dict", "epoch", "global_step", "pytorch-lightning_version", "hyper_parameters")
# A sharded checkpoint folder is whole once these exist: torch.distributed.checkpoint's `.metadata` (written by
# its coordinator after every shard) and Lightning's meta.pt (the non-tensor state, written after that).
SHARDED_META_FILE = "meta.pt"
SHARDED_COMPLETE_FILES = (".metadata", SHARDED_META_FILE)
CRASH_CHECKPOINT = "on_exception.ckpt"  # conf/callbacks/default.yaml's crash_checkpoint


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

    def load_checkpoint(self, path, map_location: Any = "cpu", weights_only: bool | None = None) -> dict[str, Any]:
        """torch.load memory-mapped (Lightning's own reads the whole file): on a resume or `test(ckpt_path=...)`
        every rank pages the weights and AdamW state in from the page cache the node shares, as they are copied
        into the model and optimizer, instead of each holding a private copy of the file."""
        if not Path(path).is_file():
            raise FileNotFoundError(f"Checkpoint file not found: {path}")
        return torch.load(path, map_location=map_location, weights_only=weights_only, mmap=True)


def read_checkpoint(path: Path) -> dict[str, Any]:
    """A checkpoint's top-level state without running code from it (`weights_only=True`: tensors and plain
    containers, as Lightning itself resumes); a sharded folder's is its meta.pt. Tensors are memory-mapped."""
    file = path / SHARDED_META_FILE if path.is_dir() else path
    try:
        return torch.load(file, map_location="cpu", mmap=True, weights_only=True)
    except pickle.UnpicklingError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise XrobustError(f"{file}: refused to read, it holds more than tensors and plain values ({first})") from err


def checkpoint_step(path: Path) -> int | None:
    return read_checkpoint(path).get("global_step")


def is_torn(path: Path) -> bool:
    """A checkpoint that cannot be opened: a file that is not a zip archive (cut short), a dangling link, or a
    sharded folder without the files written last (torch.distributed.checkpoint's `.metadata`, Lightning's
    meta.pt). Opens nothing: safe on folders others can write."""
    if path.is_symlink() and not path.exists():
        return True
    if path.is_dir():
        return not all((path / name).is_file() for name in SHARDED_COMPLETE_FILES) or is_torn(path / SHARDED_META_FILE)
    try:
        with zipfile.ZipFile(path) as archive:
            return not archive.namelist()
    except (zipfile.BadZipFile, OSError):
        return True


def shards_cut_short(folder: Path) -> bool:
    """A sharded folder whose shard files are shorter than its `.metadata` says (written in place by an older
    writer, then killed). Unpickles `.metadata` as the resume itself would: only for the run's own folder."""
    try:
        storage = FileSystemReader(folder).read_metadata().storage_data
    except Exception:  # any unreadable metadata: the resume could not read it either
        return True
    ends: dict[str, int] = {}
    for info in storage.values():
        ends[info.relative_path] = max(ends.get(info.relative_path, 0), info.offset + info.length)
    return any(not (folder / name).is_file() or (folder / name).stat().st_size < end for name, end in ends.items())


def set_aside_torn(run_dir: Path) -> list[Path]:
    """Before `ckpt_path=last`: rename every torn checkpoint under `run_dir` (intermediate stages included) to
    `<name>.torn`, and a crash checkpoint behind a later-step `last*.ckpt` to `<name>.stale`, one warning line each,
    so the run resumes from the newest good checkpoint or starts afresh (said in one line); clean up cut writes."""
    torn = []
    for folder in sorted(run_dir.glob("**/checkpoints")):
        recover_interrupted_swaps(folder)
        found = [p for p in sorted(folder.glob("*.ckpt")) if is_torn(p) or (p.is_dir() and shards_cut_short(p))]
        for path in found:
            if path.is_symlink() and not path.exists():
                path.unlink()
                log.warning("checkpoint %s pointed to a missing file: removed", path)
            else:
                path.replace(path.with_name(path.name + ".torn"))
                log.warning(
                    "checkpoint %s is incomplete (a write was cut short): set aside as %s.torn", path, path.name
                )
        set_aside_stale(folder)
        if found and not resume_candidates(folder):
            log.warning("no whole checkpoint left in %s to resume from: this stage starts afresh", folder)
        torn += found
    return torn


def resume_candidates(folder: Path) -> list[Path]:
    """The checkpoints `ckpt_path=last` chooses among (Lightning's last*.ckpt and the crash checkpoint)."""
    return [p for p in folder.glob("*.ckpt") if p.name.startswith("last") or p.name == CRASH_CHECKPOINT]


def set_aside_stale(folder: Path) -> None:
    """Lightning resumes from the newest file by mtime; a crash checkpoint written without a training step since
    a restore (older writers did) is newer than last.ckpt but holds an earlier step: it must not win."""
    crash = folder / CRASH_CHECKPOINT
    if not crash.exists():
        return
    lasts = [p for p in resume_candidates(folder) if p != crash]
    latest = max((checkpoint_step(p) or 0 for p in lasts), default=None)
    step = checkpoint_step(crash) or 0
    if latest is not None and step < latest:
        crash.replace(crash.with_name(crash.name + ".stale"))
        log.warning(
            "checkpoint %s holds step %d, behind last.ckpt's %d: set aside as %s.stale", crash, step, latest, crash.name
        )


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
        full = read_checkpoint(best)
        atomic_torch_save({k: full[k] for k in WEIGHT_KEYS if k in full}, best)
        del full
    for path in checkpoint_dir.iterdir():
        if best is not None and path.resolve() == best and not path.is_symlink():
            continue
        shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
    if best is None:
        checkpoint_dir.rmdir()
