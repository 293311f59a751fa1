"""Numerical parity of rnnpipe's cells and fast layers with Keras' built-ins.

Weights are copied from the Keras layer; outputs, final states and gradients
(w.r.t. inputs and every weight) must agree to 1e-5 for keras.layers.RNN
around our cell and for our fast layer.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from rnnpipe.models import GRU, LSTM, GRUCell, LSTMCell, SimpleRNN, SimpleRNNCell

ATOL = 1e-5
# TensorFloat-32 matmuls (on by default on recent NVIDIA GPUs) would make a
# 1e-5 comparison meaningless; on CPU this is a no-op.
tf.config.experimental.enable_tensor_float_32_execution(False)
BATCH, STEPS, FEATURES, UNITS = 3, 5, 3, 4
# Right-padded: one full row, one partial, one fully padded row.
LENGTHS = (5, 2, 0)

# name -> (keras layer, our fast layer, our cell, extra constructor kwargs)
KINDS = {
    "lstm": (keras.layers.LSTM, LSTM, LSTMCell, {}),
    "gru_reset_after": (keras.layers.GRU, GRU, GRUCell, {"reset_after": True}),
    "gru_reset_before": (keras.layers.GRU, GRU, GRUCell, {"reset_after": False}),
    "simple_rnn": (keras.layers.SimpleRNN, SimpleRNN, SimpleRNNCell, {}),
}


def _inputs(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(BATCH, STEPS, FEATURES)).astype("float32")
    mask = np.arange(STEPS)[None, :] < np.array(LENGTHS)[:, None]
    return x, mask


def _random_weights(layer: keras.layers.Layer, seed: int) -> list[np.ndarray]:
    # Non-default weights (incl. non-zero biases) so every term is exercised.
    rng = np.random.default_rng(seed)
    return [rng.normal(scale=0.5, size=w.shape).astype("float32") for w in layer.get_weights()]


def _three_layers(kind: str, **flags) -> list[keras.layers.Layer]:
    keras_cls, fast_cls, cell_cls, extra = KINDS[kind]
    reference = keras_cls(UNITS, **extra, **flags)
    fast = fast_cls(UNITS, **extra, **flags)
    via_cell = keras.layers.RNN(cell_cls(UNITS, **extra), **flags)
    shape = (BATCH, STEPS, FEATURES)
    for layer in (reference, fast, via_cell):
        layer.build(shape)
    weights = _random_weights(reference, seed=1)
    for layer in (reference, fast, via_cell):
        layer.set_weights(weights)
    return [reference, fast, via_cell]


def _forward_and_gradients(layer, x, mask, initial_state=None):
    """Returns (outputs, gradients w.r.t. [x, *weights, *initial_state])."""
    x = tf.constant(x)
    extra = [tf.constant(s) for s in initial_state] if initial_state is not None else []
    with tf.GradientTape() as tape:
        tape.watch([x, *extra])
        kwargs = {"mask": None if mask is None else tf.constant(mask)}
        if initial_state is not None:
            kwargs["initial_state"] = extra
        outputs = layer(x, **kwargs)
        outputs = list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]
        # Fixed random projections make the loss depend on every output value.
        rng = np.random.default_rng(7)
        loss = tf.add_n(
            [tf.reduce_sum(o * rng.normal(size=o.shape).astype("float32")) for o in outputs]
        )
    grads = tape.gradient(loss, [x, *layer.trainable_weights, *extra])
    return [o.numpy() for o in outputs], [g.numpy() for g in grads]


def _assert_same(reference, candidate, label):
    ref_out, ref_grad = reference
    out, grad = candidate
    assert len(out) == len(ref_out), label
    for i, (a, b) in enumerate(zip(ref_out, out, strict=True)):
        np.testing.assert_allclose(b, a, atol=ATOL, err_msg=f"{label}: output {i}")
    assert len(grad) == len(ref_grad), label
    for i, (a, b) in enumerate(zip(ref_grad, grad, strict=True)):
        np.testing.assert_allclose(b, a, atol=ATOL, err_msg=f"{label}: gradient {i}")


@pytest.mark.parametrize("return_sequences", [False, True])
@pytest.mark.parametrize("go_backwards", [False, True])
@pytest.mark.parametrize("kind", list(KINDS))
def test_outputs_states_and_gradients_match_keras(kind, go_backwards, return_sequences):
    layers = _three_layers(
        kind, go_backwards=go_backwards, return_sequences=return_sequences, return_state=True
    )
    x, mask = _inputs()
    for use_mask in (False, True):
        m = mask if use_mask else None
        reference = _forward_and_gradients(layers[0], x, m)
        for name, layer in zip(("fast layer", "RNN(cell)"), layers[1:], strict=True):
            candidate = _forward_and_gradients(layer, x, m)
            _assert_same(reference, candidate, f"{name}, mask={use_mask}")


@pytest.mark.parametrize("kind", list(KINDS))
def test_initial_state_and_arbitrary_mask_match_keras(kind):
    # A non-zero initial state plus a mask with holes and leading padding:
    # masked outputs before the first valid step must be zeros, not the
    # initial state, exactly as in keras.layers.RNN.
    layers = _three_layers(kind, go_backwards=True, return_sequences=True, return_state=True)
    x, _ = _inputs(seed=3)
    mask = np.array(
        [[0, 1, 1, 0, 1], [1, 0, 0, 1, 0], [0, 0, 0, 0, 0]], dtype=bool
    )
    rng = np.random.default_rng(5)
    initial = [
        rng.normal(size=(BATCH, UNITS)).astype("float32")
        for _ in range(2 if kind == "lstm" else 1)
    ]
    reference = _forward_and_gradients(layers[0], x, mask, initial)
    for name, layer in zip(("fast layer", "RNN(cell)"), layers[1:], strict=True):
        _assert_same(reference, _forward_and_gradients(layer, x, mask, initial), name)


@pytest.mark.parametrize("kind", list(KINDS))
def test_single_output_without_return_state(kind):
    layers = _three_layers(kind)
    x, mask = _inputs()
    outputs = [layer(x, mask=mask) for layer in layers]
    for out in outputs[1:]:
        assert not isinstance(out, (list, tuple))
        assert tuple(out.shape) == (BATCH, UNITS)
        np.testing.assert_allclose(out, outputs[0], atol=ATOL)


@pytest.mark.parametrize("return_sequences", [False, True])
def test_bidirectional_fast_gru_matches_bidirectional_keras_gru(return_sequences):
    flags = {"return_sequences": return_sequences, "return_state": True}
    reference = keras.layers.Bidirectional(keras.layers.GRU(UNITS, **flags))
    fast = keras.layers.Bidirectional(GRU(UNITS, **flags))
    via_cell = keras.layers.Bidirectional(keras.layers.RNN(GRUCell(UNITS), **flags))
    shape = (BATCH, STEPS, FEATURES)
    for layer in (reference, fast, via_cell):
        layer.build(shape)
    weights = _random_weights(reference, seed=2)
    for layer in (fast, via_cell):
        layer.set_weights(weights)
    reference.set_weights(weights)
    assert fast.backward_layer.go_backwards and not fast.forward_layer.go_backwards
    x, mask = _inputs()
    for m in (None, mask):
        ref = _forward_and_gradients(reference, x, m)
        _assert_same(ref, _forward_and_gradients(fast, x, m), "Bidirectional(GRU)")
        _assert_same(ref, _forward_and_gradients(via_cell, x, m), "Bidirectional(RNN(GRUCell))")


def test_stacked_layers_propagate_the_mask_like_keras():
    def stack(gru_cls, lstm_cls):
        inputs = keras.Input((STEPS, FEATURES))
        x = keras.layers.Masking(0.0)(inputs)
        x = gru_cls(UNITS, return_sequences=True)(x)
        x = lstm_cls(UNITS)(x)
        return keras.Model(inputs, x)

    reference = stack(keras.layers.GRU, keras.layers.LSTM)
    fast = stack(GRU, LSTM)
    fast.set_weights(_random_weights(reference, seed=4))
    reference.set_weights(fast.get_weights())
    x, mask = _inputs()
    x = x * mask[..., None]
    np.testing.assert_allclose(fast(x), reference(x), atol=ATOL)


def test_fast_layers_compile_with_xla_forward_and_backward():
    gru = GRU(UNITS, return_sequences=True, go_backwards=True)
    lstm = LSTM(UNITS)
    x, mask = _inputs()
    x, mask = tf.constant(x), tf.constant(mask)

    def loss_and_grads(batch, batch_mask):
        with tf.GradientTape() as tape:
            hidden = gru(batch, mask=batch_mask)
            loss = tf.reduce_sum(lstm(hidden, mask=batch_mask) ** 2)
        return loss, tape.gradient(loss, [*gru.trainable_weights, *lstm.trainable_weights])

    eager = loss_and_grads(x, mask)
    xla = tf.function(loss_and_grads, jit_compile=True)(x, mask)
    np.testing.assert_allclose(xla[0], eager[0], rtol=1e-5)
    for a, b in zip(eager[1], xla[1], strict=True):
        np.testing.assert_allclose(b, a, atol=ATOL)
