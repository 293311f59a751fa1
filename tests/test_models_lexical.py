"""models.LexicalBias and the IBM Model 1 lexicon, alone and inside Seq2Seq: the lexicon steers the logits through the
attention, a zero table changes no decision, bad tables are refused, and the table survives a .keras round
trip and a SavedModel export."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from rnnpipe.models import LexicalBias, build_seq2seq


def _one_hot_table(pairs: dict[int, int], source_size: int, target_size: int) -> np.ndarray:
    table = np.zeros((source_size, target_size), np.float32)
    for s, t in pairs.items():
        table[s, t] = 1.0
    return table


def test_the_attended_source_token_decides_and_a_zero_table_changes_nothing() -> None:
    layer = LexicalBias(4, 5, epsilon=1e-4)
    logits = np.random.default_rng(0).normal(size=(2, 3, 5)).astype("float32")
    attention = np.array([[[1, 0], [0, 1], [0.5, 0.5]]] * 2, "float32")
    source = np.array([[1, 2], [3, 0]])
    unbiased = layer((logits, attention, source)).numpy()
    np.testing.assert_array_equal(unbiased.argmax(-1), logits.argmax(-1))
    layer.set_table(_one_hot_table({1: 4, 2: 3, 3: 1}, 4, 5))
    biased = layer((logits, attention, source)).numpy()
    assert biased[0].argmax(-1).tolist()[:2] == [4, 3]
    assert biased[1, 0].argmax() == 1
    # Half the attention on each source token: both translations get log(0.5 + eps), the rest log(eps).
    np.testing.assert_allclose(biased[0, 2] - logits[0, 2], np.log(np.array([0, 0, 0, 0.5, 0.5]) + 1e-4), rtol=1e-5)


@pytest.mark.parametrize(("table", "message"), [
    (np.zeros((3, 4)), r"shape \(2, 4\).*shape \(3, 4\)"),
    (np.full((2, 4), 0.5), "distribution.*row sums from 2 to 2"),
    (np.array([[1.5, -0.5, 0, 0], [0, 0, 0, 0]]), "non-negative"),
])
def test_a_table_that_is_not_a_lexicon_is_refused(table: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        LexicalBias(2, 4).set_table(table)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"epsilon": 0.0}, r"epsilon.*\(0, 1\).*0.0"),
    ({"source_vocab_size": 0}, "source_vocab_size.*>= 1"),
])
def test_bad_arguments_name_what_was_expected(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        LexicalBias(**{"source_vocab_size": 2, "target_vocab_size": 3, **kwargs})


def test_seq2seq_with_a_lexicon_decodes_its_translations_and_keeps_them_on_reload(tmp_path) -> None:
    model = build_seq2seq(8, 9, embedding_dim=8, units=8, lexical_bias=True, lexical_epsilon=1e-6)
    # Source ids 4..7 translate to target ids 8..5; untrained, the decoder follows the lexicon.
    model.get_layer("lexical_bias").set_table(_one_hot_table({4: 8, 5: 7, 6: 6, 7: 5}, 8, 9))
    source = np.array([[4, 0, 0], [7, 0, 0], [5, 0, 0]])
    assert model.greedy_decode(source, max_length=1)["tokens"][:, 0].numpy().tolist() == [8, 5, 7]
    beam = model.beam_search_decode(source, beam_width=3, max_length=1)["tokens"][:, 0].numpy().tolist()
    assert beam == [8, 5, 7]
    inputs = {"source": source, "target_in": np.array([[1, 8], [1, 5], [1, 7]])}
    expected = model(inputs).numpy()
    assert model.get_config()["lexical_bias"] is True and model.get_config()["lexical_epsilon"] == 1e-6

    import keras

    model.save(tmp_path / "m.keras")
    reloaded = keras.saving.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(reloaded(inputs).numpy(), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(reloaded.get_layer("lexical_bias").table.numpy(),
                                  model.get_layer("lexical_bias").table.numpy())

    export = tf.Module()
    export.model = model
    export.decode = tf.function(lambda s, n: model.greedy_decode(s, max_length=n)["tokens"], autograph=False,
                                input_signature=[tf.TensorSpec([None, None], tf.int32), tf.TensorSpec([], tf.int32)])
    tf.saved_model.save(export, str(tmp_path / "saved"))
    served = tf.saved_model.load(str(tmp_path / "saved"))
    assert served.decode(tf.constant(source, tf.int32), tf.constant(1))[:, 0].numpy().tolist() == [8, 5, 7]


def test_guided_alignment_is_the_attention_cross_entropy_against_the_lexicon_posterior() -> None:
    layer = LexicalBias(4, 5, alignment_weight=2.0)
    layer.set_table(_one_hot_table({1: 4, 2: 3}, 4, 5))
    attention = np.array([[[0.25, 0.75], [0.4, 0.6], [0.5, 0.5]]], "float32")
    source, target_in = np.array([[1, 2]]), np.array([[1, 3, 4]])
    logits = np.zeros((1, 3, 5), "float32")
    layer((logits, attention, source, target_in), training=False)
    assert not layer.losses  # inference and validation: no extra loss
    layer((logits, attention, source, target_in), training=True)
    # Step 0 predicts 3 (source 2, at position 1), step 1 predicts 4 (position 0); the last step is left out.
    expected = 2.0 * -(np.log(0.75) + np.log(0.4)) / 2
    assert float(layer.losses[0]) == pytest.approx(expected, rel=1e-5)
    assert LexicalBias.from_config(layer.get_config()).alignment_weight == 2.0


def test_guided_alignment_teaches_the_attention_faster_than_the_lexicon_alone() -> None:
    import keras

    # Word order reversed: target step t translates source position 3 - t.
    translation = {4: 8, 5: 7, 6: 6, 7: 5}
    source = np.array([[4, 5, 6, 7], [7, 6, 5, 4], [5, 4, 7, 6]] * 8)
    target = np.array([[translation[s] for s in row[::-1]] for row in source])
    inputs = {"source": source, "target_in": np.concatenate([np.ones((len(source), 1), int), target], axis=1)}
    target_out = np.concatenate([target, np.full((len(source), 1), 2)], axis=1)

    def aligned_attention(weight: float) -> np.ndarray:
        keras.utils.set_random_seed(0)
        model = build_seq2seq(8, 9, embedding_dim=8, units=8, lexical_bias=True, guided_alignment=weight)
        assert model.get_config()["guided_alignment"] == weight
        model.get_layer("lexical_bias").set_table(_one_hot_table(translation, 8, 9))
        model.compile(optimizer=keras.optimizers.Adam(0.05),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        model.fit(inputs, target_out, epochs=20, verbose=0)  # one batch an epoch: 20 steps
        attention = model.greedy_decode(source[:3], max_length=4)["attention"].numpy()[:, :4]
        return attention[:, np.arange(4), 3 - np.arange(4)]  # each step's weight on the token it translates

    guided, unguided = aligned_attention(1.0), aligned_attention(0.0)
    # The lexicon's bias pulls the attention the same way through the loss of the outputs, more slowly.
    assert guided.min() > 0.5 and guided.mean() > unguided.mean() + 0.1, (guided, unguided)


def test_without_a_lexicon_seq2seq_has_no_lexical_layer() -> None:
    model = build_seq2seq(8, 9, embedding_dim=8, units=8)
    assert "lexical_bias" not in [layer.name for layer in model.layers]
    with pytest.raises(ValueError, match="lexical_bias.*Received: lexical_bias='yes'"):
        build_seq2seq(8, 9, lexical_bias="yes")
    with pytest.raises(ValueError, match="guided_alignment.*needs lexical_bias=True"):
        build_seq2seq(8, 9, guided_alignment=0.5)
    with pytest.raises(ValueError, match="guided_alignment"):
        build_seq2seq(8, 9, lexical_bias=True, guided_alignment=-1.0)


def test_ibm1_explains_each_target_word_by_one_source_word() -> None:
    from rnnpipe.models import ibm1_expected_counts, keep_top_k, normalize_rows

    # 3 = "the", 4 = "house", 5 = "god"; 6 = "la", 7 = "casa", 8 = "dios". Co-occurrence alone ties "the"
    # with everything; EM moves "casa" and "dios" to the words that explain them.
    pairs = [([3, 4], [6, 7]), ([3, 5], [6, 8]), ([3], [6]), ([4], [7]), ([3, 4, 0], [6, 7, 0])]
    table = None
    for _ in range(20):
        table = normalize_rows(ibm1_expected_counts(table, pairs))
    assert table.shape == (6, 9) and table[3].argmax() == 6 and table[4].argmax() == 7 and table[5].argmax() == 8
    assert table[3, 6] > 0.9 and table[0].sum() == pytest.approx(1.0)  # row 0: "no source word"
    np.testing.assert_allclose(table[1:3].sum(), 0.0)  # ids never seen stay empty
    top = keep_top_k(table, 1)
    assert top[4].tolist() == [0, 0, 0, 0, 0, 0, 0, 1, 0] and top[1].sum() == 0
    with pytest.raises(ValueError, match=r"`top_k` must be a positive integer.*Received: top_k=0"):
        keep_top_k(table, 0)
