"""Files that are either the old version or the new one, never half of each: results, predictions, checkpoints.

A kill or pre-emption mid-write must not leave a file that the next run trusts (a resume from a torn last.ckpt, a
results.json that skips a job)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

PROCESS_STATUS = Path("/proc/self/status")


def current_umask() -> int:
    """The process umask, read from /proc (Linux) without changing it; elsewhere set and restored at once."""
    try:
        for line in PROCESS_STATUS.read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """`write` fills a temporary file in the target's folder; it is fsynced, renamed over the target, and the
    folder fsynced, so the rename itself survives a crash. The file gets the mode `open()` would give it
    (0666 less the umask): mkstemp's private 0600 would hide results from the group on a shared filesystem."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), 0o666 & ~current_umask())
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda handle: handle.write(text.encode("utf-8")))
