"""Fault injection: a run killed with SIGKILL at any point resumes, and nothing half-done is mistaken for done.

``RNNPIPE_FAULT`` (rnnpipe/faults.py) makes the process kill itself at a named point in the real code path:
before a stage's executor, after its output folder is renamed in but before the metadata says COMPLETE, after
it is recorded, inside the Trainer's backup write and the Pusher's version rename. No sleeps tuned to timing.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import sqlalchemy as sa
from toy_components import toy_config, toy_pipeline

from rnnpipe.metadata import executions
from rnnpipe.runner import metadata_url, run_pipeline

TESTS = Path(__file__).resolve().parent
TOY_RUN = ("import sys; from pathlib import Path; from toy_components import toy_config, toy_pipeline; "
           "from rnnpipe.runner import run_pipeline; run_pipeline(toy_pipeline(), toy_config(Path(sys.argv[1])))")


def run_killed_at(point: str, work: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(TESTS), "RNNPIPE_FAULT": point}
    proc = subprocess.run([sys.executable, "-c", TOY_RUN, str(work)], cwd=work, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, f"{point}: exit {proc.returncode}\n{proc.stderr[-2000:]}"


def test_kills_at_every_stage_boundary_resume_to_the_same_result(workdir: Path) -> None:
    # Each killed run resumes the previous one and dies one boundary further on.
    points = ["after:Source", "renamed:Scale", "before:ScaleAgain"]
    root = workdir / "pipeline_root" / "toy"
    for point in points:
        run_killed_at(point, workdir)
        if point == "renamed:Scale":
            assert list(root.glob("Scale/[0-9]*")), "Scale's output was renamed in before the kill"

    resumed = run_pipeline(toy_pipeline(), toy_config(workdir))
    assert resumed.executed == ["ScaleAgain"] and resumed.cache_hits == ["Source", "Scale"]
    assert int(Path(resumed.outputs["ScaleAgain"]["numbers"].uri, "n.txt").read_text()) == 60
    engine = sa.create_engine(metadata_url(toy_config(workdir)))
    with engine.connect() as c:
        rows = c.execute(sa.select(executions.c.id, executions.c.component, executions.c.status)).all()
    complete = {(r.component, r.id) for r in rows if r.status == "COMPLETE"}
    assert sorted(c for c, _ in complete) == ["Scale", "ScaleAgain", "Source"]
    # Only complete executions' folders remain: a renamed-in but unrecorded output is gone, as are temp folders.
    on_disk = {(p.parent.name, int(p.name)) for p in root.glob("*/[0-9]*")}
    assert on_disk == complete
    assert not list(root.rglob(".tmp-*"))
    # Every killed pipeline run's MLflow run is closed, none stays RUNNING.
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{workdir / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("toy").experiment_id])
    statuses = sorted(r.info.status for r in runs)
    assert statuses == ["FINISHED"] + ["KILLED"] * len(points), statuses


def test_kill_right_after_the_pushed_version_is_renamed_in_is_completed_not_duplicated(workdir: Path) -> None:
    from test_pusher import registry, run

    from rnnpipe.serving import versions

    script = "import sys; from pathlib import Path; from test_pusher import run; run(Path(sys.argv[1]))"
    env = {**os.environ, "PYTHONPATH": str(TESTS), "RNNPIPE_FAULT": "Pusher.renamed"}
    proc = subprocess.run([sys.executable, "-c", script, str(workdir)], cwd=workdir, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    base = workdir / "serving" / "demo"
    assert versions(base) == [1] and not registry(workdir)[1]  # served, but the registry never heard of it

    resumed = run(workdir)
    assert resumed.executed == ["Pusher"] and resumed.metrics["Pusher"]["version"] == 1
    assert versions(base) == [1] and not list(base.glob(".tmp-*"))  # completed in place: no version 2
    client, found = registry(workdir)
    assert [v.tags["rnnpipe.serving_version"] for v in found] == ["1"]
    assert client.get_model_version_by_alias("demo", "champion").version == found[0].version


@pytest.mark.slow  # tests/test_trainer_backup.py injects the same two faults in-process in the fast suite
def test_kill_inside_the_trainers_backup_write_resumes_from_the_last_committed_epoch(workdir: Path) -> None:
    from test_trainer_backup import fit

    backup = workdir / "backup"
    script = "import sys; from pathlib import Path; from test_trainer_backup import fit; fit(Path(sys.argv[1]), 3)"
    # First: killed with epoch 2's weights written but not renamed in (epoch 1 committed). Then the resumed run
    # trains epoch 2, commits it, and is killed with epoch 3's weights renamed in but the record not yet updated.
    for point in ("Trainer.backup#2", "Trainer.backup.commit#2"):
        env = {**os.environ, "PYTHONPATH": str(TESTS), "RNNPIPE_FAULT": point}
        proc = subprocess.run([sys.executable, "-c", script, str(backup)], cwd=workdir, env=env, capture_output=True,
                              text=True, timeout=300)
        assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    warnings: list[str] = []
    _, restored, history = fit(backup, 3, warnings=warnings)
    assert not warnings, warnings  # leftovers of a kill are expected, not damage
    assert restored.restored_epoch == 2 and history.epoch == [2]  # only the uncommitted epoch is trained again


@pytest.mark.parametrize("error, hint", [("ENOSPC", "free some space"), ("EROFS", "the location is read-only"),
                                         ("EACCES", "check the permissions")])
def test_an_io_error_in_a_stage_is_one_line_naming_stage_and_path_and_leaves_nothing(
        workdir: Path, monkeypatch: pytest.MonkeyPatch, error: str, hint: str) -> None:
    from rnnpipe import faults
    from rnnpipe.errors import StageIOError

    monkeypatch.setattr(faults, "_reached", Counter())
    monkeypatch.setenv(faults.ENV, f"before:Scale={error}")
    with pytest.raises(StageIOError) as raised:
        run_pipeline(toy_pipeline(), toy_config(workdir))
    root = workdir / "pipeline_root" / "toy"
    assert re.fullmatch(rf"Scale: cannot read or write {re.escape(str(root))}/Scale/\.tmp-\d+: .+; {hint}.*",
                        str(raised.value))
    assert raised.value.exit_code == 1
    assert not list(root.glob("Scale/*"))  # neither the temporary folder nor a final one
    monkeypatch.delenv(faults.ENV)
    assert run_pipeline(toy_pipeline(), toy_config(workdir)).executed == ["Scale", "ScaleAgain"]


@pytest.mark.slow
def test_sentiment_killed_at_every_stage_boundary_finishes_with_one_pushed_version(workdir: Path) -> None:
    from mlflow.tracking import MlflowClient

    from rnnpipe.cli import main
    from rnnpipe.serving import versions

    sample = TESTS / "data" / "sentiment_sample.jsonl"
    args = ["run", "sentiment", "--set", f"data.path={sample}", "--set", "trainer.epochs=2",
            "--set", "transform.min_frequency=1", "--set", "model.units=16", "--set", "model.embedding_dim=16",
            "--set", "embedding_pretrainer.corpus=null", "--set", "trainer.ensemble=1",
            "--set", "evaluator.must_beat_baseline=false", "--set", "evaluator.thresholds={}",
            "--set", "evaluator.must_beat_peers=false"]
    stages = ["ExampleGen", "StatisticsGen", "SchemaGen", "ExampleValidator", "Transform", "Trainer", "Evaluator",
              "InfraValidator", "Pusher"]
    # Each run resumes the last one and is killed one step further: after a stage's output is renamed in but
    # before it is recorded, then inside the Trainer's backup and the Pusher's rename.
    points = [f"renamed:{s}" for s in stages[:5]] + ["Trainer.backup#2", "renamed:Trainer", "renamed:Evaluator",
                                                     "renamed:InfraValidator", "Pusher.renamed"]
    for point in points:
        env = {**os.environ, "RNNPIPE_FAULT": point}
        proc = subprocess.run([sys.executable, "-m", "rnnpipe.cli", *args], cwd=workdir, env=env,
                              capture_output=True, text=True, timeout=900)
        assert proc.returncode == -signal.SIGKILL, f"{point}: {proc.stderr[-3000:]}"
    assert main(args) == 0
    base = workdir / "serving" / "sentiment"
    assert versions(base) == [1] and not list(base.glob(".tmp-*"))
    client = MlflowClient(f"sqlite:///{workdir / 'mlflow.db'}")
    registered = client.search_model_versions("name = 'sentiment'")
    assert [v.tags["rnnpipe.serving_version"] for v in registered] == ["1"]
    runs = client.search_runs([client.get_experiment_by_name("sentiment").experiment_id])
    assert sorted(r.info.status for r in runs) == ["FINISHED"] + ["KILLED"] * len(points)
    assert main(args) == 0  # and then nothing new: all cache hits, same version
    assert versions(base) == [1]
