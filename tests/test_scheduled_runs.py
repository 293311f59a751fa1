"""Scheduled runs, as Airflow's tasks drive them (rnnpipe/airflow_dag.py): a run is opened, its stages run one at a
time (each could be its own process) and it is closed. Checked on the toy pipeline, with the real metadata store
and MLflow; tests/test_airflow.py runs the same through Airflow on sentiment."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from toy_components import toy_config, toy_pipeline

from rnnpipe.errors import RnnpipeError
from rnnpipe.metadata import MetadataStore
from rnnpipe.runner import (
    close_scheduled_run,
    metadata_url,
    open_scheduled_run,
    run_pipeline,
    run_scheduled_stage,
    stages_to_run,
)

TESTS = Path(__file__).resolve().parent
STAGES = ["Source", "Scale", "ScaleAgain"]


def scheduled(work: Path, value: int = 3) -> tuple[str, dict]:
    pipeline, cfg = toy_pipeline(value), toy_config(work)
    run_id = open_scheduled_run(pipeline, cfg)
    results = {stage: run_scheduled_stage(pipeline, cfg, run_id, stage) for stage in STAGES}
    return run_id, {"results": results, "closed": close_scheduled_run(pipeline, cfg, run_id)}


def mlflow_runs(work: Path) -> list:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{work / 'mlflow.db'}")
    return client.search_runs([client.get_experiment_by_name("toy").experiment_id],
                              order_by=["attributes.start_time ASC"])


def test_a_scheduled_run_is_one_pipeline_run_and_one_mlflow_run(workdir: Path) -> None:
    assert stages_to_run(toy_pipeline(), toy_config(workdir)) == STAGES
    run_id, done = scheduled(workdir)
    assert done["closed"].executed == STAGES and done["closed"].cache_hits == []
    out = done["results"]["ScaleAgain"].outputs["ScaleAgain"]["numbers"]
    assert int(Path(out.uri, "n.txt").read_text()) == 60
    run = MetadataStore(metadata_url(toy_config(workdir))).get_run(run_id)
    assert run["status"] == "COMPLETE"
    [logged] = mlflow_runs(workdir)
    assert logged.info.run_id == run["mlflow_run_id"] and logged.info.status == "FINISHED"
    assert logged.data.metrics["Source/value"] == 3 and logged.data.tags["rnnpipe.executed"] == ",".join(STAGES)

    # Nothing new: a scheduler can tell before opening a run; a forced one is all cache hits.
    assert stages_to_run(toy_pipeline(), toy_config(workdir)) == []
    _, again = scheduled(workdir)
    assert again["closed"].cache_hits == STAGES and again["closed"].executed == []
    # New input: everything from the changed stage on would run.
    assert stages_to_run(toy_pipeline(value=4), toy_config(workdir)) == STAGES


def test_a_stage_needs_its_upstream_stages_done_in_the_same_run(workdir: Path) -> None:
    pipeline, cfg = toy_pipeline(), toy_config(workdir)
    run_id = open_scheduled_run(pipeline, cfg)
    with pytest.raises(RnnpipeError, match=r"Scale: Source has not completed in run"):
        run_scheduled_stage(pipeline, cfg, run_id, "Scale")
    with pytest.raises(RnnpipeError, match="no step 'Nope'"):
        run_scheduled_stage(pipeline, cfg, run_id, "Nope")
    closed = close_scheduled_run(pipeline, cfg, run_id)
    run = MetadataStore(metadata_url(cfg)).get_run(run_id)
    assert closed.executed == [] and run["status"] == "FAILED"
    assert run["error"] == "stage(s) Source, Scale, ScaleAgain did not complete"
    assert mlflow_runs(workdir)[-1].info.status == "FAILED"
    with pytest.raises(RnnpipeError, match="is not open"):  # closed runs take no more stages
        run_scheduled_stage(pipeline, cfg, run_id, "Source")


def test_a_killed_stage_is_retried_and_the_open_run_survives_a_run_in_between(workdir: Path) -> None:
    pipeline, cfg = toy_pipeline(), toy_config(workdir)
    run_id = open_scheduled_run(pipeline, cfg)
    run_scheduled_stage(pipeline, cfg, run_id, "Source")
    script = ("import sys; from pathlib import Path; from toy_components import toy_config, toy_pipeline; "
              "from rnnpipe.runner import run_scheduled_stage; "
              "run_scheduled_stage(toy_pipeline(), toy_config(Path(sys.argv[1])), sys.argv[2], 'Scale')")
    env = {**os.environ, "PYTHONPATH": str(TESTS), "RNNPIPE_FAULT": "renamed:Scale"}
    proc = subprocess.run([sys.executable, "-c", script, str(workdir), run_id], cwd=workdir, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]

    # A CLI run in between cleans up the killed execution but leaves the scheduled run open.
    run_pipeline(toy_pipeline(value=5), cfg)
    assert MetadataStore(metadata_url(cfg)).get_run(run_id)["status"] == "OPEN"

    retried = run_scheduled_stage(pipeline, cfg, run_id, "Scale")  # the retry
    assert retried.executed == ["Scale"]
    run_scheduled_stage(pipeline, cfg, run_id, "ScaleAgain")
    closed = close_scheduled_run(pipeline, cfg, run_id)
    assert closed.executed == STAGES
    assert MetadataStore(metadata_url(cfg)).get_run(run_id)["status"] == "COMPLETE"
    statuses = sorted(r.info.status for r in mlflow_runs(workdir))
    assert statuses == ["FINISHED", "FINISHED"]  # the scheduled run's and the CLI run's; none left RUNNING


def test_rnnpipe_task_commands_print_json_a_scheduler_reads(workdir: Path, capsys: pytest.CaptureFixture) -> None:
    import json

    from rnnpipe.cli import main

    sample = TESTS / "data" / "sentiment_sample.jsonl"
    assert main(["task", "sentiment", "check", "--set", f"data.path={sample}"]) == 0
    answer = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert answer["to_run"][0] == "ExampleGen" and answer["to_run"][-1] == "Pusher"
    assert main(["task", "sentiment", "stage", "Trainer", "--run-id", "nope"]) == 1
    answer = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert answer["kind"] == "RnnpipeError" and "pipeline run nope is not open (no such run)" in answer["error"]

    assert main(["airflow", "dag", "sentiment", "--schedule", "@hourly", "--set", "trainer.epochs=1"]) == 0
    dag = capsys.readouterr().out
    assert "pipeline_dag(\n    'sentiment',\n    schedule='@hourly'," in dag and "['trainer.epochs=1']" in dag
    compile(dag, "rnnpipe_sentiment.py", "exec")  # a valid Python file, whatever the paths in it

    assert main(["task", "sentiment", "stage"]) == 2
    assert "needs --run-id" in capsys.readouterr().err
    assert main(["task", "sentiment", "close", "--run-id", "x", "--set", "trainer.epoch=1"]) == 2
    assert "unknown config key 'trainer.epoch'" in capsys.readouterr().err

    assert main(["task", "sentiment", "gc", "--keep-runs", "2"]) == 0  # nothing ran yet: nothing to delete
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1]) == {"collected": [], "bytes": 0}
    assert main(["task", "sentiment", "gc"]) == 2
    assert "`rnnpipe task sentiment gc` needs --keep-runs N" in capsys.readouterr().err
    assert main(["airflow", "dag", "sentiment", "--keep-runs", "3"]) == 0
    dag = capsys.readouterr().out
    assert "keep_runs=3," in dag
    compile(dag, "rnnpipe_sentiment.py", "exec")
    assert main(["airflow", "dag", "sentiment", "--keep-runs", "0"]) == 2
    assert "--keep-runs: expected a positive number of runs, got 0" in capsys.readouterr().err
