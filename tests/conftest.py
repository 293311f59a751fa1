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
    """A fresh working directory holding an empty MLflow store: pipeline_root, serving and runs land here."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    mlflow_store.seed(tmp_path)
    return tmp_path


# Files whose fixtures run a pipeline end to end (a minute or more each) are collected first: `make test`'s
# workers take whole files in collection order, and a long file started last would leave one core idle at the end.
LONG_FILES = ("_e2e.py", "test_trainer_ensemble.py", "test_embedding_pretrainer.py", "test_models_export.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: not item.path.name.endswith(LONG_FILES))  # stable: the rest keep their order
