"""Execute the notebooks top to bottom (``make notebooks``; tests/test_sentiment_e2e.py runs them on a tiny run).

    python notebooks/run.py [WORKDIR] [NOTEBOOK ...]

WORKDIR is the folder ``make run`` ran in (default: the project root); the notebooks read it from
``RNNPIPE_WORKDIR``. Executed copies, outputs included, go to ``notebooks/executed/`` (not in git: the
notebooks themselves are kept without outputs).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

HERE = Path(__file__).resolve().parent
NOTEBOOKS = sorted(HERE.glob("*.ipynb"))


def execute(notebook: Path, workdir: Path, out_dir: Path | None = HERE / "executed", timeout: int = 600) -> Path | None:
    """Runs every cell of ``notebook`` against ``workdir`` in a fresh kernel; a cell that raises raises
    ``nbclient.exceptions.CellExecutionError`` naming the cell. Returns the executed copy's path, if kept."""
    nb = nbformat.read(notebook, as_version=4)
    previous = os.environ.get("RNNPIPE_WORKDIR")
    os.environ["RNNPIPE_WORKDIR"] = str(Path(workdir).resolve())  # the kernel inherits the environment
    try:
        NotebookClient(nb, timeout=timeout, kernel_name="python3",
                       resources={"metadata": {"path": str(notebook.parent)}}).execute()
    finally:
        if previous is None:
            os.environ.pop("RNNPIPE_WORKDIR", None)
        else:
            os.environ["RNNPIPE_WORKDIR"] = previous
    if out_dir is None:
        return None
    out_dir.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, out_dir / notebook.name)
    return out_dir / notebook.name


def main(argv: list[str]) -> int:
    workdir = Path(argv[0]) if argv else HERE.parent
    chosen = [HERE / name for name in argv[1:]] or NOTEBOOKS
    for notebook in chosen:
        print(f"{notebook.name}: {execute(notebook, workdir)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
