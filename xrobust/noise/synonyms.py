"""Where `noise=rs_da`'s synonym file comes from: Robust-XLT's counter-fitted neighbours (Huang et al. 2021), the
file the published RS-DA used, at a path the user gives or downloaded once from its upstream at a pinned commit,
checked against its sha256, into the neighbour cache. Offline, one line says where to put it."""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from pathlib import Path

from xrobust.atomic import atomic_write
from xrobust.errors import XrobustError

FILE_NAME = "counterfitted_neighbors.json"
# uclanlp/Robust-XLT at its newest commit; the file is unchanged since the repository's first commit (0bb3c34).
COMMIT = "175cddb89c4e86c7152d0175db8f824f7f4e6bad"
URL = f"https://raw.githubusercontent.com/uclanlp/Robust-XLT/{COMMIT}/{FILE_NAME}"
SHA256 = "103247143f39bd5dd66850f3a912393392641dbd98093c61e2b24a4cc8a96fb0"


def offline() -> bool:
    """HF_HUB_OFFLINE, the project's one switch for "download nothing", set to a true value."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def cached_path(cache_dir: str | None) -> Path:
    """Where the downloaded file lives: the neighbour cache, in a folder named for the pinned commit."""
    if not cache_dir:
        raise XrobustError("noise.neighbours.cache_dir is empty: set it, or noise.neighbours.path=<synonym file>")
    return Path(cache_dir).expanduser() / f"robust-xlt-{COMMIT[:7]}" / FILE_NAME


def where_to_put_it(target: Path) -> str:
    return f"download {URL} to {target}, or set noise.neighbours.path=<its path>"


def download(url: str, target: Path, sha256: str = SHA256) -> None:
    """`url` written atomically to `target` only if its sha256 is the pinned one."""
    try:
        with urllib.request.urlopen(url, timeout=120) as response:
            data = response.read()
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", err)
        raise XrobustError(f"noise=rs_da: could not download {url} ({reason}); {where_to_put_it(target)}") from None
    found = hashlib.sha256(data).hexdigest()
    if found != sha256:
        raise XrobustError(f"noise=rs_da: {url} has sha256 {found}, expected {sha256}; {where_to_put_it(target)}")
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(target, lambda handle: handle.write(data))


def synonym_file(path: str | None, cache_dir: str | None, url: str = URL) -> Path:
    """The synonym file to read: `path` when given, else the pinned upstream file in the cache (downloaded once)."""
    if path:
        return Path(path).expanduser()
    target = cached_path(cache_dir)
    if target.is_file():
        found = sha256_of(target)
        if found != SHA256:
            raise XrobustError(
                f"noise=rs_da: {target} has sha256 {found}, not Robust-XLT's {SHA256}: delete it to download "
                "it again, or set noise.neighbours.path=<your synonym file>"
            )
        return target
    if offline():
        raise XrobustError(
            f"noise=rs_da needs Robust-XLT's synonym file and HF_HUB_OFFLINE is set: {where_to_put_it(target)}"
        )
    download(url, target)
    return target
