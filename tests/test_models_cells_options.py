"""Optional `layer_norm` / `peepholes` extras of rnnpipe's recurrent cells."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from rnnpipe.models import GRU, LSTM, GRUCell, LSTMCell, SimpleRNN, SimpleRNNCell
from rnnpipe.models.cells import LAYER_NORM_EPSILON

ATOL = 1e-5
tf.config.experimental.enable_tensor_float_32_execution(False)
BATCH, STEPS, FEATURES, UNITS = 3, 4, 3, 4
LENGTHS = (4, 2, 0)

# name -> (fast layer, cell, constructor kwargs)
CASES = {
    "simple_rnn_ln": (SimpleRNN, SimpleRNNCell, {"layer_norm": True}),
    "lstm_ln": (LSTM, LSTMCell, {"layer_norm": True}),
    "lstm_peep": (LSTM, LSTMCell, {"peepholes": True}),
    "lstm_ln_peep": (LSTM, LSTMCell, {"layer_norm": True, "peepholes": True}),
    "gru_ln_after": (GRU, GRUCell, {"layer_norm": True, "reset_after": True}),
    "gru_ln_before": (GRU, GRUCell, {"layer_norm": True, "reset_after": False}),
}


def _inputs(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(BATCH, STEPS, FEATURES)).astype("float32")
    mask = np.arange(STEPS)[None, :] < np.array(LENGTHS)[:, None]
    return x, mask


def _random_weights(layer: keras.layers.Layer, seed: int = 1) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.normal(scale=0.5, size=w.shape).astype("float32") for w in layer.get_weights()]


def _forward_and_gradients(layer, x, mask):
    x = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        outputs = layer(x, mask=None if mask is None else tf.constant(mask))
        outputs = list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]
        rng = np.random.default_rng(7)
        loss = tf.add_n(
            [tf.reduce_sum(o * rng.normal(size=o.shape).astype("float32")) for o in outputs]
        )
    grads = tape.gradient(loss, [x, *layer.trainable_weights])
    return [o.numpy() for o in outputs], [g.numpy() for g in grads]


@pytest.mark.parametrize("go_backwards", [False, True])
@pytest.mark.parametrize("case", list(CASES))
def test_rnn_of_cell_and_fast_layer_agree(case, go_backwards):
    fast_cls, cell_cls, options = CASES[case]
    flags = {"return_sequences": True, "return_state": True, "go_backwards": go_backwards}
    fast = fast_cls(UNITS, **options, **flags)
    via_cell = keras.layers.RNN(cell_cls(UNITS, **options), **flags)
    for layer in (fast, via_cell):
        layer.build((BATCH, STEPS, FEATURES))
    assert [w.shape for w in fast.weights] == [w.shape for w in via_cell.weights]
    weights = _random_weights(fast)
    fast.set_weights(weights)
    via_cell.set_weights(weights)
    x, mask = _inputs()
    for m in (None, mask):
        ref_out, ref_grad = _forward_and_gradients(via_cell, x, m)
        out, grad = _forward_and_gradients(fast, x, m)
        assert len(out) == len(ref_out) and len(grad) == len(ref_grad)
        for i, (a, b) in enumerate(zip(ref_out, out, strict=True)):
            np.testing.assert_allclose(b, a, atol=ATOL, err_msg=f"output {i}, mask={m is not None}")
        for i, (a, b) in enumerate(zip(ref_grad, grad, strict=True)):
            assert np.all(np.isfinite(b))
            np.testing.assert_allclose(b, a, atol=ATOL, err_msg=f"gradient {i}, mask={m is not None}")


# -- numpy references of one step --------------------------------------------


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _np_normalize(x, gamma, beta):
    mean = x.mean(axis=-1, keepdims=True)
    var = x.var(axis=-1, keepdims=True)
    normalized = (x - mean) / np.sqrt(var + LAYER_NORM_EPSILON)
    # Before gain/bias: zero mean and unit variance per row (exactly
    # var / (var + eps), which is ~1 unless the row is nearly constant).
    np.testing.assert_allclose(normalized.mean(axis=-1), 0.0, atol=1e-7)
    np.testing.assert_allclose(normalized.var(axis=-1), (var / (var + LAYER_NORM_EPSILON))[:, 0], rtol=1e-7)
    return normalized * gamma + beta


def _np_lstm_step(x, h, c, w, options):
    weights = dict(w)
    z = x @ weights["kernel"] + h @ weights["recurrent_kernel"] + weights["bias"]
    gates = np.split(z, 4, axis=-1)
    if options.get("layer_norm"):
        gammas = np.split(weights["layer_norm_gamma"], 4)
        betas = np.split(weights["layer_norm_beta"], 4)
        gates = [_np_normalize(g, gm, bt) for g, gm, bt in zip(gates, gammas, betas, strict=True)]
    z_i, z_f, z_c, z_o = gates
    if options.get("peepholes"):
        z_i = z_i + weights["input_peephole"] * c
        z_f = z_f + weights["forget_peephole"] * c
    c_new = _sigmoid(z_f) * c + _sigmoid(z_i) * np.tanh(z_c)
    if options.get("peepholes"):
        z_o = z_o + weights["output_peephole"] * c_new
    c_out = c_new
    if options.get("layer_norm"):
        c_out = _np_normalize(c_new, weights["cell_norm_gamma"], weights["cell_norm_beta"])
    h_new = _sigmoid(z_o) * np.tanh(c_out)
    return h_new, c_new


def _np_simple_step(x, h, w, options):
    weights = dict(w)
    z = x @ weights["kernel"] + h @ weights["recurrent_kernel"] + weights["bias"]
    return np.tanh(_np_normalize(z, weights["layer_norm_gamma"], weights["layer_norm_beta"]))


def _np_gru_step(x, h, w, reset_after):
    weights = dict(w)
    kernel, rec, bias = weights["kernel"], weights["recurrent_kernel"], weights["bias"]
    gammas = np.split(weights["layer_norm_gamma"], 3)
    betas = np.split(weights["layer_norm_beta"], 3)
    input_bias = bias[0] if reset_after else bias
    x_z, x_r, x_h = np.split(x @ kernel + input_bias, 3, axis=-1)
    if reset_after:
        r_z, r_r, r_h = np.split(h @ rec + bias[1], 3, axis=-1)
    else:
        r_z, r_r = np.split(h @ rec[:, : 2 * UNITS], 2, axis=-1)
    z = _sigmoid(_np_normalize(x_z + r_z, gammas[0], betas[0]))
    r = _sigmoid(_np_normalize(x_r + r_r, gammas[1], betas[1]))
    pre = x_h + r * r_h if reset_after else x_h + (r * h) @ rec[:, 2 * UNITS :]
    candidate = np.tanh(_np_normalize(pre, gammas[2], betas[2]))
    return z * h + (1 - z) * candidate


def _named_weights(cell):
    return [(w.name.split("/")[-1], np.asarray(w.numpy(), dtype="float64")) for w in cell.weights]


@pytest.mark.parametrize("case", list(CASES))
def test_cell_step_matches_numpy_reference(case):
    _, cell_cls, options = CASES[case]
    cell = cell_cls(UNITS, **options)
    cell.build((BATCH, FEATURES))
    cell.set_weights(_random_weights(cell, seed=3))
    rng = np.random.default_rng(4)
    x = rng.normal(size=(BATCH, FEATURES)).astype("float32")
    states = [rng.normal(size=(BATCH, UNITS)).astype("float32") for _ in range(2)]
    w = _named_weights(cell)
    x64, s64 = x.astype("float64"), [s.astype("float64") for s in states]
    if cell_cls is LSTMCell:
        h, (h_state, c_state) = cell(x, states)
        ref_h, ref_c = _np_lstm_step(x64, s64[0], s64[1], w, options)
        np.testing.assert_allclose(c_state, ref_c, atol=ATOL)
        np.testing.assert_allclose(h_state, ref_h, atol=ATOL)
    elif cell_cls is GRUCell:
        h, _ = cell(x, states[:1])
        ref_h = _np_gru_step(x64, s64[0], w, options["reset_after"])
    else:
        h, _ = cell(x, states[:1])
        ref_h = _np_simple_step(x64, s64[0], w, options)
    np.testing.assert_allclose(h, ref_h, atol=ATOL)


def test_layer_norm_output_is_invariant_to_affine_shift_of_the_preactivation():
    # With unit gain / zero bias the normalized pre-activation has zero mean
    # and unit variance: adding a constant to every entry of the
    # pre-activation (here through the bias) must leave the output unchanged.
    cell = SimpleRNNCell(UNITS, layer_norm=True)
    cell.build((BATCH, FEATURES))
    x = np.random.default_rng(0).normal(size=(BATCH, FEATURES)).astype("float32")
    h = np.zeros((BATCH, UNITS), "float32")
    base = cell(x, [h])[0].numpy()
    kernel, rec, bias, gamma, beta = cell.get_weights()
    np.testing.assert_array_equal(gamma, 1.0)
    np.testing.assert_array_equal(beta, 0.0)
    cell.set_weights([kernel, rec, bias + 5.0, gamma, beta])
    np.testing.assert_allclose(cell(x, [h])[0].numpy(), base, atol=ATOL)
    expected = np.tanh(_np_normalize(x.astype("float64") @ kernel + bias, gamma, beta))
    np.testing.assert_allclose(base, expected, atol=ATOL)


# -- weights, config, serialization, validation ------------------------------

BUILTINS = [
    (keras.layers.LSTM, LSTM, LSTMCell, {}),
    (keras.layers.GRU, GRU, GRUCell, {"reset_after": True}),
    (keras.layers.GRU, GRU, GRUCell, {"reset_after": False}),
    (keras.layers.SimpleRNN, SimpleRNN, SimpleRNNCell, {}),
]


@pytest.mark.parametrize("keras_cls, fast_cls, cell_cls, extra", BUILTINS)
def test_options_off_keep_the_keras_weight_list(keras_cls, fast_cls, cell_cls, extra):
    explicit_off = {"layer_norm": False, **({"peepholes": False} if cell_cls is LSTMCell else {})}
    layers = [
        keras_cls(UNITS, **extra),
        fast_cls(UNITS, **extra),
        fast_cls(UNITS, **extra, **explicit_off),
        keras.layers.RNN(cell_cls(UNITS, **extra, **explicit_off)),
    ]
    for layer in layers:
        layer.build((BATCH, STEPS, FEATURES))
    reference = [(w.name, tuple(w.shape)) for w in layers[0].weights]
    for layer in layers[1:]:
        assert [(w.name, tuple(w.shape)) for w in layer.weights] == reference


def test_option_weights_are_created_only_when_enabled():
    expected = {
        ("lstm", False, False): [],
        ("lstm", True, False): ["layer_norm_gamma", "layer_norm_beta", "cell_norm_gamma", "cell_norm_beta"],
        ("lstm", False, True): ["input_peephole", "forget_peephole", "output_peephole"],
    }
    for (_, layer_norm, peepholes), extra_names in expected.items():
        layer = LSTM(UNITS, layer_norm=layer_norm, peepholes=peepholes)
        layer.build((BATCH, STEPS, FEATURES))
        names = [w.name for w in layer.weights]
        assert names == ["kernel", "recurrent_kernel", "bias", *extra_names]
    gru = GRU(UNITS, layer_norm=True)
    gru.build((BATCH, STEPS, FEATURES))
    assert [tuple(w.shape) for w in gru.weights][-2:] == [(3 * UNITS,), (3 * UNITS,)]


@pytest.mark.parametrize("cls", [SimpleRNN, LSTM, GRU, SimpleRNNCell, LSTMCell, GRUCell])
def test_options_are_in_the_config(cls):
    options = {"layer_norm": True, **({"peepholes": True} if cls in (LSTM, LSTMCell) else {})}
    config = cls(UNITS, **options).get_config()
    for name, value in options.items():
        assert config[name] is value
    clone = cls.from_config(config)
    assert clone.get_config() == config
    default = cls(UNITS).get_config()
    assert default["layer_norm"] is False
    if cls in (LSTM, LSTMCell):
        assert default["peepholes"] is False


def test_keras_file_round_trip_with_options_on(tmp_path):
    inputs = keras.Input((STEPS, FEATURES))
    x = keras.layers.Masking(0.0)(inputs)
    x = LSTM(UNITS, layer_norm=True, peepholes=True, return_sequences=True)(x)
    x = GRU(UNITS, layer_norm=True, return_sequences=True)(x)
    x = SimpleRNN(UNITS, layer_norm=True, return_sequences=True)(x)
    x = keras.layers.RNN(LSTMCell(UNITS, layer_norm=True, peepholes=True), return_sequences=True)(x)
    x = keras.layers.RNN(GRUCell(UNITS, layer_norm=True, reset_after=False))(x)
    model = keras.Model(inputs, x)
    model.set_weights(_random_weights(model, seed=9))
    x_in, mask = _inputs()
    x_in = x_in * mask[..., None]
    path = tmp_path / "options.keras"
    model.save(path)
    restored = keras.saving.load_model(path)
    np.testing.assert_allclose(restored(x_in), model(x_in), atol=1e-6)
    assert [w.name for w in restored.weights] == [w.name for w in model.weights]
    lstm = restored.layers[2]
    assert isinstance(lstm, LSTM) and lstm.cell.layer_norm and lstm.cell.peepholes


BAD = {
    "cell_layer_norm": (lambda: SimpleRNNCell(2, layer_norm="yes"), "layer_norm", "'yes'"),
    "gru_cell_layer_norm": (lambda: GRUCell(2, layer_norm=1), "layer_norm", "1"),
    "lstm_cell_peepholes": (lambda: LSTMCell(2, peepholes="no"), "peepholes", "'no'"),
    "fast_lstm_layer_norm": (lambda: LSTM(2, layer_norm="yes"), "layer_norm", "'yes'"),
    "fast_lstm_peepholes": (lambda: LSTM(2, peepholes=None), "peepholes", "None"),
    "fast_gru_layer_norm": (lambda: GRU(2, layer_norm=0.0), "layer_norm", "0.0"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_option_values_raise_value_error_naming_expected_and_received(case):
    factory, name, received = BAD[case]
    with pytest.raises(ValueError) as excinfo:
        factory()
    message = str(excinfo.value)
    assert f"Argument `{name}` must be a bool (True or False)" in message
    assert f"Received: {name}={received}" in message
