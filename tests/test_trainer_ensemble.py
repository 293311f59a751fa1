"""trainer.ensemble: several models from consecutive seeds, served as the mean of their probabilities."""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
from collections import Counter
from pathlib import Path

import mlflow_store
import numpy as np
import pytest
from executions import latest as _latest
from test_sentiment_e2e import recorded_metrics

from rnnpipe.cli import main
from rnnpipe.errors import ConfigError

SAMPLE = Path(__file__).resolve().parent / "data" / "sentiment_sample.jsonl"
TINY = ["--set", f"data.path={SAMPLE}", "--set", "trainer.epochs=1", "--set", "transform.min_frequency=1",
        "--set", "model.units=8", "--set", "model.embedding_dim=8", "--set", "embedding_pretrainer.corpus=null",
        "--set", "evaluator.must_beat_baseline=false", "--set", "evaluator.thresholds={}",
        "--set", "evaluator.must_beat_peers=false", "--set", "trainer.gradient_diagnostics=false"]


def latest(work: Path, step: str) -> Path:
    return _latest(work, step, app="sentiment")


def test_mean_ensemble_outputs_the_members_mean_and_saves_like_a_functional_model(tmp_path: Path) -> None:
    import keras

    from rnnpipe.models import build_sequence_classifier, mean_ensemble

    members = [build_sequence_classifier(30, 3, embedding_dim=4, units=4, pooling="max") for _ in range(3)]
    x = np.array([[3, 5, 9, 0], [1, 2, 0, 0]])
    ensemble = mean_ensemble(members)
    expected = np.mean([m(x).numpy() for m in members], axis=0)
    np.testing.assert_allclose(ensemble(x).numpy(), expected, atol=1e-6)
    assert not np.allclose(members[0](x).numpy(), expected)  # the members differ: the mean is not one of them
    ensemble.save(tmp_path / "e.keras")
    np.testing.assert_allclose(keras.saving.load_model(tmp_path / "e.keras")(x).numpy(), expected, atol=1e-6)
    with pytest.raises(ValueError, match="two or more Keras models"):
        mean_ensemble(members[:1])
    with pytest.raises(ValueError, match="one output of one shape"):
        mean_ensemble([members[0], build_sequence_classifier(30, 2, embedding_dim=4, units=4)])


def test_only_an_averageable_task_trains_an_ensemble_and_in_one_process() -> None:
    from rnnpipe.components.trainer import _check_ensemble
    from rnnpipe.pipelines.sentiment.model import TASK

    params = {"ensemble": 3}
    _check_ensemble(TASK, params, "default")
    with pytest.raises(ConfigError, match="trainer.ensemble=3: this application's model outputs do not average"):
        _check_ensemble(dataclasses.replace(TASK, averageable=False), params, "default")
    with pytest.raises(ConfigError, match="one after another in one process"):
        _check_ensemble(TASK, params, "multi_worker")


@pytest.fixture(scope="module")
def pushed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An ensemble of two pushed by a run that resumed after a failure while the second member trained."""
    from rnnpipe import faults

    work = tmp_path_factory.mktemp("ensemble")
    mp = pytest.MonkeyPatch()
    mp.chdir(work)
    mlflow_store.seed(work)
    mp.delenv("MLFLOW_TRACKING_URI", raising=False)
    mp.setattr(faults, "_reached", Counter())
    # One epoch a member: the second backup is the second member's first epoch.
    mp.setenv(faults.ENV, "Trainer.backup#2=EIO")
    assert main(["run", "sentiment", *TINY, "--set", "trainer.ensemble=2"]) == 1
    mp.delenv(faults.ENV)
    [kept] = (work / "pipeline_root" / "sentiment").glob(".scratch/Trainer/*/member-0/model.weights.h5")
    shutil.copy(kept, work / "member-0.weights.h5")
    logger, handler = logging.getLogger("rnnpipe"), logging.FileHandler(work / "resumed.log")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        assert main(["run", "sentiment", *TINY, "--set", "trainer.ensemble=2"]) == 0
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        handler.close()
    yield work
    mp.undo()


def test_a_resumed_ensemble_loads_the_members_trained_before_the_failure(pushed: Path) -> None:
    resumed = (pushed / "resumed.log").read_text()
    assert "ensemble member 1 of 2: trained before the run was interrupted, loaded from" in resumed
    assert "ensemble member 1 of 2 (seed" not in resumed and "ensemble member 2 of 2 (seed 43)" in resumed
    import h5py
    import keras

    kept: set[bytes] = set()
    with h5py.File(pushed / "member-0.weights.h5") as f:
        f.visititems(lambda _, item: kept.add(item[()].tobytes()) if isinstance(item, h5py.Dataset) else None)
    served = keras.saving.load_model(latest(pushed, "Trainer") / "model_run" / "model.keras").get_layer("member_0")
    assert {keras.ops.convert_to_numpy(w).tobytes() for w in served.weights} <= kept  # the weights it loaded
    assert "member_0_best_val_accuracy" in recorded_metrics(pushed, "Trainer")  # and the record of its fit


def test_the_served_model_is_the_calibrated_mean_of_the_members(pushed: Path) -> None:
    import keras
    import tensorflow as tf

    from rnnpipe.artifacts import TransformGraph
    from rnnpipe.models.calibration import scale
    from rnnpipe.pipelines.sentiment.model import TASK

    workdir = pushed
    trainer = recorded_metrics(workdir, "Trainer")
    assert trainer["ensemble_members"] == 2 and {"member_0_best_val_accuracy", "member_1_best_val_accuracy",
                                                 "ensemble_val_accuracy"} <= set(trainer)
    logged = [json.loads(line) for line in (latest(workdir, "Evaluator") / "evaluation" / "predictions.jsonl").open()]
    raw = {"text": tf.constant([r["text"] for r in logged[:20]])}
    features = TransformGraph.load(latest(workdir, "Transform") / "transform_graph").transform_features_layer()(raw)
    model = keras.saving.load_model(latest(workdir, "Trainer") / "model_run" / "model.keras")
    inputs = TASK.model_inputs(features)
    members = [keras.ops.convert_to_numpy(model.get_layer(f"member_{i}")(inputs, training=False)) for i in range(2)]
    assert not np.allclose(members[0], members[1], atol=1e-3)  # two seeds, two models
    served = [r["probabilities"] for r in logged[:20]]
    np.testing.assert_allclose(scale(np.mean(members, axis=0), trainer["calibration_temperature"]), served, atol=1e-5)


def test_a_warm_started_ensemble_starts_each_member_from_the_champions(pushed: Path) -> None:
    import keras

    from rnnpipe.components.training import weights_digest

    champion = keras.saving.load_model(latest(pushed, "Trainer") / "model_run" / "model.keras")
    assert main(["run", "sentiment", *TINY, "--set", "trainer.ensemble=2", "--set", "trainer.warm_start=champion"]) \
        in (0, 3)  # blessed or not: what matters is where it started
    assert recorded_metrics(pushed, "Trainer")["warm_started"] == 1
    started = json.loads((latest(pushed, "Trainer") / "model_run" / "warm_start.json").read_text())
    assert started["version"] == 1 and started["digest"] == weights_digest(champion)
