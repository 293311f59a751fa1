"""An empty MLflow SQLite store for a test's working folder, copied from one made once per process.

MLflow builds a new store by running its schema migrations, 1-2 s each time: about a minute over the suite,
which makes some fifty of them. MLflow's own tests cache a migrated database the same way. The copy is a real
store at MLflow's current schema; the first run in the folder creates its experiment there as usual.
"""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from pathlib import Path


@functools.cache
def _template() -> Path:
    from mlflow.tracking import MlflowClient

    folder = tempfile.mkdtemp(prefix="rnnpipe-mlflow-template-")
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    path = Path(folder) / "mlflow.db"
    MlflowClient(f"sqlite:///{path}").search_experiments()  # runs the migrations
    return path


def seed(folder: Path) -> None:
    """Puts an empty, migrated ``mlflow.db`` in ``folder``, where the default tracking URI points from there."""
    shutil.copyfile(_template(), Path(folder) / "mlflow.db")
