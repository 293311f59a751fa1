"""The TF Serving layout: ``<serving_dir>/<model>/<version>/`` and a ``models.config`` beside them."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from .errors import RnnpipeError


def versions(base: Path) -> list[int]:
    """Complete versions (integer folders holding saved_model.pb), oldest first."""
    if not base.is_dir():
        return []
    return sorted(int(p.name) for p in base.iterdir()
                  if p.name.isdigit() and (p / "saved_model.pb").exists())


def latest_version(base: Path) -> int | None:
    found = versions(base)
    return found[-1] if found else None


ROLLED_BACK = ".rolled_back"  # not an integer: TF Serving ignores it


def next_version(base: Path) -> int:
    """One above every version ever pushed, rolled-back ones included: TF Serving never sees a number reused."""
    parked = [int(p.name.split("-")[0]) for p in (base / ROLLED_BACK).glob("*")]  # glob of a missing dir: []
    return max([0, *versions(base), *parked]) + 1


def rollback(base: Path, target: int | None = None) -> tuple[int, list[int]]:
    """Makes ``target`` (default: the one before the latest) the served version again.

    The newer versions are parked under ``.rolled_back/`` (renamed, not deleted), so TF Serving, which
    serves the highest integer folder, goes back to ``target``. Returns (target, parked versions).
    """
    found = versions(base)
    if target is None:
        if len(found) < 2:
            raise RnnpipeError(f"{base}: nothing to roll back to (versions: {found or 'none'})")
        target = found[-2]
    if target not in found:
        raise RnnpipeError(f"{base}: no version {target} to roll back to; versions: {found or 'none'}")
    parked = [v for v in found if v > target]
    (base / ROLLED_BACK).mkdir(exist_ok=True)
    stamp = int(time.time())
    for v in parked:
        os.replace(base / str(v), base / ROLLED_BACK / f"{v}-{stamp}")
    return target, parked


def write_models_config(serving_dir: Path, container_root: str = "/models") -> Path:
    """TF Serving's --model_config_file for every model under ``serving_dir`` (as mounted at container_root)."""
    entries = []
    for model in sorted(p for p in serving_dir.iterdir() if p.is_dir() and versions(p)):
        entries.append(f'  config {{\n    name: "{model.name}"\n    base_path: "{container_root}/{model.name}"\n'
                       f'    model_platform: "tensorflow"\n  }}\n')
    path = serving_dir / "models.config"
    with tempfile.NamedTemporaryFile("w", dir=serving_dir, delete=False, suffix=".tmp") as fh:
        fh.write("model_config_list {\n" + "".join(entries) + "}\n")
    os.replace(fh.name, path)
    return path
