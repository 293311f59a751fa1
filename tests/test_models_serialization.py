"""Configs and `.keras` round trips of every rnnpipe layer."""

from __future__ import annotations

import atexit
import inspect
import json
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

from rnnpipe import models
from rnnpipe.models import (
    GRU,
    LSTM,
    GRUCell,
    LSTMCell,
    MaskedMaxPooling1D,
    MaskedMeanPooling1D,
    SimpleRNN,
    SimpleRNNCell,
    build_sequence_classifier,
)

# The SavedModel is loaded in a fresh interpreter that imports TensorFlow only
# (no rnnpipe, no layer classes), as a serving process would. Importing
# TensorFlow there takes ~20 s on a 2-core machine, so the interpreter is
# started when this module is collected and does its import while the rest of
# the suite runs; it then waits for one request on stdin. If the export test
# is not run, stdin reaches EOF when pytest exits and the process ends itself.
_LOADER_SOURCE = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import tensorflow as tf

    request = sys.stdin.readline()
    if not request:
        sys.exit(0)
    export_dir, tokens = json.loads(request)
    tokens = tf.constant(tokens, dtype=tf.int64)
    loaded = tf.saved_model.load(export_dir)  # keep a reference while serving
    served = loaded.serve(tokens)
    (signature_output,) = loaded.signatures["serving_default"](tokens=tokens).values()
    print(json.dumps({
        "rnnpipe_imported": any(m.startswith("rnnpipe") for m in sys.modules),
        "serve": np.asarray(served).tolist(),
        "serving_default": np.asarray(signature_output).tolist(),
    }))
    """
)
_LOADER = subprocess.Popen(
    [sys.executable, "-c", _LOADER_SOURCE],
    stdin=subprocess.PIPE,
    stdout=subprocess.PIPE,
    stderr=subprocess.PIPE,
    text=True,
)
atexit.register(lambda: _LOADER.poll() is None and _LOADER.kill())

LAYER_CLASSES = [GRU, LSTM, SimpleRNN, GRUCell, LSTMCell, SimpleRNNCell]

# A non-default value for every constructor argument of the recurrent layers,
# so a config that forgot one would come back with the default.
NON_DEFAULTS = {
    "layer_norm": True,
    "peepholes": True,
    "activation": "relu",
    "recurrent_activation": "hard_sigmoid",
    "use_bias": False,
    "kernel_initializer": "he_normal",
    "recurrent_initializer": "glorot_normal",
    "bias_initializer": "ones",
    "unit_forget_bias": False,
    "kernel_regularizer": "l2",
    "recurrent_regularizer": "l1",
    "bias_regularizer": "orthogonal_regularizer",
    "kernel_constraint": "non_neg",
    "recurrent_constraint": "unit_norm",
    "bias_constraint": "max_norm",
    "dropout": 0.25,
    "recurrent_dropout": 0.125,
    "reset_after": False,
    "seed": 11,
    "return_sequences": True,
    "return_state": True,
    "go_backwards": True,
    "zero_output_for_mask": True,
}


def _constructor_args(cls) -> list[str]:
    params = inspect.signature(cls.__init__).parameters.values()
    return [p.name for p in params if p.name != "self" and p.kind is not p.VAR_KEYWORD]


@pytest.mark.parametrize("cls", LAYER_CLASSES, ids=lambda c: c.__name__)
def test_get_config_covers_every_constructor_argument(cls):
    args = _constructor_args(cls)
    kwargs = {name: NON_DEFAULTS[name] for name in args if name != "units"}
    layer = cls(7, **kwargs)
    config = layer.get_config()
    assert set(args) <= set(config), set(args) - set(config)
    clone = cls.from_config(config)
    assert clone.get_config() == config
    assert config["units"] == 7
    for name, value in kwargs.items():
        if isinstance(value, (bool, int, float)):
            assert config[name] == value, name


def test_every_public_layer_is_registered_under_rnnpipe():
    for name in models.__all__:
        obj = getattr(models, name)
        if inspect.isclass(obj):
            assert keras.saving.get_registered_name(obj) == f"rnnpipe>{name}"
            assert keras.saving.get_registered_object(f"rnnpipe>{name}") is obj


def _model_with_every_layer() -> keras.Model:
    inputs = keras.Input((None, 3))
    x = keras.layers.Masking(0.0)(inputs)
    x = keras.layers.Bidirectional(GRU(4, return_sequences=True))(x)
    x = GRU(4, reset_after=False, return_sequences=True, go_backwards=True)(x)
    x = LSTM(4, return_sequences=True, dropout=0.1, recurrent_dropout=0.1, seed=1)(x)
    x = SimpleRNN(4, return_sequences=True)(x)
    x = keras.layers.RNN(GRUCell(4), return_sequences=True)(x)
    x = keras.layers.RNN(GRUCell(4, reset_after=False), return_sequences=True)(x)
    x = keras.layers.RNN(LSTMCell(4), return_sequences=True)(x)
    x = keras.layers.Bidirectional(keras.layers.RNN(SimpleRNNCell(4), return_sequences=True))(x)
    pooled = [MaskedMeanPooling1D()(x), MaskedMaxPooling1D()(x)]
    outputs = keras.layers.Dense(2)(keras.layers.Concatenate()(pooled))
    return keras.Model(inputs, outputs)


def test_keras_file_round_trip_gives_identical_outputs(tmp_path):
    model = _model_with_every_layer()
    rng = np.random.default_rng(0)
    model.set_weights([rng.normal(scale=0.5, size=w.shape) for w in model.get_weights()])
    x = rng.normal(size=(3, 5, 3)).astype("float32")
    x[1, 3:] = 0.0  # padding, masked by Masking
    expected = np.asarray(model(x))

    path = tmp_path / "every_layer.keras"
    model.save(path)
    loaded = keras.models.load_model(path)

    np.testing.assert_array_equal(np.asarray(loaded(x)), expected)
    assert [type(layer) for layer in loaded.layers] == [type(layer) for layer in model.layers]
    for original, restored in zip(model.get_weights(), loaded.get_weights(), strict=True):
        np.testing.assert_array_equal(restored, original)


def test_weight_names_and_order_match_keras_builtins():
    pairs = [
        (keras.layers.GRU(4), GRU(4)),
        (keras.layers.GRU(4, reset_after=False), GRU(4, reset_after=False)),
        (keras.layers.LSTM(4), LSTM(4)),
        (keras.layers.SimpleRNN(4), SimpleRNN(4)),
    ]
    for builtin, ours in pairs:
        builtin.build((None, 5, 3))
        ours.build((None, 5, 3))

        def names(layer):
            return [(w.path.split("/", 1)[1], tuple(w.shape)) for w in layer.weights]

        assert names(ours) == names(builtin)


def test_exported_classifier_serves_identical_outputs_in_a_fresh_process(tmp_path):
    keras.utils.set_random_seed(1)
    model = build_sequence_classifier(
        10, 3, embedding_dim=4, cell="lstm", units=4, num_layers=2, pooling="mean"
    )
    tokens = np.array([[1, 2, 3, 4, 0, 0], [9, 8, 0, 0, 0, 0], [5, 5, 5, 5, 5, 5]], "int64")
    expected = np.asarray(model(tokens))
    export_dir = tmp_path / "export"
    model.export(str(export_dir), verbose=False)

    request = json.dumps([str(export_dir), tokens.tolist()]) + "\n"
    stdout, stderr = _LOADER.communicate(request, timeout=300)
    assert _LOADER.returncode == 0, stderr[-3000:]
    result = json.loads(stdout.strip().splitlines()[-1])
    assert result["rnnpipe_imported"] is False
    np.testing.assert_allclose(np.array(result["serve"]), expected, atol=1e-6)
    np.testing.assert_allclose(np.array(result["serving_default"]), expected, atol=1e-6)
