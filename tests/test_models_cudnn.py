"""cuDNN for rnnpipe's standard LSTM and GRU: which calls take it (everywhere), and, where a GPU is visible, that
it computes what the loop computes (outputs, states and gradients), falling back to the loop for a mask cuDNN
cannot take."""

from __future__ import annotations

import importlib

import numpy as np
import pytest
import tensorflow as tf

from rnnpipe.models import GRU, LSTM, SimpleRNN, cudnn

GPU = bool(tf.config.list_logical_devices("GPU"))
tf.config.experimental.enable_tensor_float_32_execution(False)  # a 1e-5 comparison on GPUs with TF32


@pytest.mark.parametrize("layer, masked, training, expected", [
    (LSTM(4), False, True, True),
    (GRU(4), True, False, True),
    (LSTM(4, return_sequences=True, zero_output_for_mask=True), True, True, True),
    # The loop's masked outputs repeat the previous output; cuDNN's are zeros.
    (LSTM(4, return_sequences=True), True, False, False),
    # The loop's last output is then zeros for a padded row; cuDNN's the last valid step's.
    (LSTM(4, zero_output_for_mask=True), True, False, False),
    (LSTM(4, return_sequences=True), False, False, True),
    (LSTM(4, peepholes=True), False, False, False),
    (GRU(4, layer_norm=True), False, False, False),
    (GRU(4, reset_after=False), False, False, False),
    (LSTM(4, activation="relu"), False, False, False),
    (LSTM(4, use_bias=False), False, False, False),
    (GRU(4, recurrent_dropout=0.2), False, True, False),
    (GRU(4, recurrent_dropout=0.2), False, False, True),  # no recurrent dropout at inference
    (SimpleRNN(4), False, False, False),
])
def test_only_the_standard_cells_with_keras_masking_take_cudnn(monkeypatch, layer, masked: bool, training: bool,
                                                               expected: bool) -> None:
    monkeypatch.setattr(cudnn, "gpu_visible", lambda: True)
    assert cudnn.applies(layer, tf.ones((3, 2), tf.bool) if masked else None, training) is expected
    monkeypatch.setattr(cudnn, "gpu_visible", lambda: False)
    assert cudnn.applies(layer, None, training) is False


class KerasLoopAsCudnn:
    """Stands in for Keras' backend `lstm` / `gru` on a CPU, with their signature and return convention (outputs
    batch-major, zeros at masked steps, the last output = the final state), computed by Keras' own layer without
    cuDNN: it checks rnnpipe's glue (arguments, layouts, go_backwards, the right-padding check) everywhere."""

    def __init__(self, kind: str) -> None:
        self.kind, self.calls = kind, 0

    def __call__(self, inputs, *args, kernel, recurrent_kernel, bias, activation, recurrent_activation,
                 return_sequences, go_backwards, reset_after=True, **_):
        import keras

        self.calls += 1
        *initial, mask = args
        cls, extra = (keras.layers.LSTM, {}) if self.kind == "lstm" else (keras.layers.GRU, {"reset_after": True})
        layer = cls(recurrent_kernel.shape[0], return_sequences=True, return_state=True, go_backwards=go_backwards,
                    zero_output_for_mask=True, use_cudnn=False, **extra)
        layer.build(inputs.shape)
        layer.set_weights([np.asarray(kernel), np.asarray(recurrent_kernel), np.asarray(bias)])
        outputs, *states = layer(inputs, initial_state=list(initial), mask=mask)
        return states[0], outputs if return_sequences else states[0][:, None], states


@pytest.mark.parametrize("cls, kind", [(LSTM, "lstm"), (GRU, "gru")])
@pytest.mark.parametrize("lengths", [(7, 4, 1), "not right-padded", None])
@pytest.mark.parametrize("return_sequences, go_backwards", [(False, True), (True, False), (True, True)])
def test_the_cudnn_route_hands_keras_what_its_layers_do(monkeypatch, cls, kind: str, lengths,
                                                          return_sequences: bool, go_backwards: bool) -> None:
    keras_rnn = importlib.import_module("keras.src.backend.tensorflow.rnn")

    fake = KerasLoopAsCudnn(kind)
    monkeypatch.setattr(keras_rnn, kind, fake)
    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(size=(3, 7, 5)).astype("float32"))
    mask = None if lengths is None else tf.constant(np.array([[1, 0, 1, 1, 0, 1, 1]] * 3, bool)) \
        if lengths == "not right-padded" else tf.sequence_mask(lengths, 7)
    layer = cls(6, return_sequences=return_sequences, go_backwards=go_backwards, return_state=True,
                zero_output_for_mask=return_sequences)  # as Bidirectional sets it
    layer.build((3, 7, 5))
    layer.set_weights([rng.normal(scale=0.5, size=w.shape).astype("float32") for w in layer.get_weights()])
    loop = _run(layer, x, mask, use_cudnn=False, monkeypatch=monkeypatch)
    routed = _run(layer, x, mask, use_cudnn=True, monkeypatch=monkeypatch)
    assert fake.calls == (0 if lengths == "not right-padded" else 1)  # that mask runs the loop
    # Outputs, states and the gradient to the inputs (the stand-in holds copies of the weights).
    for a, b in zip(loop[0] + loop[1][:1], routed[0] + routed[1][:1], strict=True):
        np.testing.assert_allclose(b, a, atol=1e-5)


def test_where_keras_finds_no_cudnn_kernel_the_loop_runs(monkeypatch) -> None:
    keras_rnn = importlib.import_module("keras.src.backend.tensorflow.rnn")

    def no_kernel(*args, **kwargs):
        raise NotImplementedError

    monkeypatch.setattr(keras_rnn, "lstm", no_kernel)
    monkeypatch.setattr(cudnn, "gpu_visible", lambda: True)
    layer = LSTM(4)
    x = tf.ones((2, 3, 5))
    monkeypatch.setattr(cudnn, "gpu_visible", lambda: False)
    expected = layer(x).numpy()
    monkeypatch.setattr(cudnn, "gpu_visible", lambda: True)
    np.testing.assert_allclose(layer(x).numpy(), expected)


def _run(layer, x, mask, *, use_cudnn: bool, monkeypatch) -> tuple[list[np.ndarray], list[np.ndarray]]:
    monkeypatch.setattr(cudnn, "gpu_visible", lambda: use_cudnn)
    with tf.GradientTape() as tape:
        tape.watch(x)
        out = layer(x, mask=mask, training=True)
        outputs = list(out) if isinstance(out, (list, tuple)) else [out]
        loss = sum(tf.reduce_sum(o * (i + 1.0)) for i, o in enumerate(outputs))
    grads = tape.gradient(loss, [x, *layer.trainable_weights])
    return [o.numpy() for o in outputs], [None if g is None else g.numpy() for g in grads]


@pytest.mark.skipif(not GPU, reason="cuDNN needs a GPU; none is visible")
@pytest.mark.parametrize("cls", [LSTM, GRU])
@pytest.mark.parametrize("lengths", [(7, 7, 7), (7, 4, 1), "not right-padded"])
@pytest.mark.parametrize("return_sequences, go_backwards", [(False, False), (True, False), (True, True)])
def test_cudnn_computes_what_the_loop_computes(monkeypatch, cls, lengths, return_sequences: bool,
                                               go_backwards: bool) -> None:
    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(size=(3, 7, 5)).astype("float32"))
    if lengths == "not right-padded":  # cuDNN cannot: the layer runs the loop for this batch
        mask = tf.constant(np.array([[1, 0, 1, 1, 0, 1, 1]] * 3, bool))
    else:
        mask = tf.sequence_mask(lengths, 7)
    layer = cls(6, return_sequences=return_sequences, go_backwards=go_backwards, return_state=True,
                zero_output_for_mask=return_sequences)
    layer.build((3, 7, 5))
    layer.set_weights([rng.normal(scale=0.5, size=w.shape).astype("float32") for w in layer.get_weights()])
    loop = _run(layer, x, mask, use_cudnn=False, monkeypatch=monkeypatch)
    fast = _run(layer, x, mask, use_cudnn=True, monkeypatch=monkeypatch)
    for a, b in zip(loop[0] + loop[1], fast[0] + fast[1], strict=True):
        np.testing.assert_allclose(b, a, atol=1e-5)


@pytest.mark.skipif(not GPU, reason="cuDNN needs a GPU; none is visible")
def test_a_cudnn_layer_trains_in_a_compiled_model() -> None:
    import keras

    model = keras.Sequential([keras.Input((None, 3)), keras.layers.Masking(),
                              keras.layers.Bidirectional(LSTM(8, return_sequences=True)), GRU(8),
                              keras.layers.Dense(1)])
    model.compile("adam", "mse")
    x = np.random.default_rng(0).normal(size=(64, 9, 3)).astype("float32")
    y = x.sum(axis=(1, 2))[:, None]
    first = model.fit(x, y, epochs=1, verbose=0).history["loss"][0]
    last = model.fit(x, y, epochs=20, verbose=0).history["loss"][-1]
    assert last < first
