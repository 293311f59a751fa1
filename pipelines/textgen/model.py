"""The text-generation model: a character-level recurrent language model (rnnpipe's LSTM/GRU layers),
trained with truncated BPTT on long chunks of text, served by three signatures:

* ``serving_default``: ``text`` (the prompt), ``length`` and ``temperature`` per row -> ``generated``,
  exactly ``length`` characters sampled after the prompt (the sampling loop runs inside the SavedModel);
* ``score``: ``text`` and ``context_chars`` per row -> ``bits`` (the sum of -log2 p of every character
  from position max(context_chars, 1) on, each given everything before it in the row) and ``chars``
  (how many characters that is). The Evaluator calls it for bits per character on held-out works.
* ``score_adaptive``: the same, plus ``rate`` per row: the output layer adapts to the row as it is read
  (``models.adaptive_token_log_probs``), for a whole document at a time. The Evaluator calls it on each
  held-out work (``bpc_adaptive``).
"""

from __future__ import annotations

import functools
import math
from typing import Any

import keras
import tensorflow as tf

from rnnpipe.components.task import Signature, TrainingTask, dense
from rnnpipe.models import (
    BitsPerCharacter,
    adaptive_token_log_probs,
    build_language_model,
    generate,
    token_log_probs,
)

from .features import IDS_KEY, PAD_ID, TEXT_KEY, VOCABULARY, WINDOW_KEY

CONTEXT_KEY = "context_chars"
RATE_KEY = "rate"
ADAPT_SEGMENT = 50  # characters per step of the adapted output layer (the training bptt's default)
MAX_LENGTH = 10000  # per request: the loop runs on the server


def build_model(hparams: dict, tft_output: Any) -> keras.Model:
    # Padding id 0, the vocabulary from 1, one out-of-vocabulary id at the end.
    return build_language_model(len(tft_output.vocabulary_by_name(VOCABULARY)) + 2, **hparams)


def model_inputs(features: dict) -> tf.Tensor:
    return features[WINDOW_KEY][..., :-1]


def targets(features: dict) -> tf.Tensor:
    return features[WINDOW_KEY][..., 1:]


def dense_ids(transformed: dict) -> tf.Tensor:
    """The transform's variable-length ``ids`` as a dense [batch, time] tensor right-padded with 0."""
    return dense(transformed[IDS_KEY], tf.int32, PAD_ID)


def code_point_table(tft_output: Any) -> tf.Tensor:
    """id -> Unicode code point (int32), for decoding; padding and the OOV id map to U+FFFD."""
    vocabulary = [int(v) for v in tft_output.vocabulary_by_name(VOCABULARY)]
    return tf.constant([0xFFFD, *vocabulary, 0xFFFD], tf.int32)


def generate_text(model: Any, transform: Any, inputs: dict, tft_output: Any) -> dict[str, tf.Tensor]:
    text, length = inputs[TEXT_KEY], tf.cast(inputs["length"], tf.int32)
    temperature = tf.cast(inputs["temperature"], tf.float32)
    with tf.control_dependencies([
        tf.debugging.assert_less_equal(length, MAX_LENGTH, message=f"length must be <= {MAX_LENGTH}"),
        tf.debugging.assert_non_negative(length, message="length must be >= 0"),
    ]):
        steps = tf.reduce_max(tf.concat([length, [0]], 0))
    # An empty prompt starts a new line: the model always conditions on at least one character.
    text = tf.where(tf.equal(tf.strings.length(text), 0), tf.fill(tf.shape(text), "\n"), text)
    prompt = dense_ids(transform({TEXT_KEY: text}))
    table = code_point_table(tft_output)
    # Never sampled: padding, and the out-of-vocabulary id (the last one).
    ids = generate(model, prompt, steps, temperature, banned_ids=(PAD_ID, int(table.shape[0]) - 1))
    keep = tf.sequence_mask(length, steps)
    chars = tf.gather(table, ids)
    generated = tf.strings.unicode_encode(tf.ragged.boolean_mask(chars, keep), "UTF-8")
    return {"generated": generated, "length": tf.strings.length(generated, unit="UTF8_CHAR")}


def score_text(model: Any, transform: Any, inputs: dict, tft_output: Any, adaptive: bool = False
               ) -> dict[str, tf.Tensor]:
    ids = dense_ids(transform({TEXT_KEY: inputs[TEXT_KEY]}))
    ids = tf.concat([ids, tf.zeros([tf.shape(ids)[0], 2 - tf.minimum(tf.shape(ids)[1], 2)], tf.int32)], 1)
    if adaptive:  # the context is read and learnt from too; only its characters' bits are left out
        log_probs = adaptive_token_log_probs(model, ids, inputs[RATE_KEY], segment=ADAPT_SEGMENT)
    else:
        log_probs = token_log_probs(model, ids)  # [batch, time - 1]: entry t scores ids[:, t + 1]
    position = tf.range(1, tf.shape(ids)[1])[None, :]
    first = tf.maximum(tf.cast(inputs[CONTEXT_KEY], tf.int32), 1)[:, None]
    scored = tf.logical_and(tf.not_equal(ids[:, 1:], PAD_ID), position >= first)
    weight = tf.cast(scored, tf.float32)
    return {"bits": -tf.reduce_sum(log_probs * weight, axis=1) / math.log(2.0),
            "chars": tf.reduce_sum(tf.cast(scored, tf.int64), axis=1)}


def postprocess(logits: tf.Tensor, tft_output: Any) -> dict[str, tf.Tensor]:
    return {"logits": logits}


TASK = TrainingTask(
    label_key=WINDOW_KEY,
    serving_features=(TEXT_KEY,),
    build_model=build_model,
    model_inputs=model_inputs,
    targets=targets,
    postprocess=postprocess,
    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=PAD_ID),
    metrics=(BitsPerCharacter(ignore_class=PAD_ID),),
    serve=Signature(generate_text, raw_features=(TEXT_KEY,),
                    extra_inputs={"length": tf.TensorSpec([None], tf.int32),
                                  "temperature": tf.TensorSpec([None], tf.float32)}),
    # context_chars is a per-row input rather than the raw int64 feature: callers pass plain Python ints.
    extra_signatures={
        "score": Signature(score_text, raw_features=(TEXT_KEY,),
                           extra_inputs={CONTEXT_KEY: tf.TensorSpec([None], tf.int32)}),
        "score_adaptive": Signature(functools.partial(score_text, adaptive=True), raw_features=(TEXT_KEY,),
                                    extra_inputs={CONTEXT_KEY: tf.TensorSpec([None], tf.int32),
                                                  RATE_KEY: tf.TensorSpec([None], tf.float32)}),
    },
)
