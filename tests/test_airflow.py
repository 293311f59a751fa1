"""Scheduled runs on Apache Airflow 3: the DAGs `rnnpipe airflow dag` writes import cleanly for every application
(fast suite), and a sentiment DAG runs with Airflow's own ``dag.test()`` on SQLite, one task per stage, against the
real metadata store, MLflow and serving folder (`make test-slow`): it pushes, skips a run when no new span arrived,
hits the cache, fails on drift with nothing pushed, warm-starts from the champion, and resumes a stage killed and
retried by Airflow. tests/test_scheduled_runs.py checks the runner's side of the same in the fast suite.

Airflow runs in a child process (tests/airflow_driver.py): it configures itself from the environment at import.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import mlflow_store
import pytest

from rnnpipe.app import applications
from rnnpipe.cli import main

pytest.importorskip("airflow", reason="the Airflow extra is not installed: `make test` installs it "
                                      "(requirements-airflow.lock)")

TESTS = Path(__file__).resolve().parent
SAMPLE = TESTS / "data" / "sentiment_sample.jsonl"
TINY = ["embedding_pretrainer.corpus=null", "trainer.ensemble=1",
        "trainer.epochs=2", "transform.min_frequency=1", "model.units=8", "model.embedding_dim=8",
        "evaluator.must_beat_baseline=false", "evaluator.thresholds={}", "evaluator.must_beat_peers=false"]


@pytest.fixture(scope="module")
def airflow_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    home = tmp_path_factory.mktemp("airflow")
    env = {**os.environ, "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
           "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "PYTHONPATH": str(TESTS)}
    (home / "dags").mkdir()
    proc = subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return env


def driver(env: dict[str, str], *args: str) -> dict:
    proc = subprocess.run([sys.executable, str(TESTS / "airflow_driver.py"), *args], env=env, capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-5000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def write_dag(work: Path, env: dict[str, str], app: str, *overrides: str, retries: int = 1,
              keep_runs: int | None = None) -> None:
    cwd = Path.cwd()
    os.chdir(work)  # the DAG records the working directory it was written from
    try:
        args = [x for o in overrides for x in ("--set", o)]
        assert main(["airflow", "dag", app, "--schedule", "@daily", "--retries", str(retries), "--retry-delay", "1",
                     "--out", env["AIRFLOW__CORE__DAGS_FOLDER"], *args,
                     *(["--keep-runs", str(keep_runs)] if keep_runs else [])]) == 0
    finally:
        os.chdir(cwd)


def test_generated_dags_import_cleanly_for_every_application(airflow_env: dict[str, str], tmp_path: Path) -> None:
    for app in applications():  # sentiment's DAG also ends with `rnnpipe gc`
        write_dag(tmp_path, airflow_env, app, keep_runs=3 if app == "sentiment" else None)
    bag = driver(airflow_env, "bag", airflow_env["AIRFLOW__CORE__DAGS_FOLDER"])
    assert bag["errors"] == {}
    for app in applications():
        tasks = bag["dags"][f"rnnpipe_{app}"]
        ending = ["finish", "gc"] if app == "sentiment" else ["finish"]
        assert tasks[0] == "start" and tasks[-len(ending):] == ending and "gc" not in tasks[:-1]
        assert "Trainer" in tasks and "Pusher" in tasks and len(tasks) >= 11


def run_dag(env: dict[str, str], **conf: object) -> dict:
    return driver(env, "test", env["AIRFLOW__CORE__DAGS_FOLDER"], "rnnpipe_sentiment",
                  json.dumps({"skip_when_unchanged": True, **conf}))


def states(result: dict) -> dict[str, str]:
    return {task: t["state"] for task, t in result["tasks"].items()}


def mlflow_runs(work: Path) -> list:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{work / 'mlflow.db'}")
    return client.search_runs([client.get_experiment_by_name("sentiment").experiment_id],
                              order_by=["attributes.start_time ASC"])


def pipeline_runs(work: Path) -> list[dict]:
    from rnnpipe.metadata import MetadataStore

    return MetadataStore(f"sqlite:///{work / 'pipeline_root' / 'metadata.sqlite'}").list_runs("sentiment")[::-1]


@pytest.fixture(scope="module")
def scheduled(airflow_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Span 1 of the sentiment sample under a DAG; its first run."""
    work = tmp_path_factory.mktemp("scheduled")
    mlflow_store.seed(work)
    (work / "data").mkdir()
    shutil.copy(SAMPLE, work / "data" / "reviews-1.jsonl")
    write_dag(work, airflow_env, "sentiment", f"data.path={work / 'data' / 'reviews-{SPAN}.jsonl'}", *TINY)
    return {"work": work, "env": airflow_env, "first": run_dag(airflow_env)}


# The DAG runs below cost 2 min and more each on 2 cores (every stage task starts its own process, as a
# scheduler's would), more than the fast suite's budget: `make test-slow` runs them.
@pytest.mark.slow
def test_the_dag_runs_each_stage_as_a_task_in_order_and_pushes(scheduled: dict) -> None:
    work, first = scheduled["work"], scheduled["first"]
    assert first["state"] == "success", first
    assert set(states(first).values()) == {"success"}
    assert (work / "serving" / "sentiment" / "1" / "saved_model.pb").exists()
    [run] = pipeline_runs(work)
    assert run["status"] == "COMPLETE" and run["cache_hits"] == []
    assert list(run["metrics"]) == ["ExampleGen", "StatisticsGen", "SchemaGen", "ExampleValidator", "Transform",
                                    "Trainer", "Evaluator", "InfraValidator", "Pusher"]
    [logged] = mlflow_runs(work)  # one MLflow run for the pipeline run, every stage logging into it
    assert logged.info.run_id == run["mlflow_run_id"] and logged.info.status == "FINISHED"
    assert logged.data.tags["rnnpipe.outcome"] == "pushed" and logged.data.tags["rnnpipe.span"] == "1"
    assert logged.data.tags["airflow.dag_id"] == "rnnpipe_sentiment" and logged.data.tags["airflow.dag_run_id"]
    assert {"time/Trainer_seconds", "time/Pusher_seconds"} <= set(logged.data.metrics)


@pytest.mark.slow
def test_with_no_new_span_the_run_is_skipped_in_seconds(scheduled: dict) -> None:
    again = run_dag(scheduled["env"])
    assert again["state"] == "success"
    assert states(again).pop("start") == "success"
    assert {s for t, s in states(again).items() if t != "start"} == {"skipped"}
    assert len(pipeline_runs(scheduled["work"])) == 1  # nothing opened, nothing pushed
    assert sorted(p.name for p in (scheduled["work"] / "serving" / "sentiment").glob("[0-9]*")) == ["1"]
    print(f"no-new-span DAG run: {again['seconds']:.1f} s")


@pytest.mark.slow
def test_forced_re_run_is_all_cache_hits_and_pushes_nothing_new(scheduled: dict) -> None:
    cached = run_dag(scheduled["env"], skip_when_unchanged=False)
    assert cached["state"] == "success" and set(states(cached).values()) == {"success"}
    last = pipeline_runs(scheduled["work"])[-1]
    assert last["status"] == "COMPLETE" and len(last["cache_hits"]) == 9
    assert mlflow_runs(scheduled["work"])[-1].data.tags["rnnpipe.outcome"] == "unchanged"
    print(f"all-cached DAG run: {cached['seconds']:.1f} s")


@pytest.mark.slow
def test_a_drifted_span_fails_the_example_validator_task_and_pushes_nothing(scheduled: dict) -> None:
    work = scheduled["work"]
    records = [json.loads(line) for line in SAMPLE.open()]
    drifted = [{**r, "label": 1} for r in records]  # every review positive: the label distribution moved
    (work / "data" / "reviews-2.jsonl").write_text("".join(json.dumps(r) + "\n" for r in drifted))
    try:
        result = run_dag(scheduled["env"])
    finally:
        (work / "data" / "reviews-2.jsonl").unlink()
    assert result["state"] == "failed"
    got = states(result)
    assert got["ExampleValidator"] == "failed" and got["finish"] == "failed"
    assert {got[t] for t in ("Transform", "Trainer", "Evaluator", "InfraValidator", "Pusher")} == {"upstream_failed"}
    last = pipeline_runs(work)[-1]
    assert last["status"] == "FAILED" and "ExampleValidator failed" in last["error"]
    assert mlflow_runs(work)[-1].info.status == "FAILED"
    assert sorted(p.name for p in (work / "serving" / "sentiment").glob("[0-9]*")) == ["1"]


@pytest.mark.slow
def test_warm_start_from_the_champion_on_a_new_span(scheduled: dict) -> None:
    import keras

    import rnnpipe.models  # noqa: F401  (registers the layers model.keras uses)
    from rnnpipe.components.training import weights_digest

    work = scheduled["work"]
    # The same reviews in another order: a new span with the same vocabulary, so the champion's weights fit.
    lines = SAMPLE.read_text().splitlines(keepends=True)
    (work / "data" / "reviews-3.jsonl").write_text("".join(reversed(lines)))
    result = run_dag(scheduled["env"], overrides=[f"data.path={work / 'data' / 'reviews-{SPAN}.jsonl'}", *TINY,
                                                  "trainer.warm_start=champion"])
    assert result["state"] == "success", result
    trainer = sorted((work / "pipeline_root" / "sentiment" / "Trainer").glob("[0-9]*"), key=lambda p: int(p.name))
    started = json.loads((trainer[-1] / "model_run" / "warm_start.json").read_text())
    assert started["version"] == 1
    champion = keras.saving.load_model(trainer[0] / "model_run" / "model.keras", compile=False)
    assert started["digest"] == weights_digest(champion)  # it began from exactly the served weights
    logged = mlflow_runs(work)[-1]
    assert logged.data.tags["rnnpipe.warm_start"] == "version 1" and logged.data.tags["rnnpipe.span"] == "3"
    assert any(k.startswith("Evaluator/") and "champion" in k for k in logged.data.metrics)  # gated on it
    print(f"new-span DAG run with a warm start: {result['seconds']:.1f} s")


@pytest.mark.slow
def test_a_stage_killed_mid_training_is_retried_by_airflow_and_resumes(airflow_env: dict[str, str],
                                                                      tmp_path: Path) -> None:
    write_dag(tmp_path, airflow_env, "sentiment", f"data.path={SAMPLE}", *TINY, retries=1)
    env = {**airflow_env, "RNNPIPE_FAULT": "Trainer.backup#2", "RNNPIPE_FAULT_ONCE": str(tmp_path / "fired")}
    result = driver(env, "test", env["AIRFLOW__CORE__DAGS_FOLDER"], "rnnpipe_sentiment",
                    json.dumps({"skip_when_unchanged": True}))
    assert result["state"] == "success", result
    assert (tmp_path / "fired").exists() and result["tasks"]["Trainer"]["try_number"] == 2
    trainer = next((tmp_path / "pipeline_root" / "sentiment" / "Trainer").glob("[0-9]*"))
    history = json.loads((trainer / "model_run" / "history.json").read_text())
    assert len(history["loss"]) == 1  # epoch 1 came from the killed attempt's backup: only epoch 2 was trained
    [run] = pipeline_runs(tmp_path)
    assert run["status"] == "COMPLETE" and run["metrics"]["Trainer"]["epochs"] == 2


@pytest.mark.slow
def test_a_dag_with_keep_runs_ends_with_gc_which_deletes_the_earlier_spans_outputs(airflow_env: dict[str, str],
                                                                                  tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    shutil.copy(SAMPLE, tmp_path / "data" / "reviews-1.jsonl")
    write_dag(tmp_path, airflow_env, "sentiment", f"data.path={tmp_path / 'data' / 'reviews-{SPAN}.jsonl'}", *TINY,
              keep_runs=1)
    first = run_dag(airflow_env)
    assert first["state"] == "success" and first["tasks"]["gc"]["result"] == 0  # its own run's: kept
    lines = SAMPLE.read_text().splitlines(keepends=True)
    (tmp_path / "data" / "reviews-2.jsonl").write_text("".join(reversed(lines)))  # a new span: every stage runs
    second = run_dag(airflow_env)
    assert second["state"] == "success" and second["tasks"]["gc"]["result"] == 9  # the first run's nine
    executions = (tmp_path / "pipeline_root" / "sentiment").glob("*/[0-9]*")
    assert len(list(executions)) == 9
    assert (tmp_path / "serving" / "sentiment" / "1" / "saved_model.pb").exists()  # served versions are the Pusher's
