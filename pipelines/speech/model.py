"""The speech model: normalized log-mel frames -> Conv2D front end (subsampling in time) -> stacked
bidirectional rnnpipe GRU/LSTM -> per-frame character probabilities, trained with CTC.

Signatures (each takes raw audio; feature extraction and normalization run inside the graph):

* ``serving_default``: ``audio`` (string per row: a WAV file's bytes, 16-bit PCM at 16 kHz, any number of
  channels; or a path the server can read) -> ``text`` (the transcript, decoded as ``model.decoder`` says:
  greedy or beam search, each word then snapped to the nearest word of the train split with ``model.lexicon``;
  or ``lexicon``, the best path through a loop of the train split's words) and ``frames`` (output frames per
  row);
* ``frame_probabilities``: ``audio`` -> ``probabilities`` ``[batch, frames, classes]`` (class 0 is the CTC
  blank; rows past a row's ``frames`` valid frames are zeros), ``frames`` and ``classes`` (each class's
  character, "" for the blank);
* ``transcribe_waveform``: ``waveform`` ``[batch, samples]`` float in [-1, 1] at 16 kHz and ``length``
  (valid samples per row) -> ``text`` and ``frames``, as ``serving_default``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import keras
import tensorflow as tf

from rnnpipe.components.task import Signature, TrainingTask
from rnnpipe.models.ctc import CTCLoss, build_speech_recognizer, ctc_decode_dense, output_frames
from rnnpipe.models.ctc_lexicon import ctc_lexicon_decode

from .features import AUDIO_KEY, FRAMES_KEY, LABELS_KEY, N_MELS, SAMPLE_RATE, TRANSCRIPT_KEY, VOCABULARY, WORDS

BLANK = 0  # the CTC blank and the label padding: characters are 1..V
DECODING_KEYS = ("decoder", "beam_width", "lexicon", "word_penalty")
DECODERS = ("greedy", "beam", "lexicon")


def _ragged(x: Any) -> tf.RaggedTensor:
    if isinstance(x, tf.SparseTensor):
        return tf.RaggedTensor.from_sparse(x)
    if isinstance(x, tf.RaggedTensor):
        return x
    return tf.RaggedTensor.from_tensor(x)


def _dense(x: Any, dtype: tf.DType) -> tf.Tensor:
    if isinstance(x, tf.SparseTensor):
        x = tf.sparse.to_dense(x)
    elif isinstance(x, tf.RaggedTensor):
        x = x.to_tensor()
    return tf.cast(x, dtype)


def model_inputs(features: dict) -> tf.Tensor:
    """``[frames, N_MELS]`` for one example, ``[batch, frames, N_MELS]`` for a batch (zero-padded)."""
    frames = _dense(features[FRAMES_KEY], tf.float32)
    return tf.reshape(frames, tf.concat([tf.shape(frames)[:-1], [-1, N_MELS]], 0))


def targets(features: dict) -> tf.Tensor:
    return _dense(features[LABELS_KEY], tf.int32)


def vocabulary(tft_output: Any, name: str = VOCABULARY) -> list[str]:
    """A vocabulary of the transform graph, most frequent first: the characters, or the train split's words."""
    return [v.decode("utf-8") for v in tft_output.vocabulary_by_name(name)]


def build_model(hparams: dict, tft_output: Any) -> keras.Model:
    hparams = dict(hparams)
    decoding = {k: hparams.pop(k) for k in DECODING_KEYS if k in hparams}
    decoder = decoding.get("decoder", "greedy")
    if decoder not in DECODERS:
        raise ValueError(f"model.decoder must be one of {', '.join(DECODERS)}. Received: {decoder!r}")
    strides = [tuple(s) for s in hparams.pop("conv_strides", ((2, 2), (1, 2)))]
    model = build_speech_recognizer(len(vocabulary(tft_output)), num_features=N_MELS, conv_strides=strides,
                                    blank_index=BLANK, **hparams)
    # What the serving signatures need besides the weights: read when the model is exported.
    if not isinstance(decoding.get("lexicon", False), bool):
        raise ValueError(f"model.lexicon must be true or false. Received: {decoding['lexicon']!r}")
    model.rnnpipe_decoding = {"conv_strides": strides, "decoder": decoder,
                              "beam_width": int(decoding.get("beam_width", 8)),
                              "word_penalty": float(decoding.get("word_penalty", 0.0)),
                              "lexicon": vocabulary(tft_output, WORDS) if decoding.get("lexicon") else []}
    return model


def nearest_words(text: tf.Tensor, words: tf.Tensor) -> tf.Tensor:
    """``[batch]`` strings with each word replaced by the nearest of ``words`` in edit distance (a tie goes to
    the earlier word: the more frequent one in a vocabulary).

    >>> nearest_words(tf.constant(["fiv sevn", ""]), tf.constant(["five", "seven", "six"])).numpy()
    array([b'five seven', b''], dtype=object)
    """
    said = tf.strings.split(text)
    # One word more than said ("" is never said): edit_distance refuses an empty batch.
    flat = tf.concat([said.flat_values, [""]], 0)
    n, k = tf.shape(flat)[0], tf.shape(words)[0]
    codes = tf.strings.unicode_decode  # code points: edit_distance has no kernel for strings
    hypothesis = codes(tf.repeat(flat, k), "UTF-8").to_sparse()
    truth = codes(tf.tile(words, [n]), "UTF-8").to_sparse()
    distance = tf.reshape(tf.edit_distance(hypothesis, truth, normalize=False), [n, k])
    snapped = said.with_flat_values(tf.gather(words, tf.argmin(distance, axis=1))[:-1])
    return tf.strings.reduce_join(snapped, axis=1, separator=" ")


def wav_bytes_only(audio: tf.Tensor) -> tf.Tensor:
    """The signatures take WAV bytes only. The transform also reads paths (the examples hold them), but a served
    model must not read a file that a client names."""
    is_wav = tf.reduce_all(tf.equal(tf.strings.substr(audio, 0, 4), "RIFF"))
    check = tf.debugging.Assert(is_wav, ["audio must be the bytes of a WAV file (they start with RIFF)"])
    with tf.control_dependencies([check]):
        return tf.identity(audio)


def request_features(record: dict) -> dict:
    """What a client sends for a stored example: the bytes of the WAV file it names."""
    return {**record, AUDIO_KEY: Path(record[AUDIO_KEY]).read_bytes()}


def frame_probabilities(model: Any, transform: Any, audio: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """``[batch, frames', classes]`` probabilities and the valid output frames per row."""
    frames = _ragged(transform({AUDIO_KEY: wav_bytes_only(audio)})[FRAMES_KEY])
    lengths = tf.cast(frames.row_lengths() // N_MELS, tf.int32)

    # One utterance at a time: the backward RNN would read a batch's padding before an utterance's last frames,
    # so a transcript would depend on what else is in the request. Rows past an utterance's frames are zeros.
    def one(row: tuple[tf.Tensor, tf.Tensor]) -> tf.Tensor:
        return model(row[0][None, :row[1]], training=False)[0]

    classes = model.output_shape[-1]
    probabilities = tf.map_fn(one, (model_inputs({FRAMES_KEY: frames}), lengths),
                              fn_output_signature=tf.RaggedTensorSpec([None, classes], tf.float32, ragged_rank=0))
    return probabilities.to_tensor(), output_frames(lengths, model.rnnpipe_decoding["conv_strides"])


def word_loop_decode(probabilities: tf.Tensor, frames: tf.Tensor, tft_output: Any, penalty: float) -> tf.Tensor:
    """``[batch]`` transcripts: the best path through a loop of the train split's words, joined by spaces."""
    characters = {c: i + 1 for i, c in enumerate(vocabulary(tft_output))}  # class 0 is the blank
    words = vocabulary(tft_output, WORDS)
    if " " not in characters:
        raise ValueError("model.decoder lexicon needs transcripts of several words (the space is the separator); "
                         "no training transcript has a space. Use decoder greedy or beam.")
    ids = ctc_lexicon_decode(probabilities, frames, lexicon=[[characters[c] for c in w] for w in words],
                             separator=characters[" "], blank_index=BLANK, word_penalty=penalty)
    said = tf.gather(tf.constant(words), tf.RaggedTensor.from_tensor(ids, padding=-1))
    return tf.strings.reduce_join(said, axis=1, separator=" ")


def transcribe(model: Any, transform: Any, audio: tf.Tensor, tft_output: Any) -> dict[str, tf.Tensor]:
    probabilities, frames = frame_probabilities(model, transform, audio)
    settings = model.rnnpipe_decoding
    if settings["decoder"] == "lexicon":
        return {"text": word_loop_decode(probabilities, frames, tft_output, settings["word_penalty"]),
                "frames": frames}
    ids = ctc_decode_dense(probabilities, frames, greedy=settings["decoder"] == "greedy",
                           beam_width=settings["beam_width"], blank_index=BLANK)
    table = tf.constant(["", *vocabulary(tft_output)])
    chars = tf.gather(table, tf.maximum(ids, 0))  # -1 pads the decoded ids: it maps to ""
    text = tf.strings.reduce_join(chars, axis=1)
    if settings["lexicon"]:
        text = nearest_words(text, tf.constant(settings["lexicon"]))
    return {"text": text, "frames": frames}


def serve(model: Any, transform: Any, inputs: dict, tft_output: Any) -> dict[str, tf.Tensor]:
    return transcribe(model, transform, inputs[AUDIO_KEY], tft_output)


def serve_probabilities(model: Any, transform: Any, inputs: dict, tft_output: Any) -> dict[str, tf.Tensor]:
    probabilities, frames = frame_probabilities(model, transform, inputs[AUDIO_KEY])
    classes = tf.constant(["", *vocabulary(tft_output)])
    return {"probabilities": probabilities, "frames": frames,
            "classes": tf.tile(classes[None, :], [tf.shape(frames)[0], 1])}


def encode_waveforms(waveform: tf.Tensor, length: tf.Tensor) -> tf.Tensor:
    """[batch, samples] float waveforms and their valid lengths -> [batch] 16-bit WAV bytes."""
    def one(row: tuple[tf.Tensor, tf.Tensor]) -> tf.Tensor:
        samples = tf.clip_by_value(row[0][:row[1]], -1.0, 1.0)
        return tf.audio.encode_wav(samples[:, None], SAMPLE_RATE)

    return tf.map_fn(one, (tf.cast(waveform, tf.float32), tf.cast(length, tf.int32)),
                     fn_output_signature=tf.TensorSpec([], tf.string))


def serve_waveform(model: Any, transform: Any, inputs: dict, tft_output: Any) -> dict[str, tf.Tensor]:
    return transcribe(model, transform, encode_waveforms(inputs["waveform"], inputs["length"]), tft_output)


def postprocess(probabilities: tf.Tensor, tft_output: Any) -> dict[str, tf.Tensor]:
    return {"probabilities": probabilities}


TASK = TrainingTask(
    label_key=TRANSCRIPT_KEY,
    serving_features=(AUDIO_KEY,),
    build_model=build_model,
    model_inputs=model_inputs,
    targets=targets,
    postprocess=postprocess,
    # Padded frames at the end of a batch count as frames: the model learns to emit blanks there.
    loss=CTCLoss(pad_id=BLANK, blank_index=BLANK),
    metrics=(),
    sequence_length=lambda x: tf.shape(x)[0],
    serve=Signature(serve, raw_features=(AUDIO_KEY,)),
    request_features=request_features,
    extra_signatures={
        "frame_probabilities": Signature(serve_probabilities, raw_features=(AUDIO_KEY,)),
        "transcribe_waveform": Signature(serve_waveform, extra_inputs={
            "waveform": tf.TensorSpec([None, None], tf.float32), "length": tf.TensorSpec([None], tf.int32)}),
    },
)
