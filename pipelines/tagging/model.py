"""The tagging model: word ids + character ids -> rnnpipe's BiLSTM tagger -> a tag per token.

The serving signature takes raw sentences (``text``: whitespace-separated tokens) and answers, per
sentence, the tokens, their tags and the tagger's confidence, padded with "" / 0 to MAX_TOKENS columns,
and ``length``, the number of real tokens.
"""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf

from rnnpipe.components.task import Signature, TrainingTask, dense
from rnnpipe.models import build_sequence_tagger

from .features import (
    CHAR_VOCABULARY,
    CHARS_KEY,
    MAX_CHARS,
    MAX_TOKENS,
    TAG_IDS_KEY,
    TAG_VOCABULARY,
    TAGS_KEY,
    TEXT_KEY,
    WORD_VOCABULARY,
    WORDS_KEY,
    split_tokens,
)


def model_inputs(features: dict) -> dict[str, tf.Tensor]:
    """Word ids ``[..., time]`` and character ids ``[..., time, MAX_CHARS]``, for one example or a batch."""
    words = dense(features[WORDS_KEY])
    chars = dense(features[CHARS_KEY])
    chars = tf.reshape(chars, tf.concat([tf.shape(words), [MAX_CHARS]], 0))
    return {"words": words, "chars": chars}


def targets(features: dict) -> tf.Tensor:
    return dense(features[TAG_IDS_KEY])


def build_model(hparams: dict, tft_output: Any) -> keras.Model:
    # +2 / +1: the shifted ids leave 0 for padding; words and characters have one unknown id at the end.
    return build_sequence_tagger(
        tft_output.vocabulary_size_by_name(WORD_VOCABULARY) + 2,
        tft_output.vocabulary_size_by_name(TAG_VOCABULARY) + 1,
        char_vocab_size=tft_output.vocabulary_size_by_name(CHAR_VOCABULARY) + 2,
        max_chars=MAX_CHARS,
        **hparams,
    )


def tag_names(tft_output: Any) -> list[str]:
    """Tag id -> name; id 0 (padding) is ""."""
    return [""] + [t.decode("utf-8") for t in tft_output.vocabulary_by_name(TAG_VOCABULARY)]


def postprocess(probabilities: tf.Tensor, tft_output: Any) -> dict[str, tf.Tensor]:
    # Class 0 is the padding class: never predicted for a real token.
    tag_id = tf.argmax(probabilities[..., 1:], axis=-1) + 1
    return {"tag_id": tag_id, "tags": tf.gather(tf.constant(tag_names(tft_output)), tag_id),
            "confidence": tf.reduce_max(probabilities[..., 1:], axis=-1)}


def _pad(x: tf.Tensor, value: Any) -> tf.Tensor:
    """[batch, t <= MAX_TOKENS, ...] -> [batch, MAX_TOKENS, ...]: fixed-width outputs concatenate across
    batches (the Evaluator scores batch after batch)."""
    pad = [[0, 0], [0, MAX_TOKENS - tf.shape(x)[1]]] + [[0, 0]] * (len(x.shape) - 2)
    out = tf.pad(x, pad, constant_values=value)
    out.set_shape([None, MAX_TOKENS, *x.shape[2:]])
    return out


def serve(model: Any, transform: Any, inputs: dict, tft_output: Any) -> dict[str, tf.Tensor]:
    text = inputs[TEXT_KEY]
    tokens = split_tokens(text)  # the same split the transform graph makes
    length = tf.cast(tokens.row_lengths(), tf.int32)
    probabilities = model(model_inputs(transform({TEXT_KEY: text})), training=False)
    out = postprocess(probabilities, tft_output)
    real = tf.sequence_mask(length, tf.shape(out["tag_id"])[1])
    return {
        "tokens": _pad(tokens.to_tensor(""), ""),
        "tags": _pad(tf.where(real, out["tags"], ""), ""),
        "confidence": _pad(tf.where(real, out["confidence"], 0.0), 0.0),
        "length": length,
    }


TASK = TrainingTask(
    label_key=TAGS_KEY,
    serving_features=(TEXT_KEY,),
    build_model=build_model,
    model_inputs=model_inputs,
    postprocess=postprocess,
    targets=targets,
    # Labels are padded with 0 in a batch: the loss ignores those; the metric follows the model's mask.
    loss=keras.losses.SparseCategoricalCrossentropy(ignore_class=0),
    metrics=(keras.metrics.SparseCategoricalAccuracy(name="accuracy"),),
    sequence_length=lambda x: tf.shape(x["words"])[0],
    serve=Signature(serve, raw_features=(TEXT_KEY,)),
)
