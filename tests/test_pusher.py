"""The Pusher through the real runner, MLflow (SQLite) and file system, with a fake model: it only copies files."""

from __future__ import annotations

import json
import shutil
import stat
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from toy_components import toy_config

from rnnpipe import faults, storage
from rnnpipe.artifacts import Model, ModelBlessing
from rnnpipe.components.pusher import Pusher
from rnnpipe.dsl import Component, Param, Pipeline
from rnnpipe.errors import StageIOError
from rnnpipe.faults import ENV
from rnnpipe.serving import PUSH_RECORD, ROLLED_BACK, rollback, versions
from rnnpipe.tracking import SERVING_PATH_TAG, SERVING_VERSION_TAG, move_alias_to_serving_version


@pytest.fixture(autouse=True)
def fresh_fault_counts(monkeypatch: pytest.MonkeyPatch) -> None:
    """``NAME#N`` counts reached points per process: start each test from zero."""
    monkeypatch.setattr(faults, "_reached", Counter())


def _fake_trainer(inputs, outputs, params, ctx):
    out = outputs["model"].path()
    (out / "variables").mkdir()
    (out / "variables" / "variables.data-00000-of-00001").write_text(params["weights"])
    (out / "variables" / "variables.index").write_text("index")
    (out / Model.SAVED_MODEL).write_text("graph")
    ctx.tracker.log_artifact(out, Model.MLFLOW_PATH)


def _fake_gate(inputs, outputs, params, ctx):
    ModelBlessing.write(outputs["blessing"], True, [])


class FakeTrainer(Component):
    OUTPUTS = {"model": "Model"}
    PARAMETERS = {"weights": Param(str)}
    executor = staticmethod(_fake_trainer)


class FakeGate(Component):
    INPUTS = {"model": "Model"}
    OUTPUTS = {"blessing": "ModelBlessing"}
    executor = staticmethod(_fake_gate)


def demo(weights: str = "w1", serving_dir: Path | str | None = None) -> Pipeline:
    model = FakeTrainer(weights=weights)
    gate = FakeGate(model=model)
    # The working directory's, as the config's default (or a URI: tests/test_artifact_uris.py).
    serving = storage.resolve(serving_dir or "serving")
    pusher = Pusher(model=model, blessing=gate, model_name="demo", serving_dir=serving)
    return Pipeline("demo", [model, gate, pusher])


def run(workdir: Path, **kwargs):
    from rnnpipe.runner import run_pipeline

    return run_pipeline(demo(**kwargs), toy_config(workdir))


def registry(workdir: Path):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{workdir / 'mlflow.db'}")
    return client, client.search_model_versions("name = 'demo'")


def champion(workdir: Path) -> dict[str, str]:
    client, _ = registry(workdir)
    return client.get_model_version_by_alias("demo", "champion").tags


def test_a_push_is_reused_only_while_it_is_served_and_follows_serving_dir(workdir: Path) -> None:
    base = workdir / "serving" / "demo"
    first = run(workdir)
    assert "Pusher" in first.executed and first.metrics["Pusher"]["version"] == 1 and versions(base) == [1]
    assert json.loads((base / "1" / PUSH_RECORD).read_text())["model_fingerprint"] == \
        first.outputs["FakeTrainer"]["model"].fingerprint
    assert stat.S_IMODE((workdir / "serving" / "models.config").stat().st_mode) == 0o644
    assert champion(workdir)[SERVING_VERSION_TAG] == "1" and champion(workdir)[SERVING_PATH_TAG] == str(base)
    assert run(workdir).cache_hits == ["FakeTrainer", "FakeGate", "Pusher"]

    shutil.rmtree(workdir / "serving")  # served model gone: the cache hit must not report a push
    again = run(workdir)
    assert again.executed == ["Pusher"] and versions(base) == [1] and len(registry(workdir)[1]) == 1

    other = run(workdir, serving_dir=workdir / "elsewhere")  # only the destination changes
    assert other.executed == ["Pusher"] and versions(workdir / "elsewhere" / "demo") == [1]
    assert champion(workdir)[SERVING_PATH_TAG] == str(workdir / "elsewhere" / "demo")
    assert len(registry(workdir)[1]) == 2


def test_same_model_is_served_once_and_the_registry_is_repaired(workdir: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    base = workdir / "serving" / "demo"
    run(workdir)
    client, [entry] = registry(workdir)
    client.delete_model_version("demo", entry.version)  # serving has version 1, the registry lost it
    repaired = run(workdir)
    assert repaired.executed == ["Pusher"] and repaired.metrics["Pusher"]["already_served"] == 1
    assert versions(base) == [1] and champion(workdir)[SERVING_VERSION_TAG] == "1"
    forced = run_from_pusher(workdir)
    assert forced.metrics["Pusher"]["version"] == 1 and versions(base) == [1] and len(registry(workdir)[1]) == 1

    # A failure right after the version folder is renamed in (where a kill leaves it): version 2 is served
    # but not registered; the next run registers it instead of pushing the same model as version 3.
    monkeypatch.setenv(ENV, "Pusher.renamed=EIO")
    with pytest.raises(StageIOError, match="Pusher: .*Input/output error"):
        run(workdir, weights="w2")
    monkeypatch.delenv(ENV)
    assert versions(base) == [1, 2] and champion(workdir)[SERVING_VERSION_TAG] == "1"
    resumed = run(workdir, weights="w2")
    assert resumed.metrics["Pusher"]["version"] == 2 and versions(base) == [1, 2]
    assert champion(workdir)[SERVING_VERSION_TAG] == "2"

    assert rollback(base) == (1, [2])
    assert move_alias_to_serving_version(f"sqlite:///{workdir / 'mlflow.db'}", "demo", 1, serving_path=str(base))
    assert champion(workdir)[SERVING_VERSION_TAG] == "1"
    after_rollback = run(workdir, weights="w2")  # the rolled-back model is not pushed again
    assert after_rollback.metrics["Pusher"] == {"pushed": 0, "same_as_version": 2}
    assert versions(base) == [1] and champion(workdir)[SERVING_VERSION_TAG] == "1"


def run_from_pusher(workdir: Path):
    from rnnpipe.runner import run_pipeline

    return run_pipeline(demo(), toy_config(workdir), from_step="Pusher")


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_failed_copy_leaves_no_version_and_stale_pushes_are_removed(workdir: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    base = workdir / "serving" / "demo"
    run(workdir)
    config = (workdir / "serving" / "models.config").read_text()
    (base / f".tmp-7-{dead_pid()}" / "variables").mkdir(parents=True)  # left by a killed push

    monkeypatch.setenv(ENV, "Pusher.copy#2=ENOSPC")  # the second file of the copy finds the disk full
    with pytest.raises(StageIOError, match=f"cannot write version 2 to {base}: No space left on device") as e:
        run(workdir, weights="w2")
    assert e.value.exit_code == 1
    assert sorted(p.name for p in base.iterdir()) == ["1"]  # no version 2, no .tmp-* (new or stale)
    assert (workdir / "serving" / "models.config").read_text() == config

    monkeypatch.setenv(ENV, "Pusher.models_config=EROFS")
    with pytest.raises(StageIOError, match=f"{workdir / 'serving' / 'models.config'}: Read-only file system"):
        run(workdir, weights="w2")
    assert sorted(p.name for p in (workdir / "serving").iterdir()) == ["demo", "models.config"]
    assert (workdir / "serving" / "models.config").read_text() == config
    monkeypatch.delenv(ENV)
    assert run(workdir, weights="w2").metrics["Pusher"]["version"] == 2 and versions(base) == [1, 2]
    assert not list(base.glob(".tmp-*")) and not (base / ROLLED_BACK).exists()
