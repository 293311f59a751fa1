from __future__ import annotations

import os
import sys
from pathlib import Path

import mlflow_store
import pytest

ROOT = Path(__file__).resolve().parents[1]
VENV_PYTHON = str(Path(sys.executable))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh working directory: pipeline_root, serving and mlflow.db land here."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    mlflow_store.seed(tmp_path)
    return tmp_path
