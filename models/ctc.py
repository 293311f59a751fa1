"""Connectionist temporal classification: loss, decoders and a CRNN builder.

Conventions shared by everything here:

* per-frame scores are batch-major `[batch, frames, classes]`, either
  probabilities (the default, what `build_ctc_recognizer` outputs) or logits
  (`from_logits=True`);
* the blank is the LAST class by default (`blank_index=-1` means
  `classes - 1`), so label ids `0 .. classes - 2` are the real symbols;
* labels are dense int `[batch, max_labels]`, right-padded with `pad_id`;
* decoded sequences are Python lists of label ids, or, for serving, an int32
  tensor `[batch, max_decoded]` padded with -1.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from ._stack import check_stack_arguments, recurrent_stack
from ._validation import check_bool, check_int_at_least, check_positive_int, check_rate

__all__ = [
    "CTCLoss",
    "FrequencyWarp",
    "SpecAugment",
    "build_ctc_recognizer",
    "build_speech_recognizer",
    "ctc_batch_cost",
    "ctc_beam_search_decode",
    "ctc_decode_dense",
    "ctc_greedy_decode",
]

# Floor for probabilities before the log: softmax outputs can underflow to 0.
_EPSILON = 1e-7


def _check_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"Argument `{name}` must be an integer. Received: {name}={value!r}")
    return int(value)


def _resolve_blank(blank_index: int, num_classes: int) -> int:
    """Map -1 to the last class and check that the blank is a valid class."""
    blank = num_classes - 1 if blank_index == -1 else blank_index
    if not 0 <= blank < num_classes:
        raise ValueError(
            f"Argument `blank_index` must be -1 or in [0, {num_classes - 1}] for {num_classes} classes. "
            f"Received: blank_index={blank_index!r}"
        )
    return blank


def _static_num_classes(scores: tf.Tensor) -> int:
    if scores.shape.rank != 3 or scores.shape[-1] is None:
        raise ValueError(
            "Expected per-frame scores of shape [batch, frames, classes] with a known number of classes. "
            f"Received: shape={scores.shape}"
        )
    return int(scores.shape[-1])


def _to_logits(scores: tf.Tensor, from_logits: bool) -> tf.Tensor:
    scores = tf.cast(scores, tf.float32)
    if from_logits:
        return scores
    # log(p) is a valid logit vector: softmax(log p) == p for normalised p.
    return tf.math.log(tf.maximum(scores, _EPSILON))


def _frame_lengths(scores: tf.Tensor, frame_lengths: Any) -> tf.Tensor:
    if frame_lengths is None:
        shape = tf.shape(scores)
        return tf.fill([shape[0]], shape[1])
    return tf.cast(tf.reshape(frame_lengths, [-1]), tf.int32)


def ctc_batch_cost(
    y_true: Any,
    y_pred: Any,
    frame_lengths: Any = None,
    *,
    pad_id: int = -1,
    from_logits: bool = False,
    blank_index: int = -1,
) -> tf.Tensor:
    """Per-example CTC negative log-likelihood, shape `[batch]`.

    The functional form of `CTCLoss`, for custom training loops that know
    the number of valid frames of each example (`frame_lengths`, `[batch]`;
    `None` means every frame is valid). Labels must be right-padded: the
    label length of an example is its number of entries != `pad_id`.

    Example:

    >>> import numpy as np
    >>> from rnnpipe.models import ctc_batch_cost
    >>> probs = np.full((2, 4, 3), 1 / 3, "float32")
    >>> loss = ctc_batch_cost(np.array([[0, 1], [1, -1]]), probs, frame_lengths=[4, 2])
    >>> tuple(loss.shape), bool(loss.numpy().min() > 0)
    ((2,), True)
    """
    y_pred = tf.convert_to_tensor(y_pred)
    num_classes = _static_num_classes(y_pred)
    blank = _resolve_blank(blank_index, num_classes)
    labels = tf.cast(tf.convert_to_tensor(y_true), tf.int32)
    is_label = tf.not_equal(labels, pad_id)
    label_lengths = tf.reduce_sum(tf.cast(is_label, tf.int32), axis=-1)
    # Padding past label_length is ignored by tf.nn.ctc_loss, but a pad id
    # outside [0, classes) could still trip its range checks on some devices.
    labels = tf.where(is_label, labels, tf.zeros_like(labels))
    return tf.nn.ctc_loss(
        labels=labels,
        logits=_to_logits(y_pred, from_logits),
        label_length=label_lengths,
        logit_length=_frame_lengths(y_pred, frame_lengths),
        logits_time_major=False,
        blank_index=blank,
    )


@keras.saving.register_keras_serializable(package="rnnpipe")
class CTCLoss(keras.losses.Loss):
    """CTC loss for right-padded dense labels and batch-major frame scores.

    `y_true` is int `[batch, max_labels]` padded with `pad_id`; `y_pred` is
    `[batch, frames, classes]` probabilities (or logits with
    `from_logits=True`) where every frame is valid. For variable frame
    counts call `ctc_batch_cost` with `frame_lengths` instead.

    Args:
        pad_id: label value used for padding (e.g. -1, or 0 when label ids
            start at 1).
        from_logits: whether `y_pred` holds logits rather than probabilities.
        blank_index: class index of the blank; -1 means the last class.
        reduction: Keras loss reduction.
        name: loss name.
        dtype: dtype of the loss computation.

    Example:

    >>> import numpy as np
    >>> from rnnpipe.models import CTCLoss
    >>> probs = np.full((2, 5, 4), 0.25, "float32")
    >>> labels = np.array([[0, 2, 1], [1, -1, -1]])
    >>> loss = CTCLoss()(labels, probs)
    >>> loss.shape, bool(loss > 0)
    (TensorShape([]), True)
    """

    def __init__(
        self,
        pad_id: int = -1,
        from_logits: bool = False,
        blank_index: int = -1,
        reduction: str = "sum_over_batch_size",
        name: str = "ctc_loss",
        dtype: Any = None,
    ) -> None:
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.pad_id = _check_int("pad_id", pad_id)
        self.from_logits = check_bool("from_logits", from_logits)
        self.blank_index = check_int_at_least("blank_index", blank_index, -1)

    def call(self, y_true: Any, y_pred: Any) -> tf.Tensor:
        loss = ctc_batch_cost(
            y_true, y_pred, pad_id=self.pad_id, from_logits=self.from_logits, blank_index=self.blank_index
        )
        return tf.cast(loss, y_pred.dtype)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            {
                "pad_id": self.pad_id,
                "from_logits": self.from_logits,
                "blank_index": self.blank_index,
                "dtype": self.dtype,
            }
        )
        return config


def _collapse(best: np.ndarray, blank: int) -> list[int]:
    keep = np.ones(len(best), bool)
    keep[1:] = best[1:] != best[:-1]
    return [int(c) for c in best[keep] if c != blank]


def ctc_greedy_decode(
    probs_or_logits: Any,
    frame_lengths: Any = None,
    blank_index: int = -1,
) -> list[list[int]]:
    """Best-path decoding: argmax per frame, merge repeats, drop blanks.

    Works on probabilities or logits alike (the argmax is the same).
    Frames at or past `frame_lengths[b]` are ignored.

    Example:

    >>> import numpy as np
    >>> from rnnpipe.models import ctc_greedy_decode
    >>> # classes 0, 1 and blank 2; frames: 0 0 blank 0 1 1
    >>> probs = np.eye(3, dtype="float32")[[[0, 0, 2, 0, 1, 1]]]
    >>> ctc_greedy_decode(probs), ctc_greedy_decode(probs, frame_lengths=[4])
    ([[0, 0, 1]], [[0, 0]])
    """
    scores = np.asarray(probs_or_logits)
    if scores.ndim != 3:
        raise ValueError(f"Expected scores of shape [batch, frames, classes]. Received: shape={scores.shape}")
    blank = _resolve_blank(_check_int("blank_index", blank_index), scores.shape[-1])
    lengths = (
        np.full(scores.shape[0], scores.shape[1]) if frame_lengths is None else np.asarray(frame_lengths).reshape(-1)
    )
    best = scores.argmax(axis=-1)
    return [_collapse(best[b, : int(lengths[b])], blank) for b in range(scores.shape[0])]


def _beam_search(
    scores: tf.Tensor,
    frame_lengths: Any,
    blank_index: int,
    beam_width: int,
    top_paths: int,
    from_logits: bool,
) -> tuple[list[tf.SparseTensor], tf.Tensor]:
    num_classes = _static_num_classes(scores)
    blank = _resolve_blank(blank_index, num_classes)
    logits = _to_logits(scores, from_logits)
    if blank != num_classes - 1:
        # tf.nn.ctc_beam_search_decoder hard-codes the blank as the last class.
        order = [c for c in range(num_classes) if c != blank] + [blank]
        logits = tf.gather(logits, order, axis=-1)
    decoded, log_probs = tf.nn.ctc_beam_search_decoder(
        tf.transpose(logits, [1, 0, 2]),
        _frame_lengths(scores, frame_lengths),
        beam_width=beam_width,
        top_paths=top_paths,
    )
    if blank != num_classes - 1:
        decoded = [
            tf.SparseTensor(d.indices, tf.where(d.values >= blank, d.values + 1, d.values), d.dense_shape)
            for d in decoded
        ]
    return decoded, log_probs


def _check_beam_args(beam_width: Any, top_paths: Any, from_logits: Any) -> None:
    beam_width = check_positive_int("beam_width", beam_width)
    top_paths = check_positive_int("top_paths", top_paths)
    if top_paths > beam_width:
        raise ValueError(
            f"Argument `top_paths` must be <= beam_width={beam_width}. Received: top_paths={top_paths}"
        )
    check_bool("from_logits", from_logits)


def ctc_beam_search_decode(
    probs_or_logits: Any,
    frame_lengths: Any = None,
    blank_index: int = -1,
    *,
    beam_width: int = 8,
    top_paths: int = 1,
    from_logits: bool = False,
) -> list[list[int]] | list[list[list[int]]]:
    """Beam-search decoding with `tf.nn.ctc_beam_search_decoder`.

    Returns one label id list per batch item when `top_paths == 1`, else per
    batch item a list of the `top_paths` best sequences, best first.

    Example:

    >>> import numpy as np
    >>> from rnnpipe.models import ctc_beam_search_decode
    >>> probs = np.eye(3, dtype="float32")[[[0, 2, 0, 1, 1]]] * 0.9 + 0.1 / 3
    >>> ctc_beam_search_decode(probs, beam_width=4)
    [[0, 0, 1]]
    """
    _check_beam_args(beam_width, top_paths, from_logits)
    blank_index = _check_int("blank_index", blank_index)
    scores = tf.convert_to_tensor(probs_or_logits)
    decoded, _ = _beam_search(scores, frame_lengths, blank_index, beam_width, top_paths, from_logits)
    batch = int(tf.shape(scores)[0])
    paths = []
    for sparse in decoded:
        per_item: list[list[int]] = [[] for _ in range(batch)]
        # Sparse entries are ordered row by row, column by column.
        for (row, _col), value in zip(sparse.indices.numpy(), sparse.values.numpy(), strict=True):
            per_item[int(row)].append(int(value))
        paths.append(per_item)
    if top_paths == 1:
        return paths[0]
    return [[paths[p][b] for p in range(top_paths)] for b in range(batch)]


def ctc_decode_dense(
    probs_or_logits: Any,
    frame_lengths: Any = None,
    greedy: bool = True,
    beam_width: int = 8,
    *,
    blank_index: int = -1,
    from_logits: bool = False,
) -> tf.Tensor:
    """Graph-friendly decoding to an int32 tensor `[batch, max_len]` padded with -1.

    Uses only TensorFlow ops, so it traces inside a serving `tf.function`.
    `greedy=True` does best-path decoding, else a beam search of width
    `beam_width` (best path only). `from_logits` only matters for the beam
    search.

    Example:

    >>> import numpy as np
    >>> from rnnpipe.models import ctc_decode_dense
    >>> probs = np.eye(3, dtype="float32")[[[0, 2, 0, 1], [1, 1, 2, 2]]]
    >>> ctc_decode_dense(probs).numpy().tolist()
    [[0, 0, 1], [1, -1, -1]]
    """
    check_bool("greedy", greedy)
    _check_beam_args(beam_width, 1, from_logits)
    blank_index = _check_int("blank_index", blank_index)
    scores = tf.convert_to_tensor(probs_or_logits)
    num_classes = _static_num_classes(scores)
    blank = _resolve_blank(blank_index, num_classes)
    lengths = _frame_lengths(scores, frame_lengths)
    if not greedy:
        decoded, _ = _beam_search(scores, lengths, blank_index, beam_width, 1, from_logits)
        return tf.cast(tf.sparse.to_dense(decoded[0], default_value=-1), tf.int32)
    best = tf.argmax(scores, axis=-1, output_type=tf.int32)
    # A frame emits its class when it is valid, not blank and not a repeat.
    previous = tf.pad(best[:, :-1], [[0, 0], [1, 0]], constant_values=-1)
    valid = tf.sequence_mask(lengths, tf.shape(best)[1])
    emit = valid & tf.not_equal(best, blank) & tf.not_equal(best, previous)
    ragged = tf.RaggedTensor.from_row_lengths(
        tf.boolean_mask(best, emit), tf.reduce_sum(tf.cast(emit, tf.int64), axis=1)
    )
    return ragged.to_tensor(default_value=-1)


def _check_input_shape(input_shape: Any) -> tuple[int | None, ...]:
    def is_dim(value: Any, allow_none: bool) -> bool:
        if value is None:
            return allow_none
        return isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= 1

    ok = isinstance(input_shape, (tuple, list)) and (
        (len(input_shape) == 3 and is_dim(input_shape[0], False) and is_dim(input_shape[1], True)
         and is_dim(input_shape[2], False))
        or (len(input_shape) == 2 and is_dim(input_shape[0], True) and is_dim(input_shape[1], False))
    )
    if not ok:
        raise ValueError(
            "Argument `input_shape` must be (height, width, channels) for images or (frames, features) "
            "for sequences, with positive integer sizes (width and frames may be None). "
            f"Received: input_shape={input_shape!r}"
        )
    return tuple(None if d is None else int(d) for d in input_shape)


def build_ctc_recognizer(
    num_classes: int,
    *,
    input_shape: tuple[int | None, ...],
    conv_filters: Sequence[int] = (32, 64),
    cell: str = "gru",
    units: int = 64,
    num_layers: int = 2,
    bidirectional: bool = True,
    dropout: float = 0.0,
) -> keras.Model:
    """CRNN for CTC: optional CNN front end -> stacked (bi)RNN -> per-frame softmax.

    For image inputs `(height, width, channels)` each entry of
    `conv_filters` adds a 3x3 ReLU `Conv2D` and a 2x2 max pooling, then
    the width becomes the time axis: `frames = width // 2 ** len(conv_filters)`
    and each frame's features are the pooled column (`height' * filters`).
    Sequence inputs `(frames, features)` go straight to the recurrent stack
    and `conv_filters` is unused. The output is `[batch, frames,
    num_classes + 1]` probabilities whose last class is the CTC blank, the
    default of `CTCLoss` and the decoders.

    Args:
        num_classes: number of real symbols (>= 1), blank excluded.
        input_shape: `(height, width, channels)` or `(frames, features)`;
            width / frames may be `None` for variable length.
        conv_filters: filters of each conv block (image inputs only).
        cell: one of `"gru"`, `"lstm"`, `"simple_rnn"` (rnnpipe's fast layers).
        units: units of each recurrent layer (per direction).
        num_layers: number of stacked recurrent layers (>= 1).
        bidirectional: wrap each recurrent layer in `keras.layers.Bidirectional`.
        dropout: input dropout of each recurrent layer, in [0, 1).

    Returns:
        An uncompiled `keras.Model`.

    Example:

    >>> import numpy as np
    >>> from rnnpipe.models import build_ctc_recognizer
    >>> model = build_ctc_recognizer(10, input_shape=(8, 32, 1), conv_filters=(4,), units=4, num_layers=1)
    >>> tuple(model(np.zeros((2, 8, 32, 1), "float32")).shape)
    (2, 16, 11)
    """
    num_classes = check_positive_int("num_classes", num_classes)
    input_shape = _check_input_shape(input_shape)
    if not isinstance(conv_filters, (tuple, list)):
        raise ValueError(
            f"Argument `conv_filters` must be a tuple of positive integers. Received: conv_filters={conv_filters!r}"
        )
    conv_filters = tuple(check_positive_int("conv_filters", f) for f in conv_filters)
    cell, units, num_layers, bidirectional, dropout, _ = check_stack_arguments(
        cell, units, num_layers, bidirectional, dropout
    )

    inputs = keras.Input(shape=input_shape, name="inputs")
    x = inputs
    if len(input_shape) == 3:
        height, width, _ = input_shape
        factor = 2 ** len(conv_filters)
        for size, name in ((height, "height"), (width, "width")):
            if size is not None and size < factor:
                raise ValueError(
                    f"Image {name} must be >= {factor} to survive {len(conv_filters)} 2x2 poolings. "
                    f"Received: {name}={size}"
                )
        for index, filters in enumerate(conv_filters):
            x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu", name=f"conv_{index}")(x)
            x = keras.layers.MaxPooling2D(2, name=f"pool_{index}")(x)
        pooled_height, channels = x.shape[1], x.shape[3]
        # CRNN glue: [B, H, W, C] -> [B, W, H * C], so width is time.
        x = keras.layers.Permute((2, 1, 3), name="width_first")(x)
        x = keras.layers.Reshape((-1, pooled_height * channels), name="columns_to_frames")(x)

    for rnn in recurrent_stack(cell, units, num_layers, bidirectional=bidirectional, dropout=dropout):
        x = rnn(x)
    probabilities = keras.layers.Dense(num_classes + 1, activation="softmax", name="frame_probabilities")(x)
    return keras.Model(inputs, probabilities, name=f"{cell}_ctc_recognizer")


@keras.saving.register_keras_serializable(package="rnnpipe")
class FrequencyWarp(keras.layers.Layer):
    """Random stretching of the feature (frequency) axis of `[batch, frames, features]` inputs, in training only.

    Vocal tract length perturbation (Jaitly and Hinton, 2013) on filterbank frames: a shorter vocal tract
    moves every formant up by the same factor, so each example's features are read at positions
    `f * alpha` (linear interpolation between neighbouring features; positions past the last feature take
    its value), with one `alpha` per example drawn uniformly from `[1 - max_warp, 1 + max_warp]`. A model
    trained on a few voices then meets many more. At inference the layer is the identity.

    Args:
        max_warp: largest relative stretch, in [0, 1) (0.1: +-10 %).
        seed: optional seed of the warp factors' random draws.

    Call arguments:
        inputs: `[batch, frames, features]` float tensor.
        training: whether to warp.

    Example:

    >>> import numpy as np
    >>> from rnnpipe.models.ctc import FrequencyWarp
    >>> layer = FrequencyWarp(max_warp=0.2, seed=1)
    >>> x = np.tile(np.arange(8, dtype="float32"), (2, 3, 1))
    >>> bool((layer(x, training=False).numpy() == x).all()), bool((layer(x, training=True).numpy() != x).any())
    (True, True)
    """

    def __init__(self, max_warp: float = 0.1, seed: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.max_warp = check_rate("max_warp", max_warp)
        if seed is not None:
            seed = check_int_at_least("seed", seed, 0)
        self.seed = seed
        self._generator = keras.random.SeedGenerator(seed)

    def call(self, inputs: Any, training: bool | None = None) -> tf.Tensor:
        if not training or self.max_warp == 0:
            return inputs
        shape = tf.shape(inputs)
        alpha = keras.random.uniform([shape[0], 1], 1 - self.max_warp, 1 + self.max_warp, seed=self._generator)
        last = tf.cast(shape[2] - 1, tf.float32)
        at = tf.minimum(tf.cast(tf.range(shape[2]), tf.float32)[None, :] * alpha, last)  # [batch, features]
        below = tf.floor(at)
        weight = tf.cast((at - below)[:, None, :], inputs.dtype)
        low = tf.cast(below, tf.int32)
        high = tf.minimum(low + 1, shape[2] - 1)
        gather = lambda index: tf.gather(inputs, index, axis=2, batch_dims=1)  # noqa: E731
        return gather(low) * (1 - weight) + gather(high) * weight

    def compute_output_shape(self, input_shape: Any) -> Any:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "max_warp": self.max_warp, "seed": self.seed}


@keras.saving.register_keras_serializable(package="rnnpipe")
class SpecAugment(keras.layers.Layer):
    """SpecAugment-style masking of `[batch, frames, features]` inputs, in training only.

    Each example gets `time_masks` bands of up to `max_time_width` frames
    and `freq_masks` bands of up to `max_freq_width` features, each at a
    random place, set to `mask_value` (0: the mean of normalized
    features). At inference the layer is the identity.

    Args:
        time_masks: number of time bands per example (>= 0).
        max_time_width: widest time band, in frames (>= 1).
        freq_masks: number of feature bands per example (>= 0).
        max_freq_width: widest feature band (>= 1).
        mask_value: what masked entries become.
        seed: optional seed of the masks' random draws.

    Call arguments:
        inputs: `[batch, frames, features]` float tensor.
        training: whether to mask.

    Example:

    >>> import numpy as np
    >>> from rnnpipe.models.ctc import SpecAugment
    >>> layer = SpecAugment(time_masks=1, max_time_width=3, freq_masks=1, max_freq_width=2, seed=1)
    >>> x = np.ones((2, 10, 6), "float32")
    >>> bool((layer(x, training=False).numpy() == x).all()), bool((layer(x, training=True).numpy() == 0).any())
    (True, True)
    """

    def __init__(
        self,
        time_masks: int = 2,
        max_time_width: int = 10,
        freq_masks: int = 2,
        max_freq_width: int = 8,
        mask_value: float = 0.0,
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.time_masks = check_int_at_least("time_masks", time_masks, 0)
        self.max_time_width = check_positive_int("max_time_width", max_time_width)
        self.freq_masks = check_int_at_least("freq_masks", freq_masks, 0)
        self.max_freq_width = check_positive_int("max_freq_width", max_freq_width)
        if isinstance(mask_value, bool) or not isinstance(mask_value, (int, float, np.number)):
            raise ValueError(f"Argument `mask_value` must be a number. Received: mask_value={mask_value!r}")
        self.mask_value = float(mask_value)
        if seed is not None:
            seed = check_int_at_least("seed", seed, 0)
        self.seed = seed
        self._generator = keras.random.SeedGenerator(seed)

    def _bands(self, batch: tf.Tensor, size: tf.Tensor, count: int, max_width: int) -> tf.Tensor:
        """[batch, size] bool: True inside any of `count` random bands of up to `max_width` positions."""
        positions = tf.range(size)[None, :]
        masked = tf.zeros([batch, size], tf.bool)
        for _ in range(count):
            width = tf.cast(
                keras.random.uniform([batch, 1], 0, max_width + 1, seed=self._generator), tf.int32
            )
            width = tf.minimum(width, size)
            start = tf.cast(
                keras.random.uniform([batch, 1], 0, 1, seed=self._generator) * tf.cast(size - width + 1, tf.float32),
                tf.int32,
            )
            masked = masked | ((positions >= start) & (positions < start + width))
        return masked

    def call(self, inputs: Any, training: bool | None = None) -> tf.Tensor:
        if not training or (self.time_masks == 0 and self.freq_masks == 0):
            return inputs
        shape = tf.shape(inputs)
        time = self._bands(shape[0], shape[1], self.time_masks, self.max_time_width)
        freq = self._bands(shape[0], shape[2], self.freq_masks, self.max_freq_width)
        masked = time[:, :, None] | freq[:, None, :]
        return tf.where(masked, tf.cast(self.mask_value, inputs.dtype), inputs)

    def compute_output_shape(self, input_shape: Any) -> Any:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            {
                "time_masks": self.time_masks,
                "max_time_width": self.max_time_width,
                "freq_masks": self.freq_masks,
                "max_freq_width": self.max_freq_width,
                "mask_value": self.mask_value,
                "seed": self.seed,
            }
        )
        return config


def _check_strides(name: str, value: Any) -> tuple[tuple[int, int], ...]:
    ok = isinstance(value, (tuple, list)) and all(
        isinstance(s, (tuple, list)) and len(s) == 2 and all(
            isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 1 for v in s) for s in value
    )
    if not ok:
        raise ValueError(
            f"Argument `{name}` must be a list of (time, frequency) pairs of positive integers, one per conv "
            f"layer. Received: {name}={value!r}"
        )
    return tuple((int(t), int(f)) for t, f in value)


def build_speech_recognizer(
    num_classes: int,
    *,
    num_features: int,
    conv_filters: Sequence[int] = (32, 32),
    conv_strides: Sequence[Sequence[int]] = ((2, 2), (1, 2)),
    cell: str = "gru",
    units: int = 128,
    num_layers: int = 2,
    bidirectional: bool = True,
    dropout: float = 0.0,
    spec_augment: dict[str, Any] | None = None,
    frequency_warp: float = 0.0,
    blank_index: int = 0,
) -> keras.Model:
    """Hybrid CTC acoustic model: Conv2D front end -> stacked (bi)RNN -> per-frame softmax.

    The input is `[batch, frames, num_features]` (e.g. normalized log-mel
    frames, any number of frames). Optional frequency warping and
    SpecAugment masking (training only), then each entry of `conv_filters` adds a 3x3 ReLU `Conv2D` with
    "same" padding and its `(time, frequency)` stride from `conv_strides`:
    the time strides subsample the sequence (`frames' = ceil(frames /
    prod(time strides))`, see `output_frames`), the frequency strides
    shrink each frame. The recurrent stack reads the flattened conv maps;
    the output is `[batch, frames', num_classes + 1]` probabilities whose
    class `blank_index` (0, or -1 for the last) is the CTC blank.

    Args:
        num_classes: number of real symbols (>= 1), blank excluded.
        num_features: features per input frame (>= 1).
        conv_filters: filters of each conv layer (may be empty).
        conv_strides: `(time, frequency)` stride of each conv layer.
        cell: one of `"gru"`, `"lstm"`, `"simple_rnn"` (rnnpipe's fast layers).
        units: units of each recurrent layer (per direction).
        num_layers: number of stacked recurrent layers (>= 1).
        bidirectional: wrap each recurrent layer in `keras.layers.Bidirectional`.
        dropout: input dropout of each recurrent layer, in [0, 1).
        spec_augment: `SpecAugment` arguments, or None for no masking.
        frequency_warp: `FrequencyWarp`'s `max_warp`; 0 for none.
        blank_index: 0 or -1: where the blank sits among the outputs.

    Returns:
        An uncompiled `keras.Model`.

    Example:

    >>> import numpy as np
    >>> from rnnpipe.models.ctc import build_speech_recognizer
    >>> model = build_speech_recognizer(5, num_features=16, conv_filters=(4,), conv_strides=((2, 2),),
    ...                                 units=4, num_layers=1)
    >>> tuple(model(np.zeros((2, 9, 16), "float32")).shape)
    (2, 5, 6)
    """
    num_classes = check_positive_int("num_classes", num_classes)
    num_features = check_positive_int("num_features", num_features)
    if not isinstance(conv_filters, (tuple, list)):
        raise ValueError(
            f"Argument `conv_filters` must be a tuple of positive integers. Received: conv_filters={conv_filters!r}"
        )
    conv_filters = tuple(check_positive_int("conv_filters", f) for f in conv_filters)
    conv_strides = _check_strides("conv_strides", conv_strides)
    if len(conv_strides) != len(conv_filters):
        raise ValueError(
            f"Expected one stride per conv layer ({len(conv_filters)}). Received: conv_strides={conv_strides!r}"
        )
    if blank_index not in (0, -1):
        raise ValueError(f"Argument `blank_index` must be 0 or -1. Received: blank_index={blank_index!r}")
    if spec_augment is not None and not isinstance(spec_augment, dict):
        raise ValueError(
            f"Argument `spec_augment` must be a dict of SpecAugment arguments or None. Received: {spec_augment!r}"
        )
    cell, units, num_layers, bidirectional, dropout, _ = check_stack_arguments(
        cell, units, num_layers, bidirectional, dropout
    )

    inputs = keras.Input(shape=(None, num_features), name="frames")
    x = FrequencyWarp(frequency_warp, name="frequency_warp")(inputs) if frequency_warp else inputs
    x = SpecAugment(**spec_augment, name="spec_augment")(x) if spec_augment else x
    if conv_filters:
        x = keras.layers.Reshape((-1, num_features, 1), name="add_channel")(x)
        for index, (filters, strides) in enumerate(zip(conv_filters, conv_strides, strict=True)):
            x = keras.layers.Conv2D(
                filters, 3, strides=strides, padding="same", activation="relu", name=f"conv_{index}"
            )(x)
        x = keras.layers.Reshape((-1, x.shape[2] * x.shape[3]), name="maps_to_frames")(x)
    for rnn in recurrent_stack(cell, units, num_layers, bidirectional=bidirectional, dropout=dropout):
        x = rnn(x)
    probabilities = keras.layers.Dense(num_classes + 1, activation="softmax", name="frame_probabilities")(x)
    return keras.Model(inputs, probabilities, name=f"{cell}_speech_recognizer")


def output_frames(frames: Any, conv_strides: Sequence[Sequence[int]]) -> tf.Tensor:
    """Output frames of `build_speech_recognizer` for `frames` input frames ("same" padding: ceil division).

    Example:

    >>> from rnnpipe.models.ctc import output_frames
    >>> output_frames([9, 10, 1], ((2, 2), (1, 2))).numpy().tolist()
    [5, 5, 1]
    """
    frames = tf.cast(frames, tf.int32)
    for time_stride, _ in _check_strides("conv_strides", conv_strides):
        frames = (frames + time_stride - 1) // time_stride
    return frames
