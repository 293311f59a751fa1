"""Bad arguments fail early with a message naming what was expected and received."""

from __future__ import annotations

import numpy as np
import pytest

from rnnpipe.models import (
    GRU,
    LSTM,
    GRUCell,
    LSTMCell,
    SimpleRNN,
    SimpleRNNCell,
    build_sequence_classifier,
)

# (factory, substrings the message must contain: the expectation and the value)
BAD_ARGUMENTS = {
    "units zero": (lambda: GRU(0), ["positive integer", "units=0"]),
    "units negative": (lambda: LSTMCell(-3), ["positive integer", "units=-3"]),
    "units float": (lambda: SimpleRNN(2.5), ["positive integer", "units=2.5"]),
    "units bool": (lambda: GRUCell(True), ["positive integer", "units=True"]),
    "dropout one": (lambda: LSTM(4, dropout=1.0), ["[0, 1)", "dropout=1.0"]),
    "dropout negative": (lambda: SimpleRNNCell(4, dropout=-0.1), ["[0, 1)", "dropout=-0.1"]),
    "recurrent_dropout": (
        lambda: GRU(4, recurrent_dropout=1.5),
        ["[0, 1)", "recurrent_dropout=1.5"],
    ),
    "dropout string": (lambda: GRUCell(4, dropout="0.1"), ["[0, 1)", "dropout='0.1'"]),
    "reset_after": (lambda: GRU(4, reset_after="yes"), ["bool", "reset_after='yes'"]),
    "unit_forget_bias": (lambda: LSTMCell(4, unit_forget_bias=1), ["bool", "unit_forget_bias=1"]),
    "return_sequences": (
        lambda: LSTM(4, return_sequences=None),
        ["bool", "return_sequences=None"],
    ),
    "go_backwards": (lambda: SimpleRNN(4, go_backwards="no"), ["bool", "go_backwards='no'"]),
    "seed": (lambda: GRU(4, seed=-1), [">= 0", "seed=-1"]),
    "classifier cell": (
        lambda: build_sequence_classifier(100, 2, cell="transformer"),
        ["'gru'", "'lstm'", "'simple_rnn'", "cell='transformer'"],
    ),
    "classifier pooling": (
        lambda: build_sequence_classifier(100, 2, pooling="sum"),
        ["'last'", "'mean'", "'max'", "pooling='sum'"],
    ),
    "classifier vocab_size": (
        lambda: build_sequence_classifier(1, 2),
        [">= 2", "vocab_size=1"],
    ),
    "classifier num_classes": (
        lambda: build_sequence_classifier(100, 1),
        [">= 2", "num_classes=1"],
    ),
    "classifier num_layers": (
        lambda: build_sequence_classifier(100, 2, num_layers=0),
        ["positive integer", "num_layers=0"],
    ),
    "classifier units": (
        lambda: build_sequence_classifier(100, 2, units=0),
        ["positive integer", "units=0"],
    ),
    "classifier embedding_dim": (
        lambda: build_sequence_classifier(100, 2, embedding_dim=-1),
        ["positive integer", "embedding_dim=-1"],
    ),
    "classifier dropout": (
        lambda: build_sequence_classifier(100, 2, dropout=1.0),
        ["[0, 1)", "dropout=1.0"],
    ),
    "classifier recurrent_dropout": (
        lambda: build_sequence_classifier(100, 2, recurrent_dropout=2),
        ["[0, 1)", "recurrent_dropout=2"],
    ),
    "classifier bidirectional": (
        lambda: build_sequence_classifier(100, 2, bidirectional="yes"),
        ["bool", "bidirectional='yes'"],
    ),
    "classifier max_length": (
        lambda: build_sequence_classifier(100, 2, max_length=0),
        ["positive integer", "max_length=0"],
    ),
}


@pytest.mark.parametrize("case", list(BAD_ARGUMENTS))
def test_bad_argument_raises_value_error_naming_expected_and_received(case):
    factory, fragments = BAD_ARGUMENTS[case]
    with pytest.raises(ValueError) as excinfo:
        factory()
    message = str(excinfo.value)
    for fragment in fragments:
        assert fragment in message, (fragment, message)


def test_numpy_scalars_are_accepted_and_stored_as_python_numbers():
    layer = GRU(np.int64(4), dropout=np.float32(0.25))
    config = layer.get_config()
    assert type(config["units"]) is int and config["units"] == 4
    assert type(config["dropout"]) is float and config["dropout"] == 0.25


def test_wrong_number_of_initial_states_is_rejected():
    x = np.zeros((2, 3, 4), "float32")
    with pytest.raises(ValueError, match=r"expects 2 initial state tensor\(s\)\. Received: 1"):
        LSTM(5)(x, initial_state=[np.zeros((2, 5), "float32")])
