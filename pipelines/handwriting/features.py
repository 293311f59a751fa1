"""Handwriting features: a line image (PNG) -> height-normalized, standardized pixel columns; its
transcript -> character ids.

Per image, in training and in serving alike (the transform graph is part of the SavedModel): decode the
PNG as grayscale, turn it so that ink is bright (an image lighter than mid-gray on average is dark ink on
light paper), stretch its contrast to 0..1, crop it to the box of its ink, scale it to HEIGHT - 2 * MARGIN
rows keeping the aspect ratio (so the width, any width, follows the line's length) and put MARGIN blank
rows and columns around it. The intensity mean and standard deviation over every train pixel
(tensorflow-transform analyzers) standardize the pixels. Pixels are stored COLUMN by column (``[width,
HEIGHT]`` flattened): padding a batch then appends whole blank columns at the right, which the model masks.
Only core TensorFlow ops: TF Serving runs this graph as it is.
"""

from __future__ import annotations

import tensorflow as tf
import tensorflow_transform as tft

IMAGE_KEY = "image"
TEXT_KEY = "text"
PIXELS_KEY = "pixels"
WIDTH_KEY = "width"
LABELS_KEY = "label_ids"
VOCABULARY = "chars"
# Rows of a normalized line; a constant, since the model's shape and the serving reshape depend on it.
HEIGHT = 32
MARGIN = 2
INK = 0.3  # a pixel brighter than this (after the contrast stretch) is ink, for the crop
MIN_RANGE = 0.25  # contrast is stretched by at most 1 / MIN_RANGE: a near-blank image stays near blank
PNG_MAGIC = b"\x89PNG"


def png_bytes(image: tf.Tensor) -> tf.Tensor:
    """One image as PNG bytes, given PNG bytes or base64url text of them (what the records carry)."""
    is_png = tf.equal(tf.strings.substr(image, 0, 4), PNG_MAGIC)
    return tf.cond(is_png, lambda: image, lambda: tf.io.decode_base64(image))


def _ink_box(ink: tf.Tensor, axis: int) -> tuple[tf.Tensor, tf.Tensor]:
    """(first, last + 1) index along the other axis holding ink; the whole range when there is none."""
    has_ink = tf.reduce_any(ink > INK, axis=axis)
    where = tf.cast(tf.where(has_ink)[:, 0], tf.int32)
    size = tf.shape(has_ink)[0]
    found = tf.size(where) > 0
    first = tf.where(found, tf.reduce_min(tf.concat([where, [size]], 0)), 0)
    last = tf.where(found, tf.reduce_max(tf.concat([where, [-1]], 0)) + 1, size)
    return first, last


def normalize_line(image: tf.Tensor) -> tf.Tensor:
    """PNG bytes (or base64url text) of one line -> ink in 0..1, ``[width, HEIGHT]`` (columns first)."""
    gray = tf.cast(tf.io.decode_png(png_bytes(image), channels=1)[..., 0], tf.float32) / 255.0
    ink = tf.cond(tf.reduce_mean(gray) > 0.5, lambda: 1.0 - gray, lambda: gray)
    low = tf.reduce_min(ink)
    ink = (ink - low) / tf.maximum(tf.reduce_max(ink) - low, MIN_RANGE)
    top, bottom = _ink_box(ink, axis=1)
    left, right = _ink_box(ink, axis=0)
    ink = ink[top:bottom, left:right]
    rows = HEIGHT - 2 * MARGIN
    height, width = tf.shape(ink)[0], tf.shape(ink)[1]
    new_width = tf.maximum(1, tf.cast(tf.round(tf.cast(width * rows, tf.float32) / tf.cast(height, tf.float32)),
                                      tf.int32))
    scaled = tf.image.resize(ink[..., None], tf.stack([rows, new_width]), antialias=True)[..., 0]
    framed = tf.pad(tf.clip_by_value(scaled, 0.0, 1.0), [[MARGIN, MARGIN], [MARGIN, MARGIN]])
    return tf.transpose(framed)


def decode_lines(images: tf.Tensor) -> tf.RaggedTensor:
    """[batch] PNG bytes (or base64url text) -> [batch, (width * HEIGHT)] ink, columns first."""
    images = tf.reshape(images, [-1])
    return tf.map_fn(lambda image: tf.reshape(normalize_line(image), [-1]), images,
                     fn_output_signature=tf.RaggedTensorSpec([None], tf.float32, ragged_rank=0))


def transcript_chars(text: tf.Tensor) -> tf.RaggedTensor:
    return tf.strings.unicode_split(tf.reshape(text, [-1]), "UTF-8")


def preprocessing_fn(inputs: dict) -> dict:
    """Standardized pixel columns and the width of every line; character ids (1..V, V + 1 for a character
    the train split never had, 0 for padding) when the input has transcripts."""
    ink = decode_lines(inputs[IMAGE_KEY])
    mean = tft.mean(ink.flat_values, name="ink_mean")
    std = tf.sqrt(tft.var(ink.flat_values, name="ink_variance"))
    pixels = (ink - mean) / tf.maximum(std, 1e-3)
    out = {PIXELS_KEY: pixels, WIDTH_KEY: ink.row_lengths() // HEIGHT}
    if TEXT_KEY in inputs:
        ids = tft.compute_and_apply_vocabulary(transcript_chars(inputs[TEXT_KEY]), num_oov_buckets=1,
                                               vocab_filename=VOCABULARY, name="char_vocabulary")
        out[LABELS_KEY] = ids + 1
    return out
