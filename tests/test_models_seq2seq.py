"""Seq2Seq: learns to reverse token sequences; greedy and beam decoding in traced TF ops; masks; `.keras` files."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from rnnpipe.models import Seq2Seq, build_seq2seq

PAD, START, END = 0, 1, 2
SYMBOLS = 8  # token ids 3 .. 10
VOCAB = 3 + SYMBOLS
MIN_LEN, MAX_LEN = 3, 6


def reversal_data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[list[int]]]:
    """Random sequences and their reversals: source, decoder input, label (0-padded) and the expected outputs."""
    rng = np.random.default_rng(seed)
    source = np.zeros((n, MAX_LEN), "int32")
    target_in = np.zeros((n, MAX_LEN + 1), "int32")
    target_out = np.zeros((n, MAX_LEN + 1), "int32")
    expected = []
    for i in range(n):
        length = int(rng.integers(MIN_LEN, MAX_LEN + 1))
        tokens = rng.integers(3, VOCAB, size=length)
        reversed_tokens = tokens[::-1]
        source[i, :length] = tokens
        target_in[i, 0] = START
        target_in[i, 1 : length + 1] = reversed_tokens
        target_out[i, :length] = reversed_tokens
        target_out[i, length] = END
        expected.append([*reversed_tokens.tolist(), END])
    return source, target_in, target_out, expected


def exact_matches(decoded: dict, expected: list[list[int]]) -> float:
    tokens, lengths = decoded["tokens"].numpy(), decoded["lengths"].numpy()
    hits = [
        lengths[i] == len(want) and tokens[i, : len(want)].tolist() == want and not tokens[i, len(want) :].any()
        for i, want in enumerate(expected)
    ]
    return float(np.mean(hits))


@pytest.fixture(scope="module")
def trained():
    """A small GRU encoder-decoder trained with teacher forcing to reverse sequences, and held-out data."""
    keras.utils.set_random_seed(0)
    model = build_seq2seq(VOCAB, VOCAB, embedding_dim=16, units=32, cell="gru", bidirectional=True)
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=PAD)
    optimizer = keras.optimizers.Adam(0.01)
    optimizer.build(model.trainable_variables)

    # A plain tf.function step: one trace instead of fit()'s heavier machinery keeps the test fast.
    @tf.function
    def train_step(source, target_in, target_out):
        with tf.GradientTape() as tape:
            logits = model({"source": source, "target_in": target_in}, training=True)
            loss = loss_fn(target_out, logits)
        optimizer.apply(tape.gradient(loss, model.trainable_variables), model.trainable_variables)
        return loss

    source, target_in, target_out, _ = reversal_data(1024, seed=0)
    for _ in range(8):
        for batch in range(0, len(source), 64):
            rows = slice(batch, batch + 64)
            loss = train_step(source[rows], target_in[rows], target_out[rows])
    held_out = reversal_data(200, seed=1)
    return model, float(loss), held_out


@pytest.fixture(scope="module")
def decoders(trained):
    """The trained model's decoders traced once each, as a serving signature traces them (no autograph)."""
    model = trained[0]
    signature = [tf.TensorSpec([None, None], tf.int32), tf.TensorSpec([], tf.int32)]

    def traced(fn, **kwargs):
        return tf.function(lambda source, max_length: fn(source, max_length=max_length, **kwargs),
                           input_signature=signature, autograph=False)

    return {
        "greedy": traced(model.greedy_decode),
        "beam": traced(model.beam_search_decode, beam_width=3),
        "beam1": traced(model.beam_search_decode, beam_width=1, length_penalty=1.0),
    }


def test_learns_to_reverse_and_both_decoders_reproduce_held_out_sequences(trained, decoders):
    model, loss, (source, _, _, expected) = trained
    assert loss < 0.1, loss
    greedy = decoders["greedy"](source, MAX_LEN + 3)
    beam = decoders["beam"](source, MAX_LEN + 3)
    assert exact_matches(greedy, expected) >= 0.9
    assert exact_matches(beam, expected) >= 0.9
    # Every row ended, so the loop stopped at the longest output, not at max_length.
    assert greedy["tokens"].shape[1] == MAX_LEN + 1
    assert beam["beam_tokens"].shape == (len(source), 3, beam["tokens"].shape[1])
    beam_scores = beam["beam_scores"].numpy()
    assert (np.diff(beam_scores, axis=1) <= 1e-6).all()  # best first
    np.testing.assert_array_equal(beam["scores"].numpy(), beam_scores[:, 0])


def test_beam_search_of_width_one_is_greedy_decoding(trained, decoders):
    source = trained[2][0]
    # Also a short max_length, so that rows are cut before their end token.
    for max_length in (MAX_LEN + 3, 4):
        greedy, beam = decoders["greedy"](source, max_length), decoders["beam1"](source, max_length)
        for key in ("tokens", "lengths"):
            np.testing.assert_array_equal(beam[key].numpy(), greedy[key].numpy(), err_msg=key)
        np.testing.assert_allclose(beam["attention"].numpy(), greedy["attention"].numpy(), atol=1e-6)


def test_attention_sums_to_one_over_source_tokens_and_is_zero_on_padding_and_after_the_end(trained, decoders):
    source = trained[2][0]
    source_mask = source != PAD
    assert (~source_mask).any()
    for name in ("greedy", "beam"):
        decoded = decoders[name](source, MAX_LEN + 3)
        weights, lengths = decoded["attention"].numpy(), decoded["lengths"].numpy()
        assert weights.shape == (len(source), decoded["tokens"].shape[1], source.shape[1])
        assert (lengths < weights.shape[1]).any()  # some rows have steps after their end
        for row in range(len(source)):
            emitted = weights[row, : lengths[row]]
            np.testing.assert_allclose(emitted.sum(axis=-1), 1.0, atol=1e-5)
            assert (emitted[:, ~source_mask[row]] == 0.0).all()
            assert (emitted[:, source_mask[row]] > 0.0).all()
            assert (weights[row, lengths[row] :] == 0.0).all()
        # Reversal: the first output token attends most to the last source token.
        last_token = source_mask.sum(axis=1) - 1
        assert np.mean(weights[:, 0, :].argmax(axis=-1) == last_token) >= 0.9


def test_keras_file_round_trip_gives_identical_outputs_and_decodes(trained, tmp_path):
    model, _, (source, target_in, *_) = trained
    path = tmp_path / "seq2seq.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert type(loaded) is Seq2Seq and loaded.get_config() == model.get_config()
    inputs = {"source": source[:16], "target_in": target_in[:16]}
    np.testing.assert_array_equal(np.asarray(loaded(inputs)), np.asarray(model(inputs)))
    want, got = model.greedy_decode(source[:16], max_length=8), loaded.greedy_decode(source[:16], max_length=8)
    for key in want:
        np.testing.assert_array_equal(got[key].numpy(), want[key].numpy(), err_msg=key)


def teacher_forced_log_probs(model: Seq2Seq, source: np.ndarray, target_in: np.ndarray) -> np.ndarray:
    """log-probabilities of call(), renormalised like the decoders (padding and start are never emitted)."""
    logits = np.asarray(model({"source": source, "target_in": target_in}), "float64")
    logits[..., [PAD, START]] = -np.inf
    return np.asarray(tf.nn.log_softmax(logits))


def feed_back(tokens: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """The decoder input that reproduces decoded `tokens`: start, then the tokens, padding from `lengths` on."""
    target_in = np.concatenate([np.full((len(tokens), 1), START), tokens[:, :-1]], axis=1).astype("int32")
    target_in[np.arange(target_in.shape[1])[None, :] >= lengths[:, None]] = PAD
    return target_in


@pytest.mark.parametrize(
    "options",
    [
        {"cell": "lstm", "num_layers": 2, "bidirectional": True, "attention": "additive"},
        {"cell": "simple_rnn", "bidirectional": False, "attention": "dot"},
        {"cell": "gru", "num_layers": 2, "bidirectional": True, "attention": "general"},
        {"cell": "lstm", "bidirectional": False, "attention": "concat", "attention_units": 5},
        {"cell": "gru", "bidirectional": True, "attention": "general", "context_layer": True, "lexical_bias": True},
        {"cell": "lstm", "num_layers": 2, "attention": "additive", "context_layer": True},
        {"cell": "gru", "attention": "general", "tie_embeddings": True, "lexical_bias": True},
    ],
    ids=["lstm-bi-2-additive", "simple_rnn-dot", "gru-bi-2-general", "lstm-concat", "gru-context-lexical",
         "lstm-2-context", "gru-tied"],
)
def test_step_by_step_decoding_computes_the_teacher_forced_probabilities(options):
    """Decoding runs the cells one step at a time; feeding its output back through call() must agree."""
    keras.utils.set_random_seed(3)
    model = build_seq2seq(VOCAB, VOCAB, embedding_dim=6, units=7, **options)
    source = np.array([[3, 4, 5, 6, 0], [7, 8, 0, 0, 0], [9, 10, 3, 4, 5]], "int32")
    decoded = model.greedy_decode(source, max_length=6)
    tokens, lengths = decoded["tokens"].numpy(), decoded["lengths"].numpy()
    assert not np.isin(tokens[tokens != PAD], [START]).any()
    log_probs = teacher_forced_log_probs(model, source, feed_back(tokens, lengths))
    valid = np.arange(tokens.shape[1])[None, :] < lengths[:, None]
    chosen = np.take_along_axis(log_probs, tokens[..., None], axis=-1)[..., 0]
    np.testing.assert_allclose(np.where(valid, chosen, 0.0).sum(axis=1), decoded["scores"].numpy(), atol=1e-5)
    np.testing.assert_array_equal(np.where(valid, log_probs.argmax(-1), 0), tokens)
    # Padding the source changes nothing.
    padded = np.pad(source, [(0, 0), (0, 3)])
    again = model.greedy_decode(padded, max_length=6)
    np.testing.assert_array_equal(again["tokens"].numpy(), tokens)
    np.testing.assert_allclose(again["attention"].numpy()[:, :, : source.shape[1]], decoded["attention"], atol=1e-6)


def teacher_forced_attention(model: Seq2Seq, source: np.ndarray, target_in: np.ndarray) -> np.ndarray:
    """The attention weights `[batch, T, S]` of call() on `target_in`."""
    _, weights = keras.Model(model.inputs, model.get_layer("attention").output)(
        {"source": source, "target_in": target_in})
    return np.asarray(weights, "float64")


@pytest.mark.parametrize(("alpha", "beta"), [(0.0, 0.0), (0.6, 0.0), (2.0, 0.0), (0.6, 0.5), (0.0, 3.0)])
def test_a_beam_wider_than_every_candidate_set_finds_the_exhaustive_best(alpha, beta):
    """Nothing is pruned before the last step, so the best beam is the best of all hypotheses, by brute force:
    log-probability over the length penalty, plus the coverage penalty of the attention over all its steps
    (every hypothesis here ends, by the end token or cut at max_length)."""
    keras.utils.set_random_seed(5)
    vocab, steps = 6, 3  # emittable ids 2 (end), 3, 4, 5
    model = build_seq2seq(vocab, vocab, embedding_dim=6, units=7, cell="gru", bidirectional=False)
    source = np.array([[3, 4, 5, 3], [5, 4, 0, 0]], "int32")
    decoded = model.beam_search_decode(source, beam_width=16, max_length=steps, length_penalty=alpha,
                                       coverage_penalty=beta)

    symbols = [3, 4, 5]
    hypotheses = [[END]] + [[a, END] for a in symbols] + [[a, b, END] for a in symbols for b in symbols]
    hypotheses += [[a, b, c] for a in symbols for b in symbols for c in symbols]  # cut at max_length
    tokens = np.array([h + [PAD] * (steps - len(h)) for h in hypotheses], "int32")
    lengths = np.array([len(h) for h in hypotheses])
    valid = np.arange(steps)[None, :] < lengths[:, None]
    for row in range(len(source)):
        sources = np.repeat(source[row : row + 1], len(hypotheses), axis=0)
        log_probs = teacher_forced_log_probs(model, sources, feed_back(tokens, lengths))
        chosen = np.take_along_axis(log_probs, tokens[..., None], axis=-1)[..., 0]
        scores = np.where(valid, chosen, 0.0).sum(axis=1) / ((5.0 + lengths) / 6.0) ** alpha
        coverage = (teacher_forced_attention(model, sources, feed_back(tokens, lengths)) * valid[..., None]).sum(1)
        scores += beta * np.log(np.where(sources > 0, np.minimum(coverage, 1.0), 1.0)).sum(axis=1)
        best = int(np.argmax(scores))
        got = decoded["tokens"].numpy()[row]
        assert got[: decoded["lengths"].numpy()[row]].tolist() == hypotheses[best], (row, got, scores[best])
        np.testing.assert_allclose(decoded["scores"].numpy()[row], scores[best], atol=1e-5)
        # The other beams are the next best hypotheses, in order.
        runner_up = np.sort(scores)[::-1][:16]
        np.testing.assert_allclose(decoded["beam_scores"].numpy()[row], runner_up, atol=1e-5)


def test_word_dropout_drops_whole_token_embeddings_in_training_and_nothing_at_inference():
    keras.utils.set_random_seed(7)
    model = build_seq2seq(VOCAB, VOCAB, embedding_dim=6, units=5, word_dropout=0.5)
    plain = build_seq2seq(VOCAB, VOCAB, embedding_dim=6, units=5)
    plain.set_weights(model.get_weights())
    source = np.array([[3, 4, 5, 6, 7, 8, 9, 10], [7, 8, 0, 0, 0, 0, 0, 0]], "int32")
    inputs = {"source": source, "target_in": np.array([[START, 5, 6, 7], [START, 3, 0, 0]], "int32")}
    np.testing.assert_allclose(model(inputs), plain(inputs), atol=1e-6)
    np.testing.assert_array_equal(model.greedy_decode(source, max_length=5)["tokens"],
                                  plain.greedy_decode(source, max_length=5)["tokens"])
    assert not np.allclose(model(inputs, training=True), plain(inputs), atol=1e-3)
    embedded = np.asarray(model.get_layer("source_embedding")(np.tile(source, (8, 1))))
    dropped = np.asarray(model.get_layer("source_word_dropout")(embedded, training=True))
    kept = np.all(np.isclose(dropped, 2.0 * embedded), axis=-1)
    gone = np.all(dropped == 0.0, axis=-1)
    assert np.all(kept | gone) and 0.3 < gone[embedded.any(-1)].mean() < 0.7


def test_tied_embeddings_are_the_output_layer_and_learn_from_both_ends():
    keras.utils.set_random_seed(4)
    model = build_seq2seq(VOCAB, VOCAB, embedding_dim=6, units=5, attention="general", tie_embeddings=True)
    untied = build_seq2seq(VOCAB, VOCAB, embedding_dim=6, units=5, attention="general")
    assert "logits" not in {w.path.split("/")[0] for w in model.weights if w.path.endswith("kernel")}
    assert untied.count_params() - model.count_params() == 5 * VOCAB + (5 - 6) * (5 + 2 * 5 + 1)
    inputs = {"source": np.array([[3, 4, 5, 0]], "int32"), "target_in": np.array([[START, 5, 4, 3]], "int32")}
    hidden = keras.Model(model.inputs, model.get_layer("attentional").output)(inputs)
    embeddings = model.get_layer("target_embedding").embeddings.numpy()
    model.get_layer("logits").set_weights([np.arange(VOCAB, dtype="float32")])
    np.testing.assert_allclose(model(inputs), np.asarray(hidden) @ embeddings.T + np.arange(VOCAB), atol=1e-5)
    # A piece only ever predicted, never read (10 is no input here), still moves its embedding.
    optimizer = keras.optimizers.SGD(0.1)
    with tf.GradientTape() as tape:
        loss = keras.losses.sparse_categorical_crossentropy(np.array([[10, 9, 8, END]]), model(inputs),
                                                            from_logits=True)
    optimizer.apply(tape.gradient(loss, model.trainable_variables), model.trainable_variables)
    moved = np.abs(model.get_layer("target_embedding").embeddings.numpy() - embeddings).sum(axis=1)
    assert moved[10] > 0 and moved[9] > 0


def test_get_config_covers_every_argument():
    arguments = {
        "source_vocab_size": 9,
        "target_vocab_size": 12,
        "embedding_dim": 5,
        "cell": "lstm",
        "units": 6,
        "num_layers": 2,
        "bidirectional": False,
        "dropout": 0.25,
        "recurrent_dropout": 0.125,
        "attention": "concat",
        "attention_units": 4,
        "start_id": 10,
        "end_id": 11,
        "max_source_length": 7,
        "max_target_length": 8,
        "word_dropout": 0.5,
        "context_layer": True,
        "tie_embeddings": True,
    }
    model = build_seq2seq(**arguments, embeddings_initializer=keras.initializers.RandomNormal(stddev=1.0))
    config = model.get_config()
    assert {k: config[k] for k in arguments} == arguments
    assert config["embeddings_initializer"]["config"]["stddev"] == 1.0
    clone = Seq2Seq.from_config(config)
    assert clone.get_config() == config
    assert [w.shape for w in clone.weights] == [w.shape for w in model.weights]
    assert keras.saving.get_registered_name(Seq2Seq) == "rnnpipe>Seq2Seq"


@pytest.mark.parametrize(
    ("kwargs", "fragments"),
    [
        ({"cell": "rnn"}, ["`cell`", "'gru'", "Received: cell='rnn'"]),
        ({"units": 0}, ["`units`", "positive integer", "Received: units=0"]),
        ({"dropout": 1.0}, ["`dropout`", "[0, 1)", "Received: dropout=1.0"]),
        ({"word_dropout": -0.1}, ["`word_dropout`", "[0, 1)", "Received: word_dropout=-0.1"]),
        ({"attention": "luong"}, ["`attention`", "'additive'", "Received: attention='luong'"]),
        ({"attention": "dot"}, ["bidirectional=False", "Received: attention='dot', bidirectional=True"]),
        ({"end_id": 11}, ["`end_id`", "[1, 10]", "Received: end_id=11"]),
        ({"start_id": 2}, ["must differ", "Received: both 2"]),
        ({"target_vocab_size": 2}, ["`target_vocab_size`", ">= 3", "Received: target_vocab_size=2"]),
        ({"bidirectional": 1}, ["`bidirectional`", "bool", "Received: bidirectional=1"]),
        ({"context_layer": "yes"}, ["`context_layer`", "bool", "Received: context_layer='yes'"]),
        ({"tie_embeddings": 1}, ["`tie_embeddings`", "bool", "Received: tie_embeddings=1"]),
        ({"embeddings_initializer": "no_such"},
         ["`embeddings_initializer`", "Received: embeddings_initializer='no_such'"]),
    ],
    ids=lambda v: str(v) if isinstance(v, dict) else "",
)
def test_bad_arguments_raise_value_errors_naming_expected_and_received(kwargs, fragments):
    arguments = {"source_vocab_size": 11, "target_vocab_size": 11, **kwargs}
    with pytest.raises(ValueError) as excinfo:
        build_seq2seq(**arguments)
    for fragment in fragments:
        assert fragment in str(excinfo.value), (fragment, str(excinfo.value))


def test_bad_decoding_arguments_raise_value_errors():
    model = build_seq2seq(11, 11, embedding_dim=4, units=4)
    source = np.array([[3, 4]], "int32")
    with pytest.raises(ValueError, match=r"`beam_width`.*Received: beam_width=0"):
        model.beam_search_decode(source, beam_width=0)
    with pytest.raises(ValueError, match=r"`max_length`.*Received: max_length=0"):
        model.greedy_decode(source, max_length=0)
    with pytest.raises(ValueError, match=r"`length_penalty`.*Received: length_penalty=-1"):
        model.beam_search_decode(source, length_penalty=-1)
    with pytest.raises(ValueError, match=r"`coverage_penalty`.*Received: coverage_penalty=-0.2"):
        model.beam_search_decode(source, coverage_penalty=-0.2)


@pytest.mark.slow
def test_unit_variance_embeddings_learn_where_the_default_stalls_with_a_large_vocabulary():
    """With 2,000 ids Keras' default +-0.05 embeddings leave the model at the unigram loss on one memorisable
    batch; unit-variance embeddings memorise it (why the translation application uses them)."""
    rng = np.random.default_rng(0)
    vocab, batch, steps = 2004, 32, 25
    source = rng.integers(3, vocab, (batch, steps)).astype("int32")
    target = rng.integers(3, vocab, (batch, steps)).astype("int32")
    target_in = np.concatenate([np.full((batch, 1), START, "int32"), target], axis=1)
    target_out = np.concatenate([target, np.full((batch, 1), END, "int32")], axis=1)
    losses = {}
    for name, initializer in (("uniform", "uniform"), ("normal", keras.initializers.RandomNormal(stddev=1.0))):
        keras.utils.set_random_seed(0)
        model = build_seq2seq(vocab, vocab, embedding_dim=64, units=64, attention="general",
                              embeddings_initializer=initializer)
        model.compile(optimizer=keras.optimizers.Adam(0.004),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=PAD))
        history = model.fit({"source": source, "target_in": target_in}, target_out, batch_size=batch, epochs=80,
                            verbose=0)
        losses[name] = history.history["loss"][-1]
    assert losses["normal"] < 1.0 < 5.0 < losses["uniform"], losses
