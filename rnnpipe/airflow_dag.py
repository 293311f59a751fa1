"""Airflow 3 DAGs for rnnpipe pipelines: one task per stage, wired in the pipeline's order (the way TFX's
AirflowDagRunner maps components), so the Airflow UI shows which stage failed and a retry re-runs only that one.

    start ─▶ ExampleGen ─▶ StatisticsGen ─▶ … ─▶ Pusher ─▶ finish [─▶ gc]

``start`` asks whether anything is new (a span, code, config: `rnnpipe task APP check`) and, when nothing is,
skips the whole DAG run; otherwise it opens a pipeline run. Each stage task runs `rnnpipe task APP stage STAGE`
for that run in a child process, so the metadata store, caching, the pipeline lock and MLflow behave as in
`rnnpipe run`, a stage's memory is freed when it ends, and a killed stage is retried by Airflow and resumes (the
runner discards the killed attempt; the Trainer restores its last epoch). ``finish`` runs whatever happened
before it and closes the run: a not-blessed model shows as a skipped Pusher, a failed stage fails the DAG run.
With ``keep_runs``, ``gc`` then deletes the outputs that none of the last ``keep_runs`` runs used (`rnnpipe gc`).

Users write a DAG file with `rnnpipe airflow dag APP --out dags/`, or call ``pipeline_dag`` in their own.
Airflow is an optional extra (``pip install rnnpipe[airflow]``); only this module imports it.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from .app import load_application
from .config import load_config
from .errors import ConfigError

log = logging.getLogger("rnnpipe.airflow")

DAG_FILE = '''\
"""rnnpipe pipeline '{app}' on a schedule (written by `rnnpipe airflow dag {app}`; edit freely)."""

from datetime import timedelta

from rnnpipe.airflow_dag import pipeline_dag

dag = pipeline_dag(
    {app!r},
    schedule={schedule!r},
    workdir={workdir!r},  # relative paths in the config (pipeline_root, serving_dir, mlflow.db) start here
    config={config!r},
    overrides={overrides!r},
    retries={retries!r},
    retry_delay=timedelta(seconds={retry_delay_s!r}),
    python={python!r},  # the interpreter that has rnnpipe installed
    keep_runs={keep_runs!r},  # after each run, delete outputs that none of the last N runs used; None: keep all
)
'''


def dag_file(app: str, *, schedule: str | None = "@daily", workdir: str | Path = ".", config: str | None = None,
             overrides: Sequence[str] = (), retries: int = 2, retry_delay_s: float = 120,
             keep_runs: int | None = None) -> str:
    """The text of a DAG file for ``app`` (what `rnnpipe airflow dag` writes)."""
    if keep_runs is not None and keep_runs < 1:
        raise ConfigError(f"--keep-runs: expected a positive number of runs, got {keep_runs}")
    return DAG_FILE.format(app=app, schedule=None if schedule in (None, "none") else schedule,
                           workdir=str(Path(workdir).resolve()),
                           config=str(Path(config).resolve()) if config else None,
                           overrides=list(overrides), retries=retries, retry_delay_s=retry_delay_s,
                           python=sys.executable, keep_runs=keep_runs)


def pipeline_dag(app: str, *, schedule: str | None = "@daily", workdir: str | Path = ".",
                 config: str | None = None, overrides: Sequence[str] = (), retries: int = 2,
                 retry_delay: timedelta = timedelta(minutes=2), python: str = sys.executable,
                 dag_id: str | None = None, start_date: datetime | None = None, keep_runs: int | None = None) -> Any:
    """An Airflow DAG running ``app``'s pipeline; its params (``config``, ``overrides``, ``skip_when_unchanged``)
    can be changed for one DAG run (trigger with config). Building it imports no framework: the scheduler parses
    DAG files often."""
    from airflow.providers.standard.operators.python import PythonOperator, ShortCircuitOperator
    from airflow.sdk import DAG, Param

    application = load_application(app)
    pipeline = application.build_pipeline(load_config(application.config_file, config, list(overrides)))
    where = {"app": app, "workdir": str(Path(workdir).resolve()), "python": python}
    opened = "{{ ti.xcom_pull(task_ids='start') }}"  # the pipeline run start opened (not Airflow's run_id)
    with DAG(
        dag_id or f"rnnpipe_{app}",
        description=application.description.splitlines()[0],
        schedule=schedule,
        start_date=start_date or datetime(2026, 1, 1, tzinfo=UTC),
        catchup=False,
        max_active_runs=1,  # a run trains on the newest span; two at once would only wait on the pipeline lock
        default_args={"retries": retries, "retry_delay": retry_delay},
        params={
            "config": Param(config, type=["null", "string"], description="a YAML file over the app's defaults"),
            "overrides": Param(list(overrides), type="array", items={"type": "string"},
                               description="KEY=VALUE settings, as `rnnpipe run --set`"),
            "skip_when_unchanged": Param(True, type="boolean",
                                         description="skip the run when no stage would execute (no new span)"),
        },
        tags=["rnnpipe", app],
        doc_md=__doc__,
    ) as dag:
        previous = ShortCircuitOperator(task_id="start", python_callable=start_task, op_kwargs=where)
        for step in pipeline.steps:
            task = PythonOperator(task_id=step.id, python_callable=stage_task,
                                  op_kwargs={**where, "stage": step.id, "pipeline_run": opened})
            previous >> task
            previous = task
        finish = PythonOperator(task_id="finish", python_callable=finish_task, trigger_rule="all_done",
                                op_kwargs={**where, "pipeline_run": opened})
        previous >> finish
        if keep_runs is not None:  # after a run that completed: a failed one leaves its outputs for the retry
            finish >> PythonOperator(task_id="gc", python_callable=gc_task, op_kwargs={**where, "keep_runs": keep_runs})
    return dag


def start_task(app: str, workdir: str, python: str, params: dict, dag_run: Any = None) -> str | bool:
    """Opens a pipeline run and returns its id; False (skip the DAG run) when no stage would execute."""
    if params.get("skip_when_unchanged", True):
        found = rnnpipe_task(python, workdir, app, "check", params=params)
        if not found["to_run"]:
            log.info("%s: nothing new since the last complete run (same span, code and config): skipping", app)
            return False
        log.info("%s: stages to run: %s", app, ", ".join(found["to_run"]))
    tags = [] if dag_run is None else ["--tag", f"airflow.dag_id={dag_run.dag_id}",
                                       "--tag", f"airflow.dag_run_id={dag_run.run_id}"]
    return rnnpipe_task(python, workdir, app, "open", *tags, params=params)["run_id"]


def stage_task(app: str, stage: str, pipeline_run: str, workdir: str, python: str, params: dict) -> dict:
    """Runs one stage of the open run; a model the gate held back skips the task (nothing was pushed)."""
    from airflow.sdk.exceptions import AirflowSkipException

    answer = rnnpipe_task(python, workdir, app, "stage", stage, "--run-id", _opened(pipeline_run), params=params)
    if answer["outcome"] == "not_blessed":
        raise AirflowSkipException(f"{stage}: the model was not blessed; nothing pushed, the served version is "
                                   "unchanged")
    return answer["metrics"]


def finish_task(app: str, pipeline_run: str, workdir: str, python: str, params: dict) -> str:
    """Closes the run; fails the DAG run if a stage did not complete. Returns the outcome: pushed, not_blessed
    or unchanged."""
    from airflow.sdk.exceptions import AirflowFailException

    answer = rnnpipe_task(python, workdir, app, "close", "--run-id", _opened(pipeline_run), params=params)
    if answer["status"] != "COMPLETE":
        raise AirflowFailException(f"pipeline run {pipeline_run[:8]} failed: {answer['error']}")
    log.info("%s: run %s %s (MLflow run %s)", app, pipeline_run[:8], answer["outcome"], answer["mlflow_run_id"])
    return answer["outcome"]


def gc_task(app: str, keep_runs: int, workdir: str, python: str, params: dict) -> int:
    """`rnnpipe gc` after the run; returns how many executions' outputs it deleted."""
    answer = rnnpipe_task(python, workdir, app, "gc", "--keep-runs", str(keep_runs), params=params)
    log.info("%s: deleted the outputs of %d execution(s), %.1f MB", app, len(answer["collected"]),
             answer["bytes"] / 1e6)
    return len(answer["collected"])


def _opened(pipeline_run: str | None) -> str:
    from airflow.sdk.exceptions import AirflowFailException

    if not pipeline_run or pipeline_run == "None":
        raise AirflowFailException("no pipeline run was opened: see the start task's log")
    return pipeline_run


# Errors a retry cannot fix (bad data or config, drift): fail the task at once. A lock held by another run,
# a full disk, a crash or a kill: retry.
RETRYABLE = {"PipelineLockedError", "StageIOError"}


def rnnpipe_task(python: str, workdir: str, app: str, *args: str, params: dict) -> dict:
    """Runs `rnnpipe task APP ARGS` in ``workdir``, streams its output into the task's log, and returns the
    JSON object it prints last."""
    from airflow.sdk.exceptions import AirflowException, AirflowFailException

    cmd = [python, "-m", "rnnpipe.cli", "task", app, *args]
    if params.get("config"):
        cmd += ["--config", params["config"]]
    for override in params.get("overrides") or []:
        cmd += ["--set", override]
    log.info("running %s", " ".join(cmd))
    proc = subprocess.Popen(cmd, cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    answer: dict = {}
    assert proc.stdout is not None
    for line in proc.stdout:
        log.info("%s", line.rstrip("\n"))
        if line.startswith("{"):
            try:
                answer = json.loads(line)
            except ValueError:
                pass
    code = proc.wait()
    if code == 0:
        return answer
    if code < 0:
        raise AirflowException(f"`rnnpipe task {app} {args[0]}` was killed (signal {-code}); a retry resumes it")
    if "error" in answer and answer.get("kind") not in RETRYABLE:
        raise AirflowFailException(answer["error"])
    raise AirflowException(answer.get("error") or f"`rnnpipe task {app} {args[0]}` exited with code {code}")
