"""Dropout of the cells and fast layers: off at inference, one mask per sequence.

The mask-constancy check uses weights whose gate blocks are all diagonal, so
unit u of sample b depends only on input feature u and on its own previous
state. With dropout rate 0.5 every mask entry is 0 or 2, and a unit whose
input mask is `a` and recurrent mask is `c` at *every* step follows exactly
the inference trajectory of a layer whose kernel is scaled by `a` and whose
recurrent kernel is scaled by `c`. With masks resampled per step, a unit's
trajectory mixes those four and matches none of them (checked by a negative
control below).
"""

from __future__ import annotations

import itertools

import keras
import numpy as np
import pytest
import tensorflow as tf

from rnnpipe.models import GRU, LSTM, GRUCell, LSTMCell, SimpleRNN, SimpleRNNCell

UNITS = 6  # == number of input features, so kernels can be diagonal
BATCH, STEPS = 3, 6
RATE = 0.5  # kept entries are scaled by 1 / (1 - RATE) = 2

KINDS = {
    "lstm": (LSTM, LSTMCell, 4, {}),
    "gru_reset_after": (GRU, GRUCell, 3, {"reset_after": True}),
    "gru_reset_before": (GRU, GRUCell, 3, {"reset_after": False}),
    "simple_rnn": (SimpleRNN, SimpleRNNCell, 1, {}),
}


def _diagonal_blocks(rng: np.random.Generator, gates: int) -> np.ndarray:
    return np.concatenate(
        [np.diag(rng.uniform(0.5, 1.5, UNITS)) for _ in range(gates)], axis=1
    ).astype("float32")


def _unit_independent_weights(layer: keras.layers.Layer, gates: int) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    bias_shape = layer.get_weights()[2].shape
    return [
        _diagonal_blocks(rng, gates),
        _diagonal_blocks(rng, gates),
        rng.normal(scale=0.3, size=bias_shape).astype("float32"),
    ]


def _make(kind: str, use_cell: bool, **dropout) -> tuple[keras.layers.Layer, list[np.ndarray]]:
    fast_cls, cell_cls, gates, extra = KINDS[kind]
    if use_cell:
        layer = keras.layers.RNN(cell_cls(UNITS, **extra, **dropout), return_sequences=True)
    else:
        layer = fast_cls(UNITS, **extra, **dropout, return_sequences=True)
    layer.build((BATCH, STEPS, UNITS))
    weights = _unit_independent_weights(layer, gates)
    layer.set_weights(weights)
    return layer, weights


def _inputs() -> np.ndarray:
    return np.random.default_rng(1).uniform(0.2, 1.0, (BATCH, STEPS, UNITS)).astype("float32")


def _candidate_trajectories(layer, weights, x) -> dict[tuple[float, float], np.ndarray]:
    """Inference outputs for every (input mask value, recurrent mask value)."""
    kernel, recurrent_kernel, bias = weights
    candidates = {}
    for a, c in itertools.product((0.0, 2.0), repeat=2):
        layer.set_weights([kernel * a, recurrent_kernel * c, bias])
        candidates[(a, c)] = np.asarray(layer(x, training=False))
    layer.set_weights(weights)
    return candidates


def _explained_units(outputs: np.ndarray, candidates) -> tuple[np.ndarray, set]:
    """Per (sample, unit): does one fixed-mask candidate explain the trajectory?"""
    explained = np.zeros((BATCH, UNITS), dtype=bool)
    used = set()
    for key, trajectory in candidates.items():
        match = np.all(np.abs(outputs - trajectory) < 1e-5, axis=1)
        explained |= match
        if match.any():
            used.add(key)
    return explained, used


@pytest.mark.parametrize("use_cell", [False, True], ids=["fast_layer", "rnn_cell"])
@pytest.mark.parametrize("kind", list(KINDS))
def test_dropout_masks_are_constant_across_timesteps(kind, use_cell):
    layer, weights = _make(kind, use_cell, dropout=RATE, recurrent_dropout=RATE, seed=3)
    x = _inputs()
    outputs = np.asarray(layer(x, training=True))
    explained, used = _explained_units(outputs, _candidate_trajectories(layer, weights, x))
    assert explained.all(), f"units not explained by one fixed mask:\n{explained}"
    # Sanity: the masks really varied across units (not all kept / all dropped).
    assert len(used) >= 3, used


class _PerStepResamplingGRUCell(GRUCell):
    """Deliberately wrong cell: draws fresh dropout masks at every step."""

    def call(self, inputs, states, training=False):
        self.reset_dropout_mask()
        self.reset_recurrent_dropout_mask()
        return super().call(inputs, states, training=training)


def test_mask_check_detects_per_step_resampling():
    layer = keras.layers.RNN(
        _PerStepResamplingGRUCell(UNITS, dropout=RATE, recurrent_dropout=RATE, seed=3),
        return_sequences=True,
    )
    layer.build((BATCH, STEPS, UNITS))
    weights = _unit_independent_weights(layer, 3)
    layer.set_weights(weights)
    x = _inputs()
    outputs = np.asarray(layer(x, training=True))  # eager, so resampling works
    explained, _ = _explained_units(outputs, _candidate_trajectories(layer, weights, x))
    assert not explained.all()


@pytest.mark.parametrize("use_cell", [False, True], ids=["fast_layer", "rnn_cell"])
@pytest.mark.parametrize("kind", list(KINDS))
def test_dropout_is_inactive_at_inference(kind, use_cell):
    layer, weights = _make(kind, use_cell, dropout=0.4, recurrent_dropout=0.4, seed=1)
    plain, _ = _make(kind, use_cell)
    plain.set_weights(weights)
    x = _inputs()
    first = np.asarray(layer(x))
    np.testing.assert_array_equal(first, np.asarray(layer(x, training=False)))
    np.testing.assert_allclose(first, np.asarray(plain(x)), atol=1e-6)
    assert not np.allclose(first, np.asarray(layer(x, training=True)), atol=1e-3)


def test_fast_layer_draws_new_masks_for_each_batch():
    layer, _ = _make("gru_reset_after", use_cell=False, dropout=RATE, recurrent_dropout=RATE)
    x = _inputs()
    assert not np.allclose(layer(x, training=True), layer(x, training=True))


@pytest.mark.parametrize("use_cell", [False, True], ids=["fast_layer", "rnn_cell"])
def test_dropout_traces_in_tf_function(use_cell):
    layer, _ = _make("lstm", use_cell, dropout=RATE, recurrent_dropout=RATE, seed=2)
    train_step = tf.function(lambda batch: layer(batch, training=True))
    x = tf.constant(_inputs())
    first, second = train_step(x), train_step(x)
    assert not np.allclose(first, second)  # fresh masks per call, not baked in
    assert not np.allclose(first, layer(x, training=False))
