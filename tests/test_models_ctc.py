"""CTC loss, decoders and the CRNN builder: maths against tf.nn, a toy training run, `.keras` files."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from rnnpipe.models import (
    CTCLoss,
    build_ctc_recognizer,
    ctc_batch_cost,
    ctc_beam_search_decode,
    ctc_decode_dense,
    ctc_greedy_decode,
)

B, T, C = 3, 7, 5  # C includes the blank
LABELS = np.array([[1, 2, 3], [0, -1, -1], [3, 3, -1]])
LABEL_LENGTHS = np.array([3, 1, 2])


def random_logits(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(B, T, C)).astype("float32")


def by_hand(labels: np.ndarray, logits: np.ndarray, blank: int, frames=None) -> np.ndarray:
    frames = np.full(len(logits), logits.shape[1]) if frames is None else np.asarray(frames)
    return tf.nn.ctc_loss(
        labels=np.where(labels < 0, 0, labels).astype("int32"),
        logits=logits,
        label_length=LABEL_LENGTHS.astype("int32"),
        logit_length=frames.astype("int32"),
        logits_time_major=False,
        blank_index=blank,
    ).numpy()


def test_loss_matches_tf_nn_ctc_loss_for_logits_and_probabilities():
    logits = random_logits()
    expected = by_hand(LABELS, logits, blank=C - 1)
    per_example = CTCLoss(from_logits=True, reduction=None)(LABELS, logits)
    np.testing.assert_allclose(np.asarray(per_example), expected, rtol=1e-5)
    probs = tf.nn.softmax(logits).numpy()
    np.testing.assert_allclose(np.asarray(CTCLoss(reduction=None)(LABELS, probs)), expected, rtol=1e-4)
    np.testing.assert_allclose(float(CTCLoss()(LABELS, probs)), expected.mean(), rtol=1e-4)
    assert np.isfinite(expected).all() and (expected > 0).all()


def test_pad_id_zero_with_blank_zero_and_frame_lengths():
    logits = random_logits(1)
    # Keras-style convention: ids start at 1, 0 is both padding and blank.
    shifted = np.where(LABELS < 0, 0, LABELS + 1)
    expected = by_hand(shifted, logits, blank=0)
    got = CTCLoss(pad_id=0, blank_index=0, from_logits=True, reduction=None)(shifted, logits)
    np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-5)

    frames = [7, 3, 5]
    got = ctc_batch_cost(LABELS, logits, frames, from_logits=True)
    np.testing.assert_allclose(got.numpy(), by_hand(LABELS, logits, C - 1, frames), rtol=1e-5)
    # Padding values past the label length do not matter.
    np.testing.assert_allclose(
        ctc_batch_cost(np.where(LABELS < 0, -7, LABELS), logits, frames, pad_id=-7, from_logits=True).numpy(),
        got.numpy(),
        rtol=1e-6,
    )


def one_hot_frames(classes: list[int], num_classes: int = 4) -> np.ndarray:
    return np.eye(num_classes, dtype="float32")[classes]


def test_greedy_decoding_merges_repeats_drops_blanks_and_respects_lengths():
    blank = 3
    probs = np.stack(
        [
            one_hot_frames([0, 0, 3, 0, 1, 1, 3, 2]),  # 0 0 | 0 1 1 | 2 -> 0 0 1 2
            one_hot_frames([3, 3, 3, 3, 3, 3, 3, 3]),  # all blank -> []
            one_hot_frames([2, 2, 2, 1, 3, 1, 0, 0]),  # -> 2 1 1 0
        ]
    )
    assert ctc_greedy_decode(probs, blank_index=blank) == [[0, 0, 1, 2], [], [2, 1, 1, 0]]
    assert ctc_greedy_decode(probs) == [[0, 0, 1, 2], [], [2, 1, 1, 0]]  # -1 means the last class
    assert ctc_greedy_decode(probs, frame_lengths=[4, 8, 5]) == [[0, 0], [], [2, 1]]
    # Logits give the same argmax; another blank index changes the meaning.
    assert ctc_greedy_decode(np.log(probs * 0.9 + 0.025)) == [[0, 0, 1, 2], [], [2, 1, 1, 0]]
    assert ctc_greedy_decode(probs, blank_index=0) == [[3, 1, 3, 2], [3], [2, 1, 3, 1]]


def test_beam_search_agrees_with_greedy_on_a_peaked_example():
    rng = np.random.default_rng(2)
    classes = rng.integers(0, 4, size=(4, 10))
    probs = one_hot_frames(classes) * 0.94 + 0.015
    lengths = [10, 6, 3, 8]
    greedy = ctc_greedy_decode(probs, lengths)
    assert ctc_beam_search_decode(probs, lengths, beam_width=8) == greedy
    assert ctc_beam_search_decode(np.log(probs), lengths, from_logits=True) == greedy
    # A blank that is not the last class is moved for tf.nn and mapped back.
    assert ctc_beam_search_decode(probs, lengths, blank_index=1) == ctc_greedy_decode(probs, lengths, 1)
    top = ctc_beam_search_decode(probs, lengths, beam_width=4, top_paths=2)
    assert len(top) == 4 and all(len(paths) == 2 and paths[0] == g for paths, g in zip(top, greedy, strict=True))


def test_dense_decoding_works_in_a_tf_function_and_matches_the_lists():
    rng = np.random.default_rng(3)
    probs = tf.nn.softmax(3.0 * rng.normal(size=(4, 9, 5))).numpy().astype("float32")
    lengths = np.array([9, 4, 1, 7], "int32")

    @tf.function(input_signature=[tf.TensorSpec([None, None, 5]), tf.TensorSpec([None], tf.int32)])
    def serve(p, n):
        return ctc_decode_dense(p, n), ctc_decode_dense(p, n, greedy=False, beam_width=8)

    greedy, beam = (t.numpy() for t in serve(probs, lengths))
    assert greedy.dtype == np.int32 and beam.dtype == np.int32

    def unpad(dense):
        return [[int(v) for v in row if v != -1] for row in dense]

    assert unpad(greedy) == ctc_greedy_decode(probs, lengths)
    assert unpad(beam) == ctc_beam_search_decode(probs, lengths, beam_width=8)
    assert greedy.shape[1] == max(len(s) for s in unpad(greedy))
    assert (greedy[np.arange(greedy.shape[1]) >= np.array([len(s) for s in unpad(greedy)])[:, None]] == -1).all()


def toy_task(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Each example encodes 2-3 digits (0-3), each one-hot over 2-3 frames, with a separator frame between."""
    rng = np.random.default_rng(seed)
    frames, features = 12, 6
    x = np.zeros((n, frames, features), "float32")
    x[:, :, 4] = 1.0  # separator / silence
    y = np.full((n, 3), -1, "int64")
    for i in range(n):
        t = int(rng.integers(0, 2))
        for j in range(int(rng.integers(2, 4))):
            digit, width = int(rng.integers(0, 4)), int(rng.integers(2, 4))
            x[i, t : t + width] = 0.0
            x[i, t : t + width, digit] = 1.0
            y[i, j] = digit
            t += width + 1
    x += rng.normal(scale=0.1, size=x.shape).astype("float32")
    return x, y


def test_training_a_tiny_recognizer_decreases_the_loss_and_decodes_the_labels():
    keras.utils.set_random_seed(0)
    x, y = toy_task(64, seed=0)
    model = build_ctc_recognizer(4, input_shape=(None, 6), units=16, num_layers=1)
    model.compile(optimizer=keras.optimizers.Adam(0.03), loss=CTCLoss())
    history = model.fit(x, y, batch_size=32, epochs=30, verbose=0).history["loss"]
    assert np.isfinite(history).all()
    assert history[-1] < 0.3 * history[0], history
    decoded = ctc_greedy_decode(model.predict(x, verbose=0))
    truth = [[int(v) for v in row if v >= 0] for row in y]
    accuracy = np.mean([d == t for d, t in zip(decoded, truth, strict=True)])
    # Chance for an exact 2-3 digit sequence is below 1/16.
    assert accuracy > 0.8, accuracy


def test_image_recognizer_shapes_and_keras_file_round_trip(tmp_path):
    keras.utils.set_random_seed(1)
    model = build_ctc_recognizer(10, input_shape=(16, 64, 1), conv_filters=(4, 8), cell="lstm", units=8)
    x = np.random.default_rng(4).normal(size=(2, 16, 64, 1)).astype("float32")
    expected = np.asarray(model(x))
    assert expected.shape == (2, 64 // 4, 11)
    np.testing.assert_allclose(expected.sum(-1), 1.0, rtol=1e-5)
    path = tmp_path / "crnn.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_array_equal(np.asarray(loaded(x)), expected)
    # Variable-width images: frames follow the width.
    wide = build_ctc_recognizer(3, input_shape=(8, None, 3), conv_filters=(4,), cell="simple_rnn", units=4,
                                num_layers=1, bidirectional=False)
    assert tuple(wide(np.zeros((1, 8, 20, 3), "float32")).shape) == (1, 10, 4)


def test_ctc_loss_config_round_trip_and_registration():
    loss = CTCLoss(pad_id=0, from_logits=True, blank_index=0, reduction="sum", name="ctc")
    config = loss.get_config()
    assert {"pad_id", "from_logits", "blank_index", "reduction", "name", "dtype"} <= set(config)
    clone = CTCLoss.from_config(config)
    assert clone.get_config() == config
    assert keras.saving.get_registered_name(CTCLoss) == "rnnpipe>CTCLoss"
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(loss))
    assert isinstance(restored, CTCLoss) and restored.get_config() == config


def test_bad_arguments_raise_value_errors_naming_expected_and_received():
    with pytest.raises(ValueError, match=r"`from_logits` must be a bool .*Received: from_logits='yes'"):
        CTCLoss(from_logits="yes")
    with pytest.raises(ValueError, match=r"`blank_index` must be an integer >= -1\. Received: blank_index=-2"):
        CTCLoss(blank_index=-2)
    with pytest.raises(ValueError, match=r"`pad_id` must be an integer\. Received: pad_id=0.5"):
        CTCLoss(pad_id=0.5)
    with pytest.raises(ValueError, match=r"`blank_index` must be -1 or in \[0, 4\] for 5 classes\. Received: blank_"):
        ctc_greedy_decode(random_logits(), blank_index=5)
    with pytest.raises(ValueError, match=r"\[batch, frames, classes\]\. Received: shape=\(3, 7\)"):
        ctc_greedy_decode(np.zeros((3, 7)))
    with pytest.raises(ValueError, match=r"`top_paths` must be <= beam_width=2\. Received: top_paths=3"):
        ctc_beam_search_decode(random_logits(), beam_width=2, top_paths=3)
    with pytest.raises(ValueError, match=r"`beam_width` must be a positive integer .*Received: beam_width=0"):
        ctc_decode_dense(random_logits(), greedy=False, beam_width=0)
    with pytest.raises(ValueError, match=r"`num_classes` must be a positive integer .*Received: num_classes=0"):
        build_ctc_recognizer(0, input_shape=(None, 4))
    with pytest.raises(ValueError, match=r"`input_shape` must be \(height, width, channels\).*Received: input_sh"):
        build_ctc_recognizer(3, input_shape=(16, 64, 1, 1))
    with pytest.raises(ValueError, match=r"`input_shape` must be .*Received: input_shape=\(None, None\)"):
        build_ctc_recognizer(3, input_shape=(None, None))
    with pytest.raises(ValueError, match=r"`cell` must be one of 'gru', 'lstm', 'simple_rnn'\. Received: cell='rnn'"):
        build_ctc_recognizer(3, input_shape=(None, 4), cell="rnn")
    with pytest.raises(ValueError, match=r"`conv_filters` must be a positive integer .*Received: conv_filters=0"):
        build_ctc_recognizer(3, input_shape=(16, 64, 1), conv_filters=(8, 0))
    with pytest.raises(ValueError, match=r"height must be >= 8 .*Received: height=4"):
        build_ctc_recognizer(3, input_shape=(4, 64, 1), conv_filters=(2, 2, 2))
    with pytest.raises(ValueError, match=r"`dropout` must be a float in \[0, 1\)\. Received: dropout=1.0"):
        build_ctc_recognizer(3, input_shape=(None, 4), dropout=1.0)


def test_spec_augment_masks_bands_only_in_training_and_round_trips():
    from rnnpipe.models.ctc import SpecAugment

    layer = SpecAugment(time_masks=2, max_time_width=4, freq_masks=1, max_freq_width=3, mask_value=-1.0, seed=7)
    x = np.ones((8, 30, 10), "float32")
    np.testing.assert_array_equal(layer(x, training=False).numpy(), x)
    masked = layer(x, training=True).numpy() == -1.0
    # A time band masks whole frames, a frequency band whole bins; nothing else is touched.
    frames, bins = masked.all(axis=2), masked.all(axis=1)
    np.testing.assert_array_equal(masked, frames[:, :, None] | bins[:, None, :])
    assert 0 < frames.sum(axis=1).max() <= 8 and 0 < bins.sum(axis=1).max() <= 3
    clone = SpecAugment.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    assert keras.saving.get_registered_object("rnnpipe>SpecAugment") is SpecAugment
    with pytest.raises(ValueError, match=r"`max_time_width` must be a positive integer .*Received: max_time_width=0"):
        SpecAugment(max_time_width=0)


def test_frequency_warp_stretches_each_example_only_in_training_and_round_trips():
    from rnnpipe.models.ctc import FrequencyWarp

    layer = FrequencyWarp(max_warp=0.2, seed=3)
    ramp = np.tile(np.arange(10, dtype="float32"), (16, 5, 1))  # feature f holds f
    np.testing.assert_array_equal(layer(ramp, training=False).numpy(), ramp)
    warped = layer(ramp, training=True).numpy()
    # Feature f now holds min(f * alpha, 9): one alpha per example, in [0.8, 1.2], the same in every frame.
    np.testing.assert_allclose(warped, warped[:, :1, :].repeat(5, axis=1))
    alpha = warped[:, 0, 1]
    assert ((alpha >= 0.8) & (alpha <= 1.2)).all() and alpha.std() > 0.01
    np.testing.assert_allclose(warped[:, 0, :], np.minimum(np.arange(10)[None, :] * alpha[:, None], 9), atol=1e-5)
    clone = FrequencyWarp.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    assert keras.saving.get_registered_object("rnnpipe>FrequencyWarp") is FrequencyWarp
    with pytest.raises(ValueError, match=r"`max_warp` must be a float in \[0, 1\)\. Received: max_warp=1\.5"):
        FrequencyWarp(max_warp=1.5)


def test_speech_recognizer_subsamples_time_and_saves(tmp_path):
    from rnnpipe.models.ctc import build_speech_recognizer, output_frames

    strides = ((2, 2), (2, 1))
    model = build_speech_recognizer(6, num_features=12, conv_filters=(4, 4), conv_strides=strides, units=8,
                                    num_layers=2, spec_augment={"time_masks": 1, "max_time_width": 2})
    for frames in (1, 7, 8, 13):
        out = model(np.random.default_rng(0).normal(size=(2, frames, 12)).astype("float32"))
        assert tuple(out.shape) == (2, int(output_frames([frames], strides)[0]), 7)
        np.testing.assert_allclose(out.numpy().sum(-1), 1.0, atol=1e-5)
    path = tmp_path / "speech.keras"
    model.save(path)
    x = np.ones((1, 9, 12), "float32")
    np.testing.assert_allclose(keras.saving.load_model(path)(x).numpy(), model(x).numpy(), atol=1e-6)
    with pytest.raises(ValueError, match=r"one stride per conv layer \(2\)\. Received: conv_strides=\(\(2, 2\),\)"):
        build_speech_recognizer(3, num_features=12, conv_filters=(4, 4), conv_strides=((2, 2),))
    with pytest.raises(ValueError, match=r"`blank_index` must be 0 or -1\. Received: blank_index=2"):
        build_speech_recognizer(3, num_features=12, blank_index=2)
