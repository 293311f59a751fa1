"""The shared builder of stacked recurrent layers (`rnnpipe.models._stack`)."""

from __future__ import annotations

import importlib

import keras
import numpy as np
import pytest

from rnnpipe.models import GRU, LSTM, SimpleRNN
from rnnpipe.models._stack import CELL_TYPES, recurrent_layer, recurrent_stack


def test_cell_names_map_to_the_fast_layers_and_the_builders_share_the_mapping():
    assert CELL_TYPES == {"gru": GRU, "lstm": LSTM, "simple_rnn": SimpleRNN}
    for module in ("classifier", "tagger"):
        assert importlib.import_module(f"rnnpipe.models.{module}").CELL_TYPES is CELL_TYPES


@pytest.mark.parametrize("make", [recurrent_layer, recurrent_stack], ids=["layer", "stack"])
def test_unknown_cell_name_is_rejected_with_the_accepted_names(make):
    with pytest.raises(
        ValueError, match=r"`cell` must be one of 'gru', 'lstm', 'simple_rnn'\. Received: cell='transformer'"
    ):
        make("transformer", 4)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_layers": 0}, r"`num_layers` must be a positive integer \(>= 1\)\. Received: num_layers=0"),
        ({"units": 2.5}, r"`units` must be a positive integer \(>= 1\)\. Received: units=2\.5"),
        ({"dropout": 1.0}, r"`dropout` must be a float in \[0, 1\)\. Received: dropout=1\.0"),
        ({"bidirectional": 1}, r"`bidirectional` must be a bool \(True or False\)\. Received: bidirectional=1"),
        ({"name": "rnn_{layer}"}, r"`name` must be a non-empty name template .*Received: name='rnn_\{layer\}'"),
    ],
    ids=["num_layers", "units", "dropout", "bidirectional", "name"],
)
def test_stack_arguments_are_checked(kwargs, message):
    args = {"units": 4, **kwargs}
    with pytest.raises(ValueError, match=message):
        recurrent_stack("gru", **args)


@pytest.mark.parametrize("return_sequences", [True, False])
def test_bidirectional_stack_doubles_the_width_and_only_the_top_layer_may_drop_the_time_axis(return_sequences):
    layers = recurrent_stack(
        "lstm", 3, num_layers=3, bidirectional=True, dropout=0.1, return_sequences=return_sequences
    )
    assert [layer.name for layer in layers] == ["bi_lstm_0", "bi_lstm_1", "bi_lstm_2"]
    assert [layer.forward_layer.return_sequences for layer in layers] == [True, True, return_sequences]
    assert all(layer.forward_layer.dropout == 0.1 for layer in layers)
    x = np.random.default_rng(0).normal(size=(2, 5, 4)).astype("float32")
    for layer in layers:
        x = layer(x)
    assert tuple(x.shape) == ((2, 5, 6) if return_sequences else (2, 6))


def test_stack_names_follow_the_templates_and_every_layer_returns_its_states():
    layers = recurrent_stack(
        "gru", 2, num_layers=2, return_state=True, name="enc_{cell}_{index}", bidirectional_name="unused_{index}"
    )
    assert [layer.name for layer in layers] == ["enc_gru_0", "enc_gru_1"]
    x = keras.ops.zeros((3, 4, 5))
    for layer in layers:
        x, *states = layer(x)
        assert len(states) == 1 and tuple(states[0].shape) == (3, 2)
    assert tuple(x.shape) == (3, 4, 2)


def test_recurrent_layer_passes_layer_arguments_and_names_the_wrapper():
    layer = recurrent_layer("simple_rnn", 3, bidirectional=True, name="rnn", bidirectional_name="bi_rnn")
    assert isinstance(layer, keras.layers.Bidirectional) and layer.name == "bi_rnn"
    assert isinstance(layer.forward_layer, SimpleRNN) and layer.forward_layer.name == "forward_rnn"
    plain = recurrent_layer("lstm", 3, return_sequences=True, layer_norm=True, name="plain")
    assert isinstance(plain, LSTM) and plain.return_sequences and plain.get_config()["layer_norm"] is True
