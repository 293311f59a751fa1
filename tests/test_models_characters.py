"""CharacterCNN and the classifier's character channel: padding, config, and a task only spelling can solve."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from rnnpipe.models import CharacterCNN, build_sequence_classifier


def test_padding_characters_and_tokens_do_not_change_a_tokens_vector():
    layer = CharacterCNN(20, char_dim=4, filters=5, kernel_size=3)
    rng = np.random.default_rng(0)
    layer.build((None, None, 4))
    layer.set_weights([rng.normal(size=w.shape) for w in layer.get_weights()])
    chars = np.array([[[3, 4, 5, 0], [6, 0, 0, 0]]])
    padded = np.zeros((1, 3, 7), "int64")
    padded[:, :2, :4] = chars
    short, long = np.asarray(layer(chars)), np.asarray(layer(padded))
    np.testing.assert_allclose(long[:, :2], short, atol=1e-6)
    np.testing.assert_array_equal(long[0, 2], np.zeros(5))
    # A token's vector depends on its characters: a changed last character changes it.
    other = chars.copy()
    other[0, 0, 2] = 7
    assert not np.allclose(np.asarray(layer(other))[0, 0], short[0, 0])


def test_config_round_trip_and_argument_checks():
    layer = CharacterCNN(30, char_dim=3, filters=9, kernel_size=2, name="spelling")
    config = layer.get_config()
    assert {k: config[k] for k in ("num_chars", "char_dim", "filters", "kernel_size")} == {
        "num_chars": 30, "char_dim": 3, "filters": 9, "kernel_size": 2}
    assert CharacterCNN.from_config(config).get_config() == config
    with pytest.raises(ValueError, match=r"num_chars.*>= 2.*Received: num_chars=1"):
        CharacterCNN(1)
    with pytest.raises(ValueError, match=r"filters.*positive.*Received: filters=0"):
        CharacterCNN(30, filters=0)


def _spelling_task(n: int, rng: np.random.Generator) -> tuple[dict, np.ndarray]:
    """Every token is the same out-of-vocabulary id; the label is whether some word ends in character 9."""
    tokens = np.full((n, 4), 1, "int64")
    chars = rng.integers(2, 9, size=(n, 4, 5))
    labels = rng.integers(0, 2, size=n)
    lengths = rng.integers(2, 6, size=(n, 4))
    for i in range(n):
        for t in range(4):
            chars[i, t, lengths[i, t]:] = 0
            if labels[i] and t == i % 4:
                chars[i, t, lengths[i, t] - 1] = 9
    return {"tokens": tokens, "chars": chars}, labels


def test_the_character_channel_reads_what_the_token_ids_cannot():
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x, y = _spelling_task(512, rng)
    x_test, y_test = _spelling_task(256, rng)
    model = build_sequence_classifier(3, 2, embedding_dim=4, units=8, pooling="max", num_chars=12,
                                      char_dim=4, char_filters=8)
    assert {"tokens", "chars"} == set(model.input)
    model.compile(optimizer=keras.optimizers.Adam(0.02), loss="sparse_categorical_crossentropy")
    model.fit(x, y, batch_size=32, epochs=4, verbose=0)
    accuracy = np.mean(np.argmax(model(x_test), axis=-1) == y_test)
    # The ids alone say nothing (every token is id 1): the majority class is all they allow.
    assert accuracy >= 0.9, accuracy
