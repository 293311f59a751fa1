"""The sentiment model: token ids -> rnnpipe's bidirectional recurrent classifier -> P(negative), P(positive)
(and P(neutral) between them, with three classes)."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from rnnpipe.components.task import TrainingTask, dense
from rnnpipe.errors import DataError
from rnnpipe.fingerprint import fingerprint_dir
from rnnpipe.models import build_sequence_classifier

from .data import CLASS_NAMES, THREE_CLASS_NAMES, read_lexicon
from .features import CHARS_KEY, LABEL_KEY, NUM_CHARS, TEXT_KEY, TOKENS_KEY, VOCABULARY


def model_inputs(features: dict) -> tf.Tensor | dict[str, tf.Tensor]:
    tokens = dense(features[TOKENS_KEY])
    if CHARS_KEY not in features:
        return tokens
    # The Transform pads each token to the same number of characters: its row of characters folds into one
    # row per token ([..., tokens, chars]); for a text without tokens, into zero rows of zero characters.
    chars = dense(features[CHARS_KEY])
    per_token = tf.size(chars) // tf.maximum(tf.size(tokens), 1)
    return {"tokens": tokens, "chars": tf.reshape(chars, tf.concat([tf.shape(tokens), [per_token]], 0))}


def lexicon_features(vocabulary: list[bytes], lexicon: dict[str, float]) -> np.ndarray:
    """Per token id: (valence / 4, 1 if the lexicon knows the word); zeros for padding and OOV."""
    # Vocabulary ids are shifted by one (0 = padding) and followed by one OOV bucket.
    features = np.zeros((len(vocabulary) + 2, 2), dtype="float32")
    for i, token in enumerate(vocabulary, start=1):
        score = lexicon.get(token.decode("utf-8", "replace"))
        if score is not None:
            features[i] = (score / 4.0, 1.0)
    return features


def build_model(hparams: dict, tft_output: Any, class_names: list[str] = CLASS_NAMES) -> Any:
    hparams = dict(hparams)
    lexicon_path = hparams.pop("lexicon_path", None)
    expected = hparams.pop("lexicon_sha256", None)
    if expected and fingerprint_dir(Path(lexicon_path)) != expected:
        raise DataError(f"{lexicon_path}: the lexicon changed after the pipeline was built; run it again")
    vocabulary = tft_output.vocabulary_by_name(VOCABULARY)
    features = lexicon_features(vocabulary, read_lexicon(Path(lexicon_path))) if lexicon_path else None
    # The character channel follows the examples: it is on where the Transform wrote characters
    # (transform.max_chars > 0); without num_chars the builder ignores the model.char_* sizes.
    if CHARS_KEY in tft_output.transformed_feature_spec():
        hparams["num_chars"] = NUM_CHARS
    return build_sequence_classifier(len(vocabulary) + 2, len(class_names), token_features=features, **hparams)


def postprocess(probabilities: tf.Tensor, tft_output: Any, class_names: list[str] = CLASS_NAMES
                ) -> dict[str, tf.Tensor]:
    label_id = tf.argmax(probabilities, axis=-1)
    return {"probabilities": probabilities, "label_id": label_id,
            "label": tf.gather(tf.constant(class_names), label_id)}


def make_task(class_names: list[str]) -> TrainingTask:
    return TrainingTask(
        label_key=LABEL_KEY,
        serving_features=(TEXT_KEY,),
        build_model=functools.partial(build_model, class_names=class_names),
        model_inputs=model_inputs,
        postprocess=functools.partial(postprocess, class_names=class_names),
        loss="sparse_categorical_crossentropy",
        metrics=("accuracy",),
        sequence_length=lambda inputs: tf.shape(inputs["tokens"] if isinstance(inputs, dict) else inputs)[0],
        averageable=True,
    )


TASK = make_task(CLASS_NAMES)
THREE_CLASS_TASK = make_task(THREE_CLASS_NAMES)  # data.classes: 3
