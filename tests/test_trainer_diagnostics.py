"""The Trainer's gradient-flow probe (trainer.gradient_diagnostics): flags as the Trainer's metrics, and the run
summary's warning for exploding gradients with clipping off. tests/test_sentiment_e2e.py checks what a real run
logs to MLflow (both directions of the bidirectional GRU, a heatmap per epoch)."""

from __future__ import annotations

import types

import keras
import numpy as np
import pytest
import tensorflow as tf

from rnnpipe.cli import _summary
from rnnpipe.components.trainer import _gradient_flags
from rnnpipe.components.training import gradient_diagnostics
from rnnpipe.models import GRU, SimpleRNN

T = 100
CLIPPING_OFF = {"global_clipnorm": 0.0, "clipnorm": 0.0, "clipvalue": 0.0}


class Tracker:
    def __init__(self) -> None:
        self.metrics: list[tuple[str, float, int]] = []
        self.tags: dict[str, str] = {}
        self.files: list[str] = []

    def log_metric(self, key: str, value: float, step: int | None = None) -> None:
        self.metrics.append((key, value, step))

    def set_tag(self, key: str, value: str) -> None:
        self.tags[key] = value

    def log_artifact(self, path: str, artifact_path: str | None = None) -> None:
        self.files.append(path)


def train(layer: keras.layers.Layer, x: np.ndarray, y: np.ndarray, tmp_path, **params) -> tuple[dict, list[str]]:
    inputs = keras.Input((None, x.shape[-1]))
    model = keras.Model(inputs, keras.layers.Dense(2)(layer(inputs)))
    model.compile(keras.optimizers.SGD(0.01), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
    tracker = Tracker()
    diagnostics = gradient_diagnostics(data, None, tracker, tmp_path / "plots")
    model.fit(data, epochs=1, verbose=0, callbacks=[diagnostics])
    messages: list[str] = []
    flags = _gradient_flags(diagnostics.history, {**CLIPPING_OFF, **params}, types.SimpleNamespace(log=messages.append))
    return {**flags, "tags": tracker.tags, "plots": sorted(p.name for p in (tmp_path / "plots").iterdir())}, messages


def test_a_simple_rnn_at_t100_is_flagged_vanishing_and_a_gru_that_carries_its_state_is_not(tmp_path) -> None:
    rng = np.random.default_rng(0)
    x, y = (rng.normal(size=(32, T, 4)) * 2).astype("float32"), rng.integers(0, 2, size=32)
    keras.utils.set_random_seed(0)
    simple, _ = train(SimpleRNN(16, name="rnn"), x, y, tmp_path / "simple")
    keras.utils.set_random_seed(0)
    gru = GRU(16, name="rnn")
    gru.build((None, T, 4))
    # Keras' zero bias puts the update gate near 0.5, which halves the gradient per step (vanishing too); at
    # sigmoid(4) ~ 0.98 the cell carries its state over the 100 steps.
    bias = gru.cell.bias.numpy()
    bias[..., :16] = 4.0
    gru.cell.bias.assign(bias)
    carried, _ = train(gru, x, y, tmp_path / "gru")
    assert simple["gradients_vanishing"] == 1 and simple["gradients_first_last_ratio"] < 1e-5
    assert carried["gradients_vanishing"] == 0 and carried["gradients_first_last_ratio"] > 1e-2
    for run in (simple, carried):
        assert run["tags"]["gradients.layers"] == "rnn" and run["plots"] == ["epoch_001.png"]
        assert run["gradients_exploding"] == 0


@pytest.mark.parametrize("clipping", [{}, {"global_clipnorm": 1.0}])
def test_exploding_gradients_with_clipping_off_warn_in_the_run_summary(tmp_path, capsys, clipping) -> None:
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(16, 30, 3)).astype("float32"), rng.integers(0, 2, size=16)
    layer = SimpleRNN(8, activation="linear", recurrent_initializer=keras.initializers.Orthogonal(gain=2.0))
    flags, messages = train(layer, x, y, tmp_path, **clipping)
    assert flags["gradients_exploding"] == 1
    assert flags["gradients_exploding_unclipped"] == int(not clipping)
    result = types.SimpleNamespace(executed=["Trainer"], cache_hits=[], metrics={"Trainer": flags}, mlflow_run_id="x")
    _summary(result)
    printed = capsys.readouterr().out
    if clipping:
        assert not messages and "warning" not in printed
    else:
        assert "with clipping off: set trainer.clipnorm or trainer.global_clipnorm" in messages[0]
        assert "warning: Trainer saw exploding gradients with clipping off: set trainer.clipnorm" in printed


def test_an_empty_probe_split_leaves_the_diagnostics_off() -> None:
    empty = tf.data.Dataset.from_tensor_slices((np.zeros((0, 3, 2), "float32"), np.zeros(0, "int64"))).batch(4)
    assert gradient_diagnostics(empty, None, Tracker(), None) is None
