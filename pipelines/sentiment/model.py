"""The sentiment model: token ids -> rnnpipe's bidirectional recurrent classifier -> P(negative), P(positive)."""

from __future__ import annotations

from typing import Any

import tensorflow as tf
from rnnpipe.components.task import TrainingTask
from rnnpipe.models import build_sequence_classifier

from .features import LABEL_KEY, TEXT_KEY, TOKENS_KEY, VOCABULARY

CLASS_NAMES = ["negative", "positive"]


def model_inputs(features: dict) -> tf.Tensor:
    ids = features[TOKENS_KEY]
    if isinstance(ids, tf.SparseTensor):
        ids = tf.sparse.to_dense(ids)
    elif isinstance(ids, tf.RaggedTensor):
        ids = ids.to_tensor()
    return tf.cast(ids, tf.int64)


def build_model(hparams: dict, tft_output: Any) -> Any:
    # Vocabulary ids are shifted by one (0 = padding) and followed by one OOV bucket.
    vocab_size = tft_output.vocabulary_size_by_name(VOCABULARY) + 2
    return build_sequence_classifier(vocab_size, len(CLASS_NAMES), **hparams)


def postprocess(probabilities: tf.Tensor, tft_output: Any) -> dict[str, tf.Tensor]:
    label_id = tf.argmax(probabilities, axis=-1)
    return {"probabilities": probabilities, "label_id": label_id,
            "label": tf.gather(tf.constant(CLASS_NAMES), label_id)}


TASK = TrainingTask(
    label_key=LABEL_KEY,
    serving_features=(TEXT_KEY,),
    build_model=build_model,
    model_inputs=model_inputs,
    postprocess=postprocess,
    loss="sparse_categorical_crossentropy",
    metrics=("accuracy",),
    sequence_length=lambda ids: tf.shape(ids)[0],
)
