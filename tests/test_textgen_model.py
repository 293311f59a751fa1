"""rnnpipe.models.language_model: truncated-BPTT training, sampling, scoring, serialization, argument checks."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from rnnpipe.models import (
    BitsPerCharacter,
    LanguageModel,
    adaptive_token_log_probs,
    build_language_model,
    generate,
    sample_with_temperature,
    token_log_probs,
)

TEXT = "to be or not to be. " * 40
CHARS = sorted(set(TEXT))
INDEX = {c: i + 1 for i, c in enumerate(CHARS)}  # 0 pads
VOCAB = len(CHARS) + 1


def encode(text: str) -> list[int]:
    return [INDEX[c] for c in text]


def decode(ids: np.ndarray) -> str:
    return "".join(CHARS[i - 1] for i in ids)


def compiled(model: LanguageModel, learning_rate: float = 0.02) -> LanguageModel:
    model.compile(optimizer=keras.optimizers.Adam(learning_rate),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=0),
                  metrics=[BitsPerCharacter()])
    return model


@pytest.fixture(scope="module")
def trained() -> LanguageModel:
    keras.utils.set_random_seed(1)
    ids = np.array(encode(TEXT))
    windows = np.stack([ids[i:i + 61] for i in range(0, len(ids) - 61, 20)])
    model = compiled(build_language_model(VOCAB, embedding_dim=8, units=32, cell="gru", bptt=20))
    model.fit(windows[:, :-1], windows[:, 1:], batch_size=8, epochs=12, verbose=0)
    return model


def test_trains_on_repetitive_text_and_samples_it_back_at_low_temperature(trained: LanguageModel) -> None:
    sample = tf.function(lambda p: generate(trained, p, 30, temperature=0.05, seed=3), autograph=False)
    out = sample(tf.constant([encode("to be or")]))
    assert out.shape == (1, 30)
    assert decode(out.numpy()[0]) == " not to be. to be or not to be"
    bits = -token_log_probs(trained, np.array([encode(TEXT[:200])])).numpy()[0, 20:].mean() / math.log(2)
    assert bits < 0.2  # the text is deterministic after a few characters


def test_truncated_bptt_updates_once_per_segment_and_keeps_padding_out_of_the_loss() -> None:
    keras.utils.set_random_seed(0)
    model = compiled(build_language_model(VOCAB, embedding_dim=4, units=8, bptt=4), learning_rate=0.001)
    x = np.array([encode(TEXT[:10]), encode(TEXT[10:16]) + [0] * 4])
    y = np.array([encode(TEXT[1:11]), encode(TEXT[11:17]) + [0] * 4])
    logs = model.fit(x, y, batch_size=2, epochs=1, verbose=0).history
    assert int(model.optimizer.iterations.numpy()) == 3  # ceil(10 / 4) segments, one update each
    assert np.isfinite(logs["loss"][0]) and 0 < logs["bits_per_character"][0] < 8


def test_state_is_carried_across_calls_and_masked_steps_keep_it() -> None:
    model = build_language_model(VOCAB, embedding_dim=4, units=8, num_layers=2, cell="lstm")
    ids = np.array([encode("to be or not")])
    whole = model(ids).numpy()
    first, state = model(ids[:, :5], return_state=True)
    rest = model(ids[:, 5:], initial_state=state).numpy()
    np.testing.assert_allclose(np.concatenate([first.numpy(), rest], 1), whole, atol=1e-5)
    padded = np.array([encode("to be") + [0, 0, 0]])
    _, masked_state = model(padded, mask=padded != 0, return_state=True)
    for a, b in zip(masked_state, model(ids[:, :5], return_state=True)[1], strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-6)
    assert len(masked_state) == 4  # (h, c) per layer


def test_token_log_probs_and_bits_per_character_agree_with_a_manual_softmax() -> None:
    model = build_language_model(VOCAB, embedding_dim=4, units=8)
    ids = np.array([encode("to be"), encode("not") + [0, 0]])
    logits = model(ids[:, :-1]).numpy()
    log_softmax = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    expected = np.take_along_axis(log_softmax, ids[:, 1:, None], -1)[..., 0]
    np.testing.assert_allclose(token_log_probs(model, ids).numpy(), expected, atol=1e-5)
    metric = BitsPerCharacter()
    metric.update_state(ids[:, 1:], logits)
    real = ids[:, 1:] != 0
    assert float(metric.result()) == pytest.approx(-expected[real].mean() / math.log(2), abs=1e-4)


def test_adaptive_log_probs_take_one_sgd_step_of_the_output_layer_per_segment_and_row() -> None:
    model = build_language_model(VOCAB, embedding_dim=4, units=8)
    ids = np.array([encode("to be or not"), encode("not to") + [0] * 6])
    static = token_log_probs(model, ids).numpy()
    np.testing.assert_allclose(adaptive_token_log_probs(model, ids, 0.0, segment=4).numpy(), static, atol=1e-5)
    adapted = adaptive_token_log_probs(model, ids, [0.5, 0.0], segment=4).numpy()
    np.testing.assert_allclose(adapted[:, :4], static[:, :4], atol=1e-5)  # the first segment: no step yet
    np.testing.assert_allclose(adapted[1], static[1], atol=1e-5)  # rate 0 for that row: row 0's steps leave it alone
    # Row 0 by hand: the mean loss of its first 4 targets, one SGD step on the output layer, then segment 2.
    hidden = model.hidden_states(ids[:1, :-1])[0].numpy()[0]
    kernel, bias = model.head.kernel.numpy(), model.head.bias.numpy()
    probs = np.exp(hidden[:4] @ kernel + bias)
    probs /= probs.sum(-1, keepdims=True)
    grad = (probs - np.eye(VOCAB)[ids[0, 1:5]]) / 4
    kernel, bias = kernel - 0.5 * hidden[:4].T @ grad, bias - 0.5 * grad.sum(0)
    logits = hidden[4:8] @ kernel + bias
    expected = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    np.testing.assert_allclose(adapted[0, 4:8], expected[np.arange(4), ids[0, 5:9]], atol=1e-5)
    assert not np.allclose(adapted[0, 4:], static[0, 4:], atol=1e-3)
    with pytest.raises(ValueError, match="rate"):
        adaptive_token_log_probs(model, ids, -0.1)
    with pytest.raises(tf.errors.InvalidArgumentError, match="rate must be >= 0"):
        adaptive_token_log_probs(model, ids, tf.constant([0.1, -0.1]))


def test_adaptation_learns_a_document_the_model_has_not_seen(trained: LanguageModel) -> None:
    ids = np.array([encode("bet on tree. no rot. " * 15)])  # new words of the characters it knows
    static = -token_log_probs(trained, ids).numpy()[0, 100:].mean() / math.log(2)
    adapted = -adaptive_token_log_probs(trained, ids, 0.5).numpy()[0, 100:].mean() / math.log(2)
    assert adapted < static - 0.3, (adapted, static)


def test_generate_never_draws_banned_ids_handles_per_row_temperature_and_length_zero() -> None:
    model = build_language_model(6, embedding_dim=4, units=4)
    prompt = np.array([[1, 2, 0], [3, 0, 0]])
    traced = tf.function(lambda p, n, t: generate(model, p, n, t, banned_ids=(0, 5)), autograph=False)
    out = traced(tf.constant(prompt), tf.constant(300), tf.constant([0.5, 5.0])).numpy()
    assert out.shape == (2, 300) and set(np.unique(out)) == {1, 2, 3, 4}
    assert traced(tf.constant(prompt), tf.constant(0), tf.constant([1.0, 1.0])).shape == (2, 0)
    assert generate(model, prompt, 2).shape == (2, 2)  # eagerly too
    drawn = sample_with_temperature(np.log([[0.9, 0.05, 0.05]]), 1e-3, banned_ids=(0,))
    assert int(drawn[0]) in (1, 2)


def test_keras_file_round_trip(tmp_path, trained: LanguageModel) -> None:
    path = tmp_path / "lm.keras"
    trained.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, LanguageModel)
    assert loaded.get_config() == trained.get_config()
    ids = np.array([encode("to be or not to be")])
    np.testing.assert_allclose(loaded(ids).numpy(), trained(ids).numpy(), atol=1e-6)
    restored = BitsPerCharacter.from_config(BitsPerCharacter(ignore_class=None, name="bpc").get_config())
    assert restored.ignore_class is None and restored.name == "bpc"


@pytest.mark.parametrize("kwargs, message", [
    ({"units": 0}, r"`units` must be a positive integer .* Received: units=0"),
    ({"units": -3}, r"Received: units=-3"),
    ({"cell": "rnn"}, r"`cell` must be one of 'lstm', 'gru'. Received: cell='rnn'"),
    ({"bptt": 0}, r"`bptt` must be a positive integer"),
    ({"dropout": 1.0}, r"`dropout` must be a float in \[0, 1\)"),
    ({"num_layers": 0}, r"`num_layers` must be a positive integer"),
    ({"layer_norm": "yes"}, r"`layer_norm` must be a bool"),
])
def test_bad_builder_arguments_raise_value_errors(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build_language_model(10, **kwargs)


def test_bad_sampling_arguments_raise() -> None:
    model = build_language_model(5, embedding_dim=2, units=2)
    with pytest.raises(ValueError, match=r"`vocab_size` must be an integer >= 2. Received: vocab_size=1"):
        build_language_model(1)
    for temperature in (0, 0.0, -1.0, float("inf")):
        with pytest.raises(ValueError, match=r"`temperature` must be a finite number > 0"):
            sample_with_temperature(np.zeros((1, 5)), temperature)
        with pytest.raises(ValueError, match=r"`temperature` must be a finite number > 0"):
            generate(model, np.array([[1]]), 3, temperature)
    with pytest.raises(ValueError, match=r"`length` must be an integer >= 0. Received: length=-1"):
        generate(model, np.array([[1]]), -1)
    with pytest.raises(tf.errors.InvalidArgumentError, match="temperature must be > 0"):
        generate(model, np.array([[1]]), 3, tf.constant([0.0]))
