"""What the runner hands an executor besides its artifacts and parameters: ``ExecutionContext``.

Components import it for type hints (``ctx: ExecutionContext``); the runner builds one per execution.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .storage import join

if TYPE_CHECKING:
    from .tracking import Tracker

log = logging.getLogger("rnnpipe")


class RecordingTracker:
    """Logs to MLflow and remembers what was logged, so a later cache hit can log the same again."""

    def __init__(self, tracker: Tracker, tmp_dir: Path, final_dir: str) -> None:
        self._tracker = tracker
        self._tmp, self._final = tmp_dir, final_dir
        self.record: dict[str, list] = {"metrics": [], "files": [], "tags": []}

    def log_metric(self, key: str, value: float, step: int | None = None) -> None:
        self._tracker.log_metric(key, value, step)
        self.record["metrics"].append([key, float(value), step])

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        for k, v in metrics.items():
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                self.log_metric(k, v, step)

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        self._tracker.log_artifact(path, artifact_path)
        path = Path(path).resolve()
        if path.is_relative_to(self._tmp):  # replayable only if it lives in the step's own outputs
            self.record["files"].append([join(self._final, path.relative_to(self._tmp).as_posix()), artifact_path])

    def set_tag(self, key: str, value: Any) -> None:
        self._tracker.set_tag(key, value)
        self.record["tags"].append([key, value])

    def child(self, run_name: str, tags: dict[str, str] | None = None) -> Tracker:
        # Not recorded: a cache hit reuses the step's output and runs nothing, so it has no children to show.
        return self._tracker.child(run_name, tags)

    def register_model(self, *args: Any, **kwargs: Any) -> str:
        # Not recorded: a registry entry is an effect, not a log; a cache hit of the Pusher registers nothing.
        return self._tracker.register_model(*args, **kwargs)

    def registry_version(self, *args: Any, **kwargs: Any) -> str | None:
        return self._tracker.registry_version(*args, **kwargs)


@dataclass
class ExecutionContext:
    """What the runner hands an executor besides its artifacts and parameters."""

    pipeline: str
    step: str
    execution_id: int
    scratch_dir: Path  # survives failed attempts of the same cache key: checkpoints live here
    beam_args: list[str]
    strategy: str
    tracker: RecordingTracker
    workers: int = 1  # distribution.workers: the Trainer's localhost worker processes
    worker_index: int = 0  # a multi-worker Trainer's task; only the chief (0) writes what lasts

    @property
    def chief(self) -> bool:
        return self.worker_index == 0

    def log(self, message: str) -> None:
        log.info("%s: %s", self.step, message)
