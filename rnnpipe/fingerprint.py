"""Content fingerprints of artifacts and inputs, shared by the runner (cache keys) and the stages."""

from __future__ import annotations

import hashlib
from pathlib import Path


def fingerprint_dir(path: Path) -> str:
    """A content hash of a file or directory tree (names and bytes)."""
    h = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for f in files:
        h.update(str(f.relative_to(path) if f != path else f.name).encode() + b"\0")
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        h.update(b"\0")
    return h.hexdigest()
