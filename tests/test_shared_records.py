"""Shared records: the metadata store on PostgreSQL (`metadata_url: postgresql://...`) and MLflow through a tracking
server backed by PostgreSQL, the set-up of a team whose pipelines run on several machines. The servers come from
Debian's `postgresql` package and the `mlflow server` command, started on localhost (tests/postgres.py)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from postgres import create_database, mlflow_server, postgres_server
from toy_components import toy_config, toy_pipeline

from rnnpipe.metadata import executions, runs
from rnnpipe.runner import run_pipeline

TESTS = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def postgres() -> Iterator[str]:
    with postgres_server() as server:
        yield server


def test_a_pipeline_records_to_and_reuses_from_a_postgresql_metadata_store(postgres: str, workdir: Path) -> None:
    url = create_database(postgres, "toy_metadata")
    (workdir / "toy.yaml").write_text(f"metadata_url: {url}\n")
    cfg = toy_config(workdir)
    first = run_pipeline(toy_pipeline(), cfg)
    again = run_pipeline(toy_pipeline(), cfg)
    assert first.executed == ["Source", "Scale", "ScaleAgain"] and again.cache_hits == first.executed
    with sa.create_engine(url).connect() as c:
        statuses = [r.status for r in c.execute(sa.select(runs.c.status).order_by(runs.c.started_at))]
        recorded = c.execute(sa.select(sa.func.count()).select_from(executions)).scalar()
    assert statuses == ["COMPLETE", "COMPLETE"] and recorded == 6  # 3 executed, 3 cached
    assert not list(workdir.rglob("metadata.sqlite"))


def test_lease_ages_come_from_the_postgresql_servers_clock(postgres: str) -> None:
    from rnnpipe.errors import PipelineLockedError
    from rnnpipe.metadata import LEASE_SECONDS, MetadataStore, database_clock, leases

    store = MetadataStore(create_database(postgres, "lease_clock"))
    with store.engine.connect() as c:
        assert abs(c.execute(sa.select(database_clock())).scalar() - time.time()) < 5  # the same host here
    with store.lease("toy"), pytest.raises(PipelineLockedError, match=r"renewed 0 s ago"), store.lease("toy"):
        pass
    with store.engine.begin() as c:  # a holder on another machine that stopped renewing
        c.execute(leases.insert().values(pipeline="toy", host="elsewhere", pid=1, token="t",
                                         renewed_at=database_clock() - LEASE_SECONDS - 1))
    with store.lease("toy"), store.engine.connect() as c:
        assert c.execute(sa.select(leases.c.host)).scalars().all() == [socket.gethostname()]


def test_processes_opening_a_new_shared_store_at_once_all_succeed(postgres: str, tmp_path: Path) -> None:
    # The first runs against an empty database race to create the tables: none may fail.
    url, go = create_database(postgres, "race"), tmp_path / "go"
    procs = [subprocess.Popen([sys.executable, "-c", RACE, url, str(go), str(tmp_path / f"ready-{i}")],
                              stderr=subprocess.PIPE, text=True) for i in range(6)]
    while len(list(tmp_path.glob("ready-*"))) < 6 and all(p.poll() is None for p in procs):
        time.sleep(0.01)  # until all have imported SQLAlchemy and wait for the start
    go.touch()
    errors = [p.communicate(timeout=120)[1] for p in procs]
    assert [p.returncode for p in procs] == [0] * 6, errors
    with sa.create_engine(url).connect() as c:
        assert c.execute(sa.select(sa.func.count()).select_from(runs)).scalar() == 6


RACE = """
import os, sys, time
from rnnpipe.metadata import MetadataStore
open(sys.argv[3], "w").close()
while not os.path.exists(sys.argv[2]):
    time.sleep(0.001)
MetadataStore(sys.argv[1]).start_run("p")
"""


SENTIMENT = [f"data.path={TESTS / 'data' / 'sentiment_sample.jsonl'}", "trainer.epochs=1", "transform.min_frequency=1",
             "model.units=8", "model.embedding_dim=8", "evaluator.must_beat_baseline=false", "evaluator.thresholds={}",
             "evaluator.must_beat_peers=false", "tuner.enabled=false", "trainer.gradient_diagnostics=false",
             "embedding_pretrainer.corpus=null", "trainer.ensemble=1"]
TEXTGEN = [f"data.path={TESTS / 'data' / 'textgen_sample'}", "data.holdout_every=4", "data.chunk_chars=200",
           "data.eval_context=50", "trainer.epochs=1", "model.units=16", "model.embedding_dim=8", "model.bptt=50",
           "evaluator.metrics.baseline=unigram", "evaluator.metrics.ngram_order=3", "evaluator.thresholds={}",
           "evaluator.must_beat_baseline=false", "evaluator.must_beat_peers=false",
           "evaluator.metrics.sample_length=20", "infra_validator.warmup_requests=2",
           "trainer.gradient_diagnostics=false"]


@pytest.mark.slow
def test_two_pipelines_at_once_share_postgresql_and_an_mlflow_server_and_mix_nothing(
        postgres: str, tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    metadata = create_database(postgres, "shared_metadata")
    (tmp_path / "artifacts").mkdir()
    with mlflow_server(create_database(postgres, "shared_mlflow"), tmp_path / "artifacts") as tracking:
        shared = [f"metadata_url={metadata}", f"mlflow.tracking_uri={tracking}"]
        env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
        procs = {app: subprocess.Popen(
            [sys.executable, "-m", "rnnpipe.cli", "run", app, *(x for s in (*sets, *shared) for x in ("--set", s))],
            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            for app, sets in (("sentiment", SENTIMENT), ("textgen", TEXTGEN))}
        outputs = {app: p.communicate(timeout=900)[0] for app, p in procs.items()}
        assert {app: p.returncode for app, p in procs.items()} == {"sentiment": 0, "textgen": 0}, outputs
        client = MlflowClient(tracking)
        for app in procs:
            # Metadata: one complete run, every artifact under the application's own root.
            with sa.create_engine(metadata).connect() as c:
                statuses = [r.status for r in c.execute(sa.select(runs.c.status).where(runs.c.pipeline == app))]
                uris = [r.uri for r in c.execute(sa.text(
                    "SELECT a.uri FROM artifacts a JOIN executions e ON e.id = a.execution_id "
                    "WHERE e.pipeline = :app"), {"app": app})]
            assert statuses == ["COMPLETE"] and len(uris) >= 9
            assert all(Path(u).is_relative_to(tmp_path / "pipeline_root" / app) for u in uris), uris
            # MLflow, over HTTP: the run with its metrics and its model, uploaded through the server.
            experiment = client.get_experiment_by_name(app)
            (run,) = client.search_runs([experiment.experiment_id], "tags.`rnnpipe.executed` != ''")
            assert run.info.status == "FINISHED" and run.info.artifact_uri.startswith("mlflow-artifacts:/")
            assert any(k.startswith("Evaluator/") for k in run.data.metrics)
            assert "serving_model" in {f.path for f in client.list_artifacts(run.info.run_id)}
            champion = client.get_model_version_by_alias(app, "champion")
            assert champion.version == "1" and champion.run_id == run.info.run_id
            assert json.loads(run.data.tags["rnnpipe.pushed_version"]) == 1
        assert len(list((tmp_path / "artifacts").glob("*/*/artifacts/serving_model"))) == 2  # through the server
    assert not (tmp_path / "mlflow.db").exists() and not list(tmp_path.rglob("metadata.sqlite"))
