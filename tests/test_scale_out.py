"""Scaling out by configuration: StatisticsGen and Transform on Beam's portable path (PortableRunner against a job
service, with SDK workers in separate processes from a worker pool: the API Flink and Spark use) give the same
transformed examples and vocabulary as the DirectRunner. Minutes: `make test-slow`."""

from __future__ import annotations

import glob
import os
import subprocess
import sys
import time
from pathlib import Path

import mlflow_store
import pytest

from rnnpipe.cli import main
from rnnpipe.processes import free_ports

SAMPLE = Path(__file__).resolve().parent / "data" / "sentiment_sample.jsonl"
SMALL = [f"data.path={SAMPLE}", "trainer.epochs=1", "transform.min_frequency=1", "model.units=8",
         "model.embedding_dim=8", "embedding_pretrainer.corpus=null", "trainer.ensemble=1",
         "evaluator.must_beat_baseline=false", "evaluator.must_beat_peers=false",
         "evaluator.thresholds={}"]


def run_in(work: Path, *overrides: str) -> None:
    cwd = Path.cwd()
    work.mkdir()
    mlflow_store.seed(work)
    os.chdir(work)
    try:
        assert main(["run", "sentiment", *(x for o in (*SMALL, *overrides) for x in ("--set", o))]) == 0
    finally:
        os.chdir(cwd)


def transformed(work: Path) -> tuple[dict[str, bytes], dict[str, list[bytes]]]:
    import tensorflow as tf

    transform = work / "pipeline_root" / "sentiment" / "Transform"
    vocabularies = {Path(f).name: Path(f).read_bytes()
                    for f in glob.glob(f"{transform}/*/transform_graph/transform_fn/assets/*")}
    records = {}
    for split in ("train", "eval", "test"):
        files = sorted(glob.glob(f"{transform}/*/transformed_examples/Split-{split}/*"))
        records[split] = sorted(r.numpy() for r in tf.data.TFRecordDataset(files, compression_type="GZIP"))
    return vocabularies, records


@pytest.mark.slow
@pytest.mark.parametrize("environment", ["LOOPBACK", "EXTERNAL"])
def test_portable_runner_matches_the_direct_runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   environment: str) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    run_in(tmp_path / "direct")
    options = ["--job_endpoint=embed", f"--environment_type={environment}"]
    pool = None
    if environment == "EXTERNAL":  # a worker pool whose SDK harnesses are separate Python processes
        (port,) = free_ports(1)
        env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}  # workers run `python`
        pool = subprocess.Popen([sys.executable, "-m", "apache_beam.runners.worker.worker_pool_main",
                                 f"--service_port={port}"], env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        options.append(f"--environment_config=localhost:{port}")
    try:
        run_in(tmp_path / "portable", "beam.runner=PortableRunner", f"beam.options={options}")
    finally:
        if pool is not None:
            pool.terminate()
            log = pool.communicate(timeout=30)[0]
    if pool is not None:
        assert "Starting worker" in log  # the stages really ran in the pool's worker processes
    vocab, records = transformed(tmp_path / "direct")
    assert vocab and records["train"]
    assert transformed(tmp_path / "portable") == (vocab, records)


@pytest.mark.parametrize("runner", ["DaskRunner", "apache_beam.runners.dask.dask_runner.DaskRunner"])
def test_a_runner_that_cannot_run_the_preprocessing_is_refused_naming_the_key(runner: str) -> None:
    from rnnpipe.components.beam_options import pipeline_options
    from rnnpipe.errors import ConfigError

    with pytest.raises(ConfigError, match=rf"beam\.runner={runner}: Beam's DaskRunner .* has no Impulse.*"
                                          r"Use the PortableRunner"):
        pipeline_options([f"--runner={runner}", "--dask_client_address=tcp://localhost:8786"])
    assert pipeline_options(["--runner=DirectRunner"]).get_all_options()["runner"] == "DirectRunner"


@pytest.mark.parametrize("args, message", [
    (["--workers", "2", "--set", "distribution.strategy=mirrored"],
     "distribution.workers=2 needs distribution.strategy multi_worker (or auto), got 'mirrored'"),
    (["--workers", "0"], "distribution.workers must be an integer of 1 or more, got 0"),
    (["--set", "distribution.strategy=horovod"], "distribution.strategy must be one of"),
])
def test_a_distribution_that_cannot_work_is_refused_before_any_step_runs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, args: list[str],
        message: str) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["run", "sentiment", "--set", f"data.path={SAMPLE}", *args]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "pipeline_root").exists()


def _launch(tmp_path: Path, executor: str) -> tuple[dict, object, Path]:
    from rnnpipe.components.multi_worker import DeferredTracker, run_on_workers
    from rnnpipe.context import ExecutionContext
    from rnnpipe.dsl import Artifact

    out = tmp_path / "out"
    out.mkdir()
    tracker = DeferredTracker()
    ctx = ExecutionContext("toy", "Trainer", 1, tmp_path / "scratch", [], "multi_worker", tracker, workers=2)
    metrics = run_on_workers(f"worker_executors:{executor}", {}, {"out": Artifact("out", "Dir", str(out))}, {}, ctx)
    return metrics, tracker, out


def test_the_chief_writes_the_outputs_and_its_mlflow_calls_reach_the_run(tmp_path: Path) -> None:
    metrics, tracker, out = _launch(tmp_path, "report_index")
    assert metrics == {"index": 0, "workers": 2}
    assert (out / "index.txt").read_text() == "0"  # worker 1 wrote into the scratch folder
    assert (tmp_path / "scratch" / "multi_worker" / "worker-1" / "out" / "index.txt").read_text() == "1"
    assert tracker.calls == [("log_metric", ["loss", 0.5, 1]), ("set_tag", ["worker", 0])]


def test_a_worker_that_dies_stops_the_others_and_is_named(tmp_path: Path) -> None:
    from rnnpipe.errors import RnnpipeError

    started = time.monotonic()
    with pytest.raises(RnnpipeError, match=r"Trainer: worker 1 of 2 exited with status 3; the other workers were "
                                           r"stopped and nothing was exported\. Its log: .*worker-1/output\.log"):
        _launch(tmp_path, "one_worker_dies")
    assert time.monotonic() - started < 60  # the chief, waiting, was stopped: not left to its 120 s


def test_a_workers_own_error_is_raised_as_it_was(tmp_path: Path) -> None:
    from rnnpipe.errors import DataError

    with pytest.raises(DataError, match=r"^data\.csv:7: the label 'maybe' is not one of"):
        _launch(tmp_path, "chief_finds_bad_data")
