"""Where a test's pipeline run left its executions: one folder per execution under the pipeline root."""

from __future__ import annotations

from pathlib import Path


def latest(work: Path, step: str, *, app: str) -> Path:
    """The newest execution folder of ``step`` for ``app`` under ``work``/pipeline_root."""
    folders = list((work / "pipeline_root" / app / step).glob("[0-9]*"))
    assert folders, f"no {step} execution of {app} under {work}/pipeline_root"
    return max(folders, key=lambda p: int(p.name))
