"""build_sequence_classifier: structure, masking, training, SavedModel export."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from rnnpipe.models import GRU, LSTM, SimpleRNN, build_sequence_classifier

VOCAB = 10
TARGET_TOKEN = 5


@pytest.mark.parametrize(
    ("cell", "pooling", "bidirectional", "num_layers"),
    [
        ("gru", "last", True, 1),
        ("lstm", "mean", True, 2),
        ("simple_rnn", "max", False, 2),
    ],
)
def test_padding_does_not_change_the_prediction(cell, pooling, bidirectional, num_layers):
    keras.utils.set_random_seed(0)
    model = build_sequence_classifier(
        VOCAB,
        3,
        embedding_dim=4,
        cell=cell,
        units=4,
        num_layers=num_layers,
        bidirectional=bidirectional,
        pooling=pooling,
    )
    layer_type = {"gru": GRU, "lstm": LSTM, "simple_rnn": SimpleRNN}[cell]
    recurrent = [
        getattr(layer, "forward_layer", layer)
        for layer in model.layers
        if isinstance(getattr(layer, "forward_layer", layer), layer_type)
    ]
    assert len(recurrent) == num_layers

    short = np.array([[3, 4, 7]], dtype="int64")
    padded = np.array([[3, 4, 7, 0, 0, 0]], dtype="int64")
    probabilities = np.asarray(model(short))
    assert probabilities.shape == (1, 3)
    np.testing.assert_allclose(probabilities.sum(), 1.0, atol=1e-6)
    np.testing.assert_allclose(model(padded), probabilities, atol=1e-6)
    # int32 ids are accepted as well as int64.
    np.testing.assert_allclose(model(padded.astype("int32")), probabilities, atol=1e-6)


def _token_task(n: int, rng: np.random.Generator, max_length: int = 8):
    """Label 1 iff TARGET_TOKEN occurs; balanced classes, variable lengths."""
    others = [t for t in range(1, VOCAB) if t != TARGET_TOKEN]
    x = np.zeros((n, max_length), dtype="int64")
    y = np.zeros(n, dtype="int64")
    for i in range(n):
        length = rng.integers(2, max_length + 1)
        x[i, :length] = rng.choice(others, size=length)
        if i % 2:
            x[i, rng.integers(0, length)] = TARGET_TOKEN
            y[i] = 1
    order = rng.permutation(n)
    return x[order], y[order]


def test_classifier_learns_whether_a_token_occurs():
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x_train, y_train = _token_task(384, rng)
    x_test, y_test = _token_task(256, rng)
    majority = max(y_test.mean(), 1 - y_test.mean())

    model = build_sequence_classifier(
        VOCAB, 2, embedding_dim=8, units=8, dropout=0.1, max_length=8
    )
    model.compile(
        optimizer=keras.optimizers.Adam(0.02),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    model.fit(x_train, y_train, batch_size=32, epochs=3, verbose=0)
    # Eager call rather than evaluate(): one fewer tf.function to trace.
    accuracy = np.mean(np.argmax(model(x_test), axis=-1) == y_test)
    assert accuracy >= majority + 0.25, (accuracy, majority)
