"""MLflow tracking: one experiment per application, one MLflow run per pipeline run.

Calls go through an ``MlflowClient`` bound to one run id, so nothing depends on MLflow's global
"active run" and executors can be handed the tracker explicitly.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"


def tracking_uri(configured: str | None) -> str:
    uri = configured or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI
    # MLflow caches stores by URI within a process: pin a relative SQLite path to today's directory.
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        uri = f"sqlite:///{Path(uri.removeprefix('sqlite:///')).resolve()}"
    return uri


def _artifact_location(uri: str, experiment: str) -> str | None:
    # With a local SQLite store, keep artifacts beside the database instead of MLflow's ./mlruns default.
    if uri.startswith("sqlite:///"):
        db = Path(uri.removeprefix("sqlite:///")).resolve()
        return (db.parent / "mlartifacts" / experiment).as_uri()
    return None


def flatten(tree: dict, prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for k, v in tree.items():
        if isinstance(v, dict):
            flat.update(flatten(v, f"{prefix}{k}."))
        else:
            flat[f"{prefix}{k}"] = v
    return flat


def git_commit(cwd: str | Path | None = None) -> str | None:
    """The commit of the repository the user runs in (their code and config), or None outside one."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=cwd or os.getcwd())
        return out.stdout.strip() or None if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def close_run(uri: str, run_id: str, status: str) -> None:
    """Ends a run a killed process left RUNNING (it would show as running forever in the MLflow UI)."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    try:
        if client.get_run(run_id).info.status == "RUNNING":
            client.set_tag(run_id, "rnnpipe.error", "the process running this pipeline was killed")
            client.set_terminated(run_id, status=status)
    except MlflowException:  # the run lives in another tracking store: nothing to close here
        pass


SERVING_VERSION_TAG = "rnnpipe.serving_version"
SERVING_PATH_TAG = "rnnpipe.serving_path"  # <serving_dir>/<model>: version numbers restart in a new serving_dir
FINGERPRINT_TAG = "rnnpipe.model_fingerprint"  # ... and in an emptied one


def ensure_registered_model(client: Any, name: str) -> None:
    from mlflow.exceptions import MlflowException

    try:
        client.get_registered_model(name)
    except MlflowException:
        client.create_registered_model(name, description=f"rnnpipe application '{name}', TF Serving layout")


def find_registry_version(client: Any, name: str, serving_version: int, serving_path: str | None = None,
                          fingerprint: str | None = None) -> str | None:
    """The newest registry version of ``name`` tagged as pushed to TF Serving as ``serving_version`` (to
    ``serving_path``, holding the model ``fingerprint``, where given; an entry without those tags, registered
    before they existed, matches any); None if there is none."""
    found = client.search_model_versions(f"name = '{name}' and tags.`{SERVING_VERSION_TAG}` = '{serving_version}'")
    wanted = {SERVING_PATH_TAG: serving_path, FINGERPRINT_TAG: fingerprint}
    found = [v for v in found if all(value is None or v.tags.get(tag, value) == value for tag, value in wanted.items())]
    return str(max(int(v.version) for v in found)) if found else None


def move_alias_to_serving_version(uri: str, name: str, serving_version: int, alias: str = "champion",
                                  serving_path: str | None = None) -> str | None:
    """Points ``alias`` at the registry version that was pushed as ``serving_version``; None if none was."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    version = find_registry_version(client, name, serving_version, serving_path)
    if version is not None:
        client.set_registered_model_alias(name, alias, version)
    return version


class Tracker:
    """Logs to one MLflow run; every value is also kept in ``record`` so cached steps can replay it."""

    def __init__(self, client: Any, run_id: str) -> None:
        self.client = client
        self.run_id = run_id

    @classmethod
    def start(cls, uri: str, experiment: str, run_name: str, tags: dict[str, str]) -> Tracker:
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri=uri)
        exp = client.get_experiment_by_name(experiment)
        exp_id = exp.experiment_id if exp else client.create_experiment(
            experiment, artifact_location=_artifact_location(uri, experiment))
        run = client.create_run(exp_id, run_name=run_name, tags=tags)
        return cls(client, run.info.run_id)

    @classmethod
    def attach(cls, uri: str, run_id: str) -> Tracker:
        """The tracker of an existing run (a scheduled run's stages log to the run its first task opened)."""
        from mlflow.tracking import MlflowClient

        return cls(MlflowClient(tracking_uri=uri), run_id)

    def log_params(self, params: dict[str, Any]) -> None:
        from mlflow.entities import Param as MlflowParam

        items = [MlflowParam(k, str(v)[:6000]) for k, v in flatten(params).items()]
        for i in range(0, len(items), 100):
            self.client.log_batch(self.run_id, params=items[i:i + 100])

    def log_metric(self, key: str, value: float, step: int | None = None) -> None:
        value = float(value)
        if math.isfinite(value):
            self.client.log_metric(self.run_id, key, value, step=step or 0)

    def log_batch(self, metrics: list[tuple[str, float, int | None]] = (), tags: list[tuple[str, Any]] = ()
                  ) -> None:
        """Many metrics (key, value, step) and tags in a few requests, as a cached step replays its record:
        one request per metric would cost a database transaction each."""
        from mlflow.entities import Metric, RunTag

        now = int(time.time() * 1000)
        batch = [Metric(k, float(v), now, step or 0) for k, v, step in metrics if math.isfinite(float(v))]
        for i in range(0, len(batch), 1000):  # MLflow's limits per request: 1000 metrics, 100 tags
            self.client.log_batch(self.run_id, metrics=batch[i:i + 1000])
        labels = [RunTag(k, v if isinstance(v, str) else json.dumps(v)) for k, v in tags]
        for i in range(0, len(labels), 100):
            self.client.log_batch(self.run_id, tags=labels[i:i + 100])

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        for k, v in flatten(metrics).items():
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                self.log_metric(k, v, step)

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        path = Path(path)
        if path.is_dir():
            self.client.log_artifacts(self.run_id, str(path), artifact_path)
        else:
            self.client.log_artifact(self.run_id, str(path), artifact_path)

    def set_tag(self, key: str, value: Any) -> None:
        self.client.set_tag(self.run_id, key, value if isinstance(value, str) else json.dumps(value))

    def registry_version(self, name: str, serving_version: int, serving_path: str | None = None,
                         fingerprint: str | None = None) -> str | None:
        return find_registry_version(self.client, name, serving_version, serving_path, fingerprint)

    def log_mlflow_model(self, save: Callable[[Path, Any], None], name: str) -> str:
        """Logs an MLflow model as an output of this run (a LoggedModel, as ``mlflow.<flavor>.log_model``
        would, without MLflow's global active run); returns its model id. ``save(path, mlflow_model)`` writes
        the model folder to ``path``, passing on ``mlflow_model`` (the MLmodel that links it to this run)."""
        from mlflow.entities import LoggedModelOutput, LoggedModelStatus
        from mlflow.models import Model

        experiment = self.client.get_run(self.run_id).info.experiment_id
        logged = self.client.create_logged_model(experiment, name=name, source_run_id=self.run_id)
        try:
            with tempfile.TemporaryDirectory() as scratch:
                local = Path(scratch) / "model"
                save(local, Model(artifact_path=logged.artifact_location, model_uuid=logged.model_id,
                                  run_id=self.run_id, model_id=logged.model_id))
                self.client.log_model_artifacts(logged.model_id, str(local))
        except BaseException:
            self.client.finalize_logged_model(logged.model_id, LoggedModelStatus.FAILED)
            raise
        self.client.finalize_logged_model(logged.model_id, LoggedModelStatus.READY)
        self.client.log_outputs(self.run_id, [LoggedModelOutput(logged.model_id, step=0)])
        return logged.model_id

    def register_model(self, name: str, model: str | Callable[[Tracker], str], serving_version: int,
                       alias: str = "champion", serving_path: str | None = None, fingerprint: str | None = None
                       ) -> str:
        """Points ``alias`` at the registry version of ``name`` pushed as ``serving_version`` (to ``serving_path``,
        holding ``fingerprint``), registering ``model`` as that version first if there is none. ``model``: a
        function that logs an MLflow model through this tracker and returns its model id (called only when an
        entry is missing), or a path among this run's artifacts (files that ``mlflow.pyfunc`` cannot load).
        Idempotent: a re-run after a kill between the push and the registration adds the missing entry, never
        a second one."""
        ensure_registered_model(self.client, name)
        version = find_registry_version(self.client, name, serving_version, serving_path, fingerprint)
        if version is None:
            tags = {SERVING_VERSION_TAG: str(serving_version), SERVING_PATH_TAG: serving_path,
                    FINGERPRINT_TAG: fingerprint}
            model_id = model(self) if callable(model) else None
            source = (f"models:/{model_id}" if model_id else
                      f"{self.client.get_run(self.run_id).info.artifact_uri}/{model}")
            version = self.client.create_model_version(name, source, run_id=self.run_id, model_id=model_id,
                                                       tags={k: v for k, v in tags.items() if v is not None}).version
        self.client.set_registered_model_alias(name, alias, version)
        return str(version)

    def child(self, run_name: str, tags: dict[str, str] | None = None) -> Tracker:
        """A run nested under this one (the MLflow UI lists it under its parent; its parallel-coordinates view
        compares such runs)."""
        experiment = self.client.get_run(self.run_id).info.experiment_id
        run = self.client.create_run(experiment, run_name=run_name,
                                     tags={"mlflow.parentRunId": self.run_id, **(tags or {})})
        return Tracker(self.client, run.info.run_id)

    def finish(self, status: str) -> None:
        self.client.set_terminated(self.run_id, status=status)


def experiment_id(uri: str, name: str) -> str | None:
    """The id of experiment ``name`` in the store at ``uri`` (None if it does not exist yet)."""
    from mlflow.tracking import MlflowClient

    found = MlflowClient(tracking_uri=uri).get_experiment_by_name(name)
    return found.experiment_id if found else None
