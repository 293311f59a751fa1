"""The TF Serving layout: ``<serving_dir>/<model>/<version>/`` and a ``models.config`` beside them."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def versions(base: Path) -> list[int]:
    """Complete versions (integer folders holding saved_model.pb), oldest first."""
    if not base.is_dir():
        return []
    return sorted(int(p.name) for p in base.iterdir()
                  if p.name.isdigit() and (p / "saved_model.pb").exists())


def latest_version(base: Path) -> int | None:
    found = versions(base)
    return found[-1] if found else None


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
