"""The handwriting model: standardized pixel columns -> rnnpipe's CRNN (CNN, bidirectional LSTM stack) -> CTC.

Two serving signatures take ``image``, PNG bytes of text lines of any width and height (base64url text of
the PNG is accepted too: that is how the records carry it), one line per row, and answer ``text`` (the
transcript), ``confidence`` (the probability of the decoded frame path) and ``length`` (characters):

* ``serving_default``: greedy (best-path) CTC decoding, the fast one;
* ``beam_search``: CTC beam search of width BEAM_WIDTH.

Lines of different widths in one request are padded to the widest; the model masks the padding, so a
line's answer does not depend on what it is batched with.
"""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf

from rnnpipe.components.task import Signature, TrainingTask
from rnnpipe.models import CTCLoss, ctc_decode_dense
from rnnpipe.models.crnn import build_crnn

from .features import HEIGHT, IMAGE_KEY, LABELS_KEY, PIXELS_KEY, TEXT_KEY, VOCABULARY, WIDTH_KEY

BEAM_WIDTH = 10
PAD_ID = 0  # label padding; character ids start at 1


def _dense(x: Any, dtype: tf.DType) -> tf.Tensor:
    if isinstance(x, tf.SparseTensor):
        x = tf.sparse.to_dense(x)
    elif isinstance(x, tf.RaggedTensor):
        x = x.to_tensor()
    return tf.cast(x, dtype)


def model_inputs(features: dict) -> dict[str, tf.Tensor]:
    """``image`` ``[..., HEIGHT, width, 1]`` and ``width``, for one example or a batch padded to its widest
    line (padding is whole columns: the pixels are stored column by column)."""
    pixels = _dense(features[PIXELS_KEY], tf.float32)
    columns = tf.reshape(pixels, tf.concat([tf.shape(pixels)[:-1], [-1, HEIGHT]], 0))
    rank = len(columns.shape)
    image = tf.transpose(columns, [*range(rank - 2), rank - 1, rank - 2])[..., None]
    return {"image": image, "width": tf.cast(features[WIDTH_KEY], tf.int32)}


def targets(features: dict) -> tf.Tensor:
    return _dense(features[LABELS_KEY], tf.int32)


def num_symbols(tft_output: Any) -> int:
    """Classes before the blank: padding id 0, the vocabulary, one id for characters train never had."""
    return tft_output.vocabulary_size_by_name(VOCABULARY) + 2


def build_model(hparams: dict, tft_output: Any) -> keras.Model:
    return build_crnn(num_symbols(tft_output), height=HEIGHT, **hparams)


def characters(tft_output: Any) -> list[str]:
    """Class id -> character ("" for padding, the unknown id and the blank)."""
    return ["", *(c.decode("utf-8") for c in tft_output.vocabulary_by_name(VOCABULARY)), "", ""]


def decode(probabilities: tf.Tensor, tft_output: Any, *, greedy: bool) -> dict[str, tf.Tensor]:
    ids = ctc_decode_dense(probabilities, greedy=greedy, beam_width=BEAM_WIDTH)
    table = tf.constant(characters(tft_output))
    chars = tf.gather(table, tf.maximum(ids, 0))
    text = tf.strings.reduce_join(tf.where(ids >= 0, chars, ""), axis=1)
    # Masked frames are one-hot on the blank: they add nothing to the path's log probability.
    path = tf.reduce_sum(tf.math.log(tf.maximum(tf.reduce_max(probabilities, axis=-1), 1e-12)), axis=1)
    return {"text": text, "confidence": tf.exp(path), "length": tf.strings.length(text, unit="UTF8_CHAR")}


def postprocess(probabilities: tf.Tensor, tft_output: Any) -> dict[str, tf.Tensor]:
    return decode(probabilities, tft_output, greedy=True)


def _read(model: Any, transform: Any, inputs: dict, tft_output: Any, *, greedy: bool) -> dict[str, tf.Tensor]:
    features = transform({IMAGE_KEY: tf.reshape(inputs[IMAGE_KEY], [-1])})
    probabilities = model(model_inputs(features), training=False)
    return decode(probabilities, tft_output, greedy=greedy)


def read_greedy(model: Any, transform: Any, inputs: dict, tft_output: Any) -> dict[str, tf.Tensor]:
    return _read(model, transform, inputs, tft_output, greedy=True)


def read_beam(model: Any, transform: Any, inputs: dict, tft_output: Any) -> dict[str, tf.Tensor]:
    return _read(model, transform, inputs, tft_output, greedy=False)


TASK = TrainingTask(
    label_key=TEXT_KEY,
    serving_features=(IMAGE_KEY,),
    build_model=build_model,
    model_inputs=model_inputs,
    targets=targets,
    postprocess=postprocess,
    loss=CTCLoss(pad_id=PAD_ID),
    metrics=(),
    sequence_length=lambda x: tf.shape(x["image"])[1],
    serve=Signature(read_greedy, raw_features=(IMAGE_KEY,)),
    extra_signatures={"beam_search": Signature(read_beam, raw_features=(IMAGE_KEY,))},
)
