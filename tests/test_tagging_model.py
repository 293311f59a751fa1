"""build_sequence_tagger and its layers: learning a toy tagging rule, masking, `.keras` round trip,
configs and argument checks."""

from __future__ import annotations

import inspect
from pathlib import Path

import keras
import numpy as np
import pytest

from rnnpipe.models import build_sequence_tagger
from rnnpipe.models.tagger import CharacterEncoder, WordDropout

VOCAB, CHAR_VOCAB, TIME, CHARS = 20, 10, 7, 4


def toy_data(n: int, rng: np.random.Generator) -> tuple[dict, np.ndarray]:
    """Tag = 1 + (the token's last character is even) + 2 * (the previous word id > 10): the tagger needs
    both the spelling (character encoder) and the context (sentence-level RNN). Word ids are random, so the
    word embedding alone cannot learn it. Labels are 0 at padding."""
    words = np.zeros((n, TIME), "int64")
    chars = np.zeros((n, TIME, CHARS), "int64")
    tags = np.zeros((n, TIME), "int64")
    for i in range(n):
        length = rng.integers(2, TIME + 1)
        words[i, :length] = rng.integers(1, VOCAB, size=length)
        for t in range(length):
            k = rng.integers(1, CHARS + 1)
            chars[i, t, :k] = rng.integers(1, CHAR_VOCAB, size=k)
            tags[i, t] = 1 + int(chars[i, t, k - 1] % 2 == 0) + 2 * int(t > 0 and words[i, t - 1] > 10)
    return {"words": words, "chars": chars}, tags


def small_tagger(**kwargs) -> keras.Model:
    args = dict(char_vocab_size=CHAR_VOCAB, embedding_dim=8, char_embedding_dim=8, char_units=8, units=16)
    return build_sequence_tagger(VOCAB, 5, **{**args, **kwargs})


def test_tagger_learns_a_rule_that_needs_spelling_and_context() -> None:
    rng = np.random.default_rng(0)
    x, y = toy_data(512, rng)
    keras.utils.set_random_seed(0)
    model = small_tagger()
    model.compile(keras.optimizers.Adam(0.02), loss=keras.losses.SparseCategoricalCrossentropy(ignore_class=0),
                  metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")])
    model.fit(x, y, epochs=4, batch_size=64, verbose=0)
    x_test, y_test = toy_data(200, rng)
    predicted = np.asarray(model.predict(x_test, verbose=0)).argmax(-1)
    real = y_test > 0
    accuracy = float((predicted[real] == y_test[real]).mean())
    # Spelling alone or context alone gets about half of the tokens right.
    assert accuracy > 0.9, accuracy
    # The Keras metric skips padded tokens through the output mask: it agrees with the count above.
    assert model.evaluate(x_test, y_test, verbose=0)[1] == pytest.approx(accuracy, abs=1e-4)


@pytest.mark.parametrize("kwargs", [{}, {"cell": "gru", "num_layers": 2, "bidirectional": False},
                                    {"cell": "simple_rnn", "char_vocab_size": None}])
def test_padding_tokens_do_not_change_the_tags_of_real_tokens(kwargs: dict) -> None:
    keras.utils.set_random_seed(1)
    model = small_tagger(**kwargs)
    x, _ = toy_data(3, np.random.default_rng(1))
    x["words"][:, 5:] = 0
    x["chars"][:, 5:] = 0
    longer = {"words": np.pad(x["words"], [(0, 0), (0, 3)]), "chars": np.pad(x["chars"], [(0, 0), (0, 3), (0, 0)])}
    if kwargs.get("char_vocab_size", CHAR_VOCAB) is None:
        x, longer = x["words"], longer["words"]
    short_out, long_out = np.asarray(model(x)), np.asarray(model(longer))
    real = (x if isinstance(x, np.ndarray) else x["words"]) > 0
    np.testing.assert_allclose(long_out[:, :TIME][real], short_out[real], atol=1e-5)
    np.testing.assert_allclose(short_out.sum(-1), 1.0, atol=1e-5)


def test_keras_file_round_trip_gives_identical_outputs(tmp_path: Path) -> None:
    keras.utils.set_random_seed(2)
    model = small_tagger(word_dropout=0.2, dropout=0.1, num_layers=2)
    x, _ = toy_data(4, np.random.default_rng(2))
    path = tmp_path / "tagger.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded.get_layer("char_encoder"), CharacterEncoder)
    assert isinstance(loaded.get_layer("word_dropout"), WordDropout)
    np.testing.assert_allclose(np.asarray(loaded(x)), np.asarray(model(x)), atol=1e-6)


def test_word_dropout_replaces_only_real_tokens_in_training() -> None:
    layer = WordDropout(0.5, unknown_id=99, seed=3)
    ids = np.tile(np.array([[1, 2, 3, 4, 5, 6, 7, 8, 0, 0]]), (50, 1))
    dropped = np.asarray(layer(ids, training=True))
    assert (dropped[:, 8:] == 0).all()
    replaced = dropped[:, :8] == 99
    assert 0.4 < replaced.mean() < 0.6
    assert (dropped[:, :8][~replaced] == ids[:, :8][~replaced]).all()


@pytest.mark.parametrize("cls, args", [
    (CharacterEncoder, {"char_vocab_size": 12, "embedding_dim": 5, "units": 3, "cell": "gru", "bidirectional": False,
                        "dropout": 0.25}),
    (WordDropout, {"rate": 0.125, "unknown_id": 41, "seed": 7}),
])
def test_get_config_covers_every_constructor_argument(cls: type, args: dict) -> None:
    names = [p.name for p in inspect.signature(cls.__init__).parameters.values()
             if p.name != "self" and p.kind is not p.VAR_KEYWORD]
    assert set(names) == set(args)
    config = cls(**args).get_config()
    assert {k: config[k] for k in args} == args
    assert cls.from_config(config).get_config() == config
    assert keras.saving.get_registered_name(cls) == f"rnnpipe>{cls.__name__}"


@pytest.mark.parametrize("factory, fragments", [
    (lambda: build_sequence_tagger(1, 5), ["vocab_size", ">= 2", "vocab_size=1"]),
    (lambda: build_sequence_tagger(10, 1), ["num_classes", "num_classes=1"]),
    (lambda: build_sequence_tagger(10, 5, cell="rnn"), ["'lstm'", "cell='rnn'"]),
    (lambda: build_sequence_tagger(10, 5, char_vocab_size=0), ["char_vocab_size", "char_vocab_size=0"]),
    (lambda: build_sequence_tagger(10, 5, word_dropout=1.0), ["[0, 1)", "word_dropout=1.0"]),
    (lambda: build_sequence_tagger(10, 5, bidirectional="yes"), ["bool", "bidirectional='yes'"]),
    (lambda: build_sequence_tagger(10, 5, num_layers=0), ["positive integer", "num_layers=0"]),
    (lambda: CharacterEncoder(10)(np.zeros((2, 3), "int64")), ["[batch, time, chars]", "(2, 3)"]),
])
def test_bad_arguments_raise_value_error_naming_expected_and_received(factory, fragments: list[str]) -> None:
    with pytest.raises(ValueError) as excinfo:
        factory()
    for fragment in fragments:
        assert fragment in str(excinfo.value), (fragment, str(excinfo.value))
