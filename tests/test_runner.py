from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from toy_components import Scale, Source, toy_config, toy_pipeline

from rnnpipe.dsl import Pipeline
from rnnpipe.errors import PipelineLockedError, RnnpipeError
from rnnpipe.metadata import MetadataStore, executions
from rnnpipe.runner import metadata_url, pipeline_lock, run_pipeline

TESTS = Path(__file__).resolve().parent


def value(result, step: str) -> int:
    return int(Path(result.outputs[step]["numbers"].uri, "n.txt").read_text())


def test_rerun_with_nothing_changed_is_all_cache_hits(workdir: Path) -> None:
    cfg = toy_config(workdir)
    first = run_pipeline(toy_pipeline(), cfg)
    assert first.executed == ["Source", "Scale", "ScaleAgain"] and value(first, "ScaleAgain") == 60
    second = run_pipeline(toy_pipeline(), cfg)
    assert second.executed == [] and second.cache_hits == ["Source", "Scale", "ScaleAgain"]
    assert second.outputs == first.outputs
    # Artifacts live at <root>/<app>/<step>/<execution_id>/<output>.
    uri = Path(first.outputs["Scale"]["numbers"].uri)
    assert uri.parent.parent == workdir / "pipeline_root" / "toy" / "Scale"


def test_a_path_in_the_data_cache_or_the_checkout_keys_a_step_wherever_those_folders_are(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from toy_components import Gated

    from rnnpipe.config import Config
    from rnnpipe.runner import PIPELINES, _cache_key

    def key(cache: Path, data: Path, schema: Path = PIPELINES / "sentiment" / "schema.pbtxt",
            configured: Path | None = None) -> str:
        monkeypatch.setenv("RNNPIPE_CACHE", str(cache))
        cfg = Config({"data": Config({"cache_dir": str(configured) if configured else None})})
        return _cache_key(Gated(numbers=Source(value=1), started=str(data), release=str(schema)), {}, "", cfg)

    here = key(tmp_path / "a", tmp_path / "a" / "sentiment" / "data.jsonl")
    # Another machine: its cache and its checkout elsewhere, the same files in them (their content is keyed apart).
    monkeypatch.setattr("rnnpipe.runner.PIPELINES", tmp_path / "site-packages" / "rnnpipe" / "pipelines")
    schema = tmp_path / "site-packages" / "rnnpipe" / "pipelines" / "sentiment" / "schema.pbtxt"
    assert key(tmp_path / "b", tmp_path / "b" / "sentiment" / "data.jsonl", schema) == here
    # Another file is another step, in or out of the cache.
    assert key(tmp_path / "b", tmp_path / "b" / "sentiment" / "other.jsonl", schema) != here
    assert key(tmp_path / "b", tmp_path / "a" / "sentiment" / "data.jsonl", schema) != here
    assert key(tmp_path / "b", tmp_path / "b" / "sentiment" / "data.jsonl", schema.with_name("x.pbtxt")) != here
    # A configured data.cache_dir is a root too: each machine's own folder, the same key.
    mine = key(tmp_path / "a", tmp_path / "mine" / "sentiment" / "data.jsonl", schema, configured=tmp_path / "mine")
    theirs = key(tmp_path / "b", tmp_path / "theirs" / "sentiment" / "data.jsonl", schema,
                 configured=tmp_path / "theirs")
    assert mine == theirs != key(tmp_path / "b", tmp_path / "mine" / "sentiment" / "data.jsonl", schema,
                                 configured=tmp_path / "theirs")


def test_changing_one_parameter_reruns_that_step_and_downstream_only(workdir: Path) -> None:
    cfg = toy_config(workdir)
    run_pipeline(toy_pipeline(factor=2), cfg)
    changed = run_pipeline(toy_pipeline(factor=5), cfg)
    assert changed.cache_hits == ["Source"] and changed.executed == ["Scale", "ScaleAgain"]
    assert value(changed, "ScaleAgain") == 150


def test_from_and_only(workdir: Path) -> None:
    cfg = toy_config(workdir)
    run_pipeline(toy_pipeline(), cfg)
    from_scale = run_pipeline(toy_pipeline(), cfg, from_step="Scale")
    assert from_scale.cache_hits == ["Source"] and from_scale.executed == ["Scale", "ScaleAgain"]
    only = run_pipeline(toy_pipeline(), cfg, only="Scale")
    assert only.executed == ["Scale"] and only.cache_hits == ["Source"] and "ScaleAgain" not in only.outputs
    with pytest.raises(RnnpipeError, match="no step 'Nope' in pipeline toy"):
        run_pipeline(toy_pipeline(), cfg, only="Nope")


def test_mlflow_run_per_pipeline_run_with_replayed_metrics(workdir: Path) -> None:
    from mlflow.tracking import MlflowClient

    cfg = toy_config(workdir)
    run_pipeline(toy_pipeline(), cfg)
    cached = run_pipeline(toy_pipeline(), cfg)
    run = MlflowClient("sqlite:///mlflow.db").get_run(cached.mlflow_run_id)
    assert run.data.tags["rnnpipe.cache_hits"] == "Source,Scale,ScaleAgain"
    assert run.data.tags["rnnpipe.pipeline_run_id"] == cached.run_id
    assert run.data.metrics["source_value"] == 3 and run.data.metrics["Source/value"] == 3  # replayed from cache


def test_concurrent_run_is_refused_while_the_lock_is_held(workdir: Path) -> None:
    cfg = toy_config(workdir)
    with pipeline_lock(workdir / "pipeline_root" / "toy"):
        with pytest.raises(PipelineLockedError, match="another run of this pipeline is in progress"):
            run_pipeline(toy_pipeline(), cfg)
    assert run_pipeline(toy_pipeline(), cfg).executed  # released afterwards


def test_failed_step_leaves_no_artifact_and_is_rerun(workdir: Path) -> None:
    cfg = toy_config(workdir)
    src = Source(value=1)

    class Exploding(Scale):
        executor = staticmethod(lambda i, o, p, c: (o["numbers"].path("n.txt").write_text("0"), 1 / 0))

    with pytest.raises(ZeroDivisionError):
        run_pipeline(Pipeline("toy", [src, Exploding(numbers=src)]), cfg)
    step_dir = workdir / "pipeline_root" / "toy" / "Exploding"
    assert not list(step_dir.glob("*")) if step_dir.exists() else True  # no tmp, no final dir
    store = MetadataStore(metadata_url(cfg))
    assert store.find_complete("toy", "Exploding") is None


def test_sigkill_mid_step_resumes_without_reusing_the_partial_artifact(workdir: Path) -> None:
    gate = workdir / "gate"
    gate.mkdir()
    env = {**os.environ, "PYTHONPATH": str(TESTS)}
    proc = subprocess.Popen([sys.executable, str(TESTS / "toy_components.py"), str(workdir), str(gate)],
                            cwd=workdir, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while not (gate / "started").exists():
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        assert time.time() < deadline, "the gated step never started"
        time.sleep(0.1)
    killed_execution = int((gate / "started").read_text())
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    step_dir = workdir / "pipeline_root" / "toy" / "Gated"
    assert (step_dir / f".tmp-{killed_execution}" / "numbers" / "partial.txt").exists()

    (gate / "release").write_text("go")
    resumed = run_pipeline(toy_pipeline(gate_dir=str(gate)), toy_config(workdir))
    assert resumed.cache_hits == ["Source", "Scale", "ScaleAgain"] and resumed.executed == ["Gated"]
    assert value(resumed, "Gated") == 61
    assert not list(step_dir.glob(".tmp-*")) and not (step_dir / str(killed_execution)).exists()
    engine = sa.create_engine(metadata_url(toy_config(workdir)))
    with engine.connect() as c:
        status = c.execute(sa.select(executions.c.status).where(executions.c.id == killed_execution)).scalar()
    assert status == "ABANDONED"


def test_pipeline_wiring_must_follow_the_list_order() -> None:
    src = Source(value=1)
    with pytest.raises(ValueError, match="step Scale reads 'numbers' from Source, which is not listed before it"):
        Pipeline("toy", [Scale(numbers=src), src])


def test_components_validate_their_arguments() -> None:
    with pytest.raises(TypeError, match="parameter 'factor' must be int, got str"):
        Scale(numbers=Source(value=1), factor="2")
    with pytest.raises(TypeError, match="unknown argument 'fctor'"):
        Scale(numbers=Source(value=1), fctor=2)
    with pytest.raises(TypeError, match="missing required parameter 'value'"):
        Source()


def test_lineage_walks_back_to_the_source(workdir: Path) -> None:
    cfg = toy_config(workdir)
    run_pipeline(toy_pipeline(), cfg)
    store = MetadataStore(metadata_url(cfg))
    final = store.outputs_of(store.find_complete("toy", "ScaleAgain"))["numbers"]
    assert [step["component"] for step in store.lineage(final.id)] == ["ScaleAgain", "Scale", "Source"]
