"""pipeline_root and serving_dir on a remote filesystem (rnnpipe/storage.py), tested against a real S3 API on
localhost (moto's server): published executions carry a completion marker, another machine (a fresh local cache)
reads them as cache hits and downloads what it executes on, and an upload killed before its marker is never read."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from object_store import make_bucket, s3_server
from toy_components import toy_config, toy_pipeline

from rnnpipe.errors import ConfigError, StageIOError
from rnnpipe.runner import collect_garbage, run_pipeline
from rnnpipe.serving import rollback, versions

TESTS = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory):
    with s3_server(tmp_path_factory.mktemp("moto") / "server.log") as env:
        yield env


@pytest.fixture
def bucket(s3: dict[str, str], workdir: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh bucket, with this process pointed at the server and its local copies in a fresh cache."""
    for key, value in s3.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("RNNPIPE_CACHE", str(workdir / "cache-a"))
    name = f"rnnpipe-{uuid.uuid4().hex[:12]}"
    make_bucket(s3, name)
    return name


def remote_config(workdir: Path, bucket: str, **extra: str):
    (workdir / "toy.yaml").write_text(f"pipeline_root: s3://{bucket}/root\nmetadata_url: sqlite:///"
                                      f"{workdir / 'metadata.sqlite'}\n"
                                      + "".join(f"{k}: {v}\n" for k, v in extra.items()))
    return toy_config(workdir)


def objects(bucket: str) -> list[str]:
    import s3fs

    return sorted(p.removeprefix(f"{bucket}/") for p in s3fs.S3FileSystem(skip_instance_cache=True).find(bucket))


def test_executions_are_published_with_a_marker_and_read_back_on_another_machine(
        workdir: Path, bucket: str, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = remote_config(workdir, bucket)
    first = run_pipeline(toy_pipeline(), cfg)
    assert first.executed == ["Source", "Scale", "ScaleAgain"]
    executions = (("Scale", 2), ("ScaleAgain", 3), ("Source", 1))
    assert objects(bucket) == [f"root/toy/{step}/{i}/{name}" for step, i in executions
                               for name in ("_COMPLETE", "numbers/n.txt")]
    assert Path(first.outputs["ScaleAgain"]["numbers"].uri, "n.txt").read_text() == "60"
    # Nothing of the pipeline's is kept locally but copies and the lock: the artifacts are the bucket's.
    assert not (workdir / "pipeline_root").exists()

    # Another machine: an empty local cache. Everything is a cache hit (the markers say the uploads are whole),
    # and nothing is downloaded until read; what an executed step reads is, and its output lands in the bucket.
    monkeypatch.setenv("RNNPIPE_CACHE", str(workdir / "cache-b"))
    again = run_pipeline(toy_pipeline(), cfg)
    assert again.cache_hits == ["Source", "Scale", "ScaleAgain"] and again.executed == []
    assert not list(workdir.glob("cache-b/**/n.txt"))
    assert Path(again.outputs["ScaleAgain"]["numbers"].uri).is_relative_to(workdir / "cache-b")
    assert len(list(workdir.glob("cache-b/**/n.txt"))) == 1
    monkeypatch.setenv("RNNPIPE_CACHE", str(workdir / "cache-c"))
    changed = run_pipeline(toy_pipeline(factor=5), cfg)
    assert changed.cache_hits == ["Source"] and changed.executed == ["Scale", "ScaleAgain"]
    # The one download is the Source output Scale read; the two executed steps keep copies of what they wrote.
    assert sorted(p.read_text() for p in workdir.glob("cache-c/**/n.txt")) == ["15", "150", "3"]
    assert Path(changed.outputs["ScaleAgain"]["numbers"].uri, "n.txt").read_text() == "150"
    assert sum(p.startswith("root/toy/ScaleAgain/") and p.endswith("/_COMPLETE") for p in objects(bucket)) == 2


def test_an_upload_killed_before_its_marker_is_discarded_and_run_again(
        workdir: Path, bucket: str, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = remote_config(workdir, bucket)
    (workdir / "run.py").write_text(
        "import sys; sys.path.insert(0, sys.argv[1])\nfrom pathlib import Path\n"
        "from toy_components import toy_config, toy_pipeline\nfrom rnnpipe.runner import run_pipeline\n"
        "run_pipeline(toy_pipeline(), toy_config(Path.cwd()))\n")
    env = {**os.environ, "RNNPIPE_FAULT": "publish.marker#2"}  # SIGKILL once Scale is uploaded, before its marker
    proc = subprocess.run([sys.executable, "run.py", str(TESTS)], cwd=workdir, env=env, capture_output=True,
                          text=True)
    assert proc.returncode == -9, proc.stderr[-2000:]
    assert "root/toy/Scale/2/numbers/n.txt" in objects(bucket)
    assert "root/toy/Scale/2/_COMPLETE" not in objects(bucket)

    resumed = run_pipeline(toy_pipeline(), cfg)
    assert resumed.cache_hits == ["Source"] and resumed.executed == ["Scale", "ScaleAgain"]
    assert not any(p.startswith("root/toy/Scale/2/") for p in objects(bucket))  # the half upload is gone
    assert Path(resumed.outputs["ScaleAgain"]["numbers"].uri, "n.txt").read_text() == "60"


def test_a_remote_root_needs_a_shared_metadata_store_and_its_filesystem(workdir: Path) -> None:
    (workdir / "toy.yaml").write_text("pipeline_root: s3://some-bucket/root\n")
    with pytest.raises(ConfigError, match="set metadata_url to a database every machine reaches"):
        run_pipeline(toy_pipeline(), toy_config(workdir))
    (workdir / "toy.yaml").write_text(f"pipeline_root: gs://some-bucket/root\nmetadata_url: sqlite:///{workdir}/m.db\n")
    with pytest.raises(ConfigError, match=r"gs://some-bucket/root/toy: no filesystem for gs:// .*pip install gcsfs"):
        run_pipeline(toy_pipeline(), toy_config(workdir))


def test_pusher_serves_from_a_bucket_with_saved_model_written_last(
        workdir: Path, bucket: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from mlflow.tracking import MlflowClient
    from test_pusher import demo

    from rnnpipe.serving import PUSH_RECORD

    cfg = toy_config(workdir)  # a local pipeline, a remote serving_dir: only the Pusher uploads
    serving = f"s3://{bucket}/serving"
    # The upload fails at its fourth and last file, saved_model.pb: nothing is served, nothing is left.
    monkeypatch.setenv("RNNPIPE_FAULT", "upload#4=EIO")
    with pytest.raises(StageIOError, match=f"cannot write version 1 to {serving}/demo.*Nothing was pushed"):
        run_pipeline(demo(serving_dir=serving), cfg)
    assert not any(p.startswith("serving/") for p in objects(bucket))
    monkeypatch.delenv("RNNPIPE_FAULT")

    first = run_pipeline(demo(serving_dir=serving), cfg)
    assert first.metrics["Pusher"]["pushed"] == 1 and first.metrics["Pusher"]["version"] == 1
    served = [p for p in objects(bucket) if p.startswith("serving/")]
    assert served == ["serving/demo/1/assets.extra/rnnpipe_push.json", "serving/demo/1/saved_model.pb",
                      "serving/demo/1/variables/variables.data-00000-of-00001",
                      "serving/demo/1/variables/variables.index", "serving/models.config"]
    import s3fs

    fs = s3fs.S3FileSystem(skip_instance_cache=True)
    assert 'base_path: "/models/demo"' in fs.cat(f"{bucket}/serving/models.config").decode()
    assert json.loads(fs.cat(f"{bucket}/serving/demo/1/{PUSH_RECORD}"))["model_fingerprint"]
    version = MlflowClient(f"sqlite:///{workdir / 'mlflow.db'}").get_model_version_by_alias("demo", "champion")
    assert version.tags["rnnpipe.serving_path"] == f"{serving}/demo"

    # Without a local copy: the push is verified in the bucket and kept; a new model becomes version 2.
    monkeypatch.setenv("RNNPIPE_CACHE", str(workdir / "cache-b"))
    assert run_pipeline(demo(serving_dir=serving), cfg).cache_hits == ["FakeTrainer", "FakeGate", "Pusher"]
    second = run_pipeline(demo(weights="w2", serving_dir=serving), cfg)
    assert second.metrics["Pusher"]["version"] == 2 and versions(f"{serving}/demo") == [1, 2]
    assert rollback(f"{serving}/demo") == (1, [2]) and versions(f"{serving}/demo") == [1]
    assert any(p.startswith("serving/demo/.rolled_back/2-") for p in objects(bucket))


@pytest.mark.slow
def test_sentiment_runs_from_and_serves_into_a_bucket(workdir: Path, bucket: str,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """The real pipeline (Beam, tf.Transform, training, the gates) with both locations in the bucket; a second
    machine finds every step cached there, and `rnnpipe predict` answers from the served version in the bucket."""
    from test_sentiment_e2e import PUSH_ANYWAY, SMALL

    from rnnpipe.cli import main

    where = ["--set", f"pipeline_root=s3://{bucket}/root", "--set", f"serving_dir=s3://{bucket}/serving",
             "--set", f"metadata_url=sqlite:///{workdir / 'metadata.sqlite'}",
             "--set", f"data.cache_dir={workdir / 'data'}"]  # the same datasets on both machines (part of the key)
    assert main(["run", "sentiment", *SMALL, *PUSH_ANYWAY, *where]) == 0
    assert "serving/sentiment/1/saved_model.pb" in objects(bucket)
    monkeypatch.setenv("RNNPIPE_CACHE", str(workdir / "cache-b"))
    assert main(["run", "sentiment", *SMALL, *PUSH_ANYWAY, *where]) == 0
    runs = [line for line in objects(bucket) if line.endswith("/_COMPLETE")]
    assert len(runs) == 10  # nine steps and the Tuner, each published once: the second run executed nothing
    proc = subprocess.run([sys.executable, "-m", "rnnpipe.cli", "predict", "sentiment", *SMALL, *where,
                           "a wonderful, moving film"], capture_output=True, text=True, cwd=workdir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "'a wonderful, moving film': label=" in proc.stdout


def test_gc_deletes_the_executions_no_recent_run_used_from_the_bucket(workdir: Path, bucket: str) -> None:
    cfg = remote_config(workdir, bucket)
    run_pipeline(toy_pipeline(), cfg)
    run_pipeline(toy_pipeline(factor=5), cfg)  # Source reused; Scale and ScaleAgain anew
    copies = workdir / "cache-a" / "remote"
    assert sorted(p.read_text() for p in copies.glob("*/n.txt")) == ["15", "150", "3", "6", "60"]
    done = collect_garbage(cfg, "toy", keep_runs=1)
    # "6" and "60" in the bucket, and this machine's copies of them (what ran here kept what it uploaded).
    assert done.executions == [("Scale", 2), ("ScaleAgain", 3)] and done.bytes == 6 and done.copies == 3
    assert sorted(p.read_text() for p in copies.glob("*/n.txt")) == ["15", "150", "3"]
    assert not list(copies.glob(".tmp-*"))
    assert objects(bucket) == [f"root/toy/{step}/{i}/{name}" for step, i in (("Scale", 5), ("ScaleAgain", 6),
                                                                              ("Source", 1))
                               for name in ("_COMPLETE", "numbers/n.txt")]
    assert run_pipeline(toy_pipeline(), cfg).executed == ["Scale", "ScaleAgain"]
