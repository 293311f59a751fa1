"""A CRNN for text lines of any width: CNN -> feature columns as timesteps -> stacked (bi)RNN -> CTC frames.

Unlike `build_ctc_recognizer` (2x2 pooling everywhere, every frame valid), this builder pools the height
in every block but the width only where asked, and it reads each line's true width: frames made from
padding are masked in the recurrent stack and emit the CTC blank with probability 1, so a line padded
into a wider batch gets exactly the loss and the transcript it gets alone (`CTCLoss` over all frames
then equals the loss over the valid ones).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import keras
import tensorflow as tf

from ._stack import check_stack_arguments, recurrent_stack
from ._validation import check_positive_int

__all__ = ["BlankPaddedFrames", "FrameMask", "LineAugmentation", "ZeroPaddedColumns", "build_crnn"]


def _check_pooling(width_pooling: Any, blocks: int) -> tuple[int, ...]:
    if not isinstance(width_pooling, (tuple, list)) or len(width_pooling) != blocks or any(
            p not in (1, 2) or isinstance(p, bool) for p in width_pooling):
        raise ValueError(f"Argument `width_pooling` must have one entry of 1 or 2 per conv block ({blocks}). "
                         f"Received: width_pooling={width_pooling!r}")
    return tuple(int(p) for p in width_pooling)


@keras.saving.register_keras_serializable(package="rnnpipe")
class FrameMask(keras.layers.Layer):
    """The valid frames of each line: `ceil(width / width_stride)` of them, from image widths in pixels.

    Args:
        width_stride: pixels per frame (the product of the CNN's width poolings, "same" padding).

    Call arguments:
        frames: `[batch, time, features]`, the frames the CNN made (only their count is read).
        widths: `[batch]` true widths of the images in pixels, before any padding.

    Returns:
        A bool mask `[batch, time]`.

    Example:

    >>> import numpy as np
    >>> from rnnpipe.models.crnn import FrameMask
    >>> FrameMask(4)(np.zeros((2, 3, 1), "float32"), np.array([12, 5])).numpy().tolist()
    [[True, True, True], [True, True, False]]
    """

    def __init__(self, width_stride: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.width_stride = check_positive_int("width_stride", width_stride)

    def call(self, frames: Any, widths: Any) -> tf.Tensor:
        widths = tf.cast(tf.reshape(widths, [-1]), tf.int32)
        lengths = (widths + self.width_stride - 1) // self.width_stride
        return tf.sequence_mask(lengths, tf.shape(frames)[1])

    def compute_output_spec(self, frames: Any, widths: Any) -> keras.KerasTensor:
        return keras.KerasTensor(tuple(frames.shape[:2]), dtype="bool")

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "width_stride": self.width_stride}


@keras.saving.register_keras_serializable(package="rnnpipe")
class ZeroPaddedColumns(keras.layers.Layer):
    """Feature maps whose columns past each image's true width are zero.

    A convolution next to the padding reads the line's own pixels, so padding columns would carry ink
    into the next block; zeroed after every block, a line reads the same alone and padded into a wider
    batch (where the convolution's own "same" padding is zero too).

    Args:
        width_stride: input pixels per column of these feature maps (the width poolings so far).

    Call arguments:
        maps: `[batch, height, columns, channels]`.
        widths: `[batch]` true widths of the input images in pixels.

    Example:

    >>> import numpy as np
    >>> from rnnpipe.models.crnn import ZeroPaddedColumns
    >>> ZeroPaddedColumns(2)(np.ones((1, 1, 3, 1), "float32"), np.array([3]))[0, 0, :, 0].numpy().tolist()
    [1.0, 1.0, 0.0]
    """

    def __init__(self, width_stride: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.width_stride = check_positive_int("width_stride", width_stride)

    def call(self, maps: Any, widths: Any) -> tf.Tensor:
        widths = tf.cast(tf.reshape(widths, [-1]), tf.int32)
        columns = (widths + self.width_stride - 1) // self.width_stride
        keep = tf.sequence_mask(columns, tf.shape(maps)[2], dtype=maps.dtype)
        return maps * keep[:, None, :, None]

    def compute_output_shape(self, maps_shape: Any, widths_shape: Any) -> tuple:
        return tuple(maps_shape)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "width_stride": self.width_stride}


@keras.saving.register_keras_serializable(package="rnnpipe")
class BlankPaddedFrames(keras.layers.Layer):
    """Per-frame probabilities whose masked frames are one-hot on the CTC blank (the last class).

    Call arguments:
        probabilities: `[batch, time, classes]`.
        valid: bool `[batch, time]`, True for the frames of the image, False for padding.

    Example:

    >>> import numpy as np
    >>> from rnnpipe.models.crnn import BlankPaddedFrames
    >>> p = np.full((1, 2, 3), 1 / 3, "float32")
    >>> BlankPaddedFrames()(p, np.array([[True, False]])).numpy()[0, 1].tolist()
    [0.0, 0.0, 1.0]
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # The mask ends here: it is folded into the probabilities, and CTC scores whole lines, not frames.
        self.supports_masking = True

    def compute_mask(self, inputs: Any, previous_mask: Any = None) -> None:
        return None

    def call(self, probabilities: Any, valid: Any) -> tf.Tensor:
        blank = tf.one_hot(tf.shape(probabilities)[-1] - 1, tf.shape(probabilities)[-1], dtype=probabilities.dtype)
        return tf.where(tf.cast(valid, tf.bool)[..., None], probabilities, blank)

    def compute_output_shape(self, probabilities_shape: Any, valid_shape: Any) -> tuple:
        return tuple(probabilities_shape)


@keras.saving.register_keras_serializable(package="rnnpipe")
class LineAugmentation(keras.layers.Layer):
    """Training-time variation of line images: a random vertical shift per line and Gaussian pixel noise.

    Shifted rows repeat the edge row (a line's margin is blank, so the background stays clean). Outside
    training the layer returns its input. It draws with TensorFlow's random ops rather than a Keras
    `SeedGenerator`, whose state variable a serving `tf.function` would capture.

    Args:
        shift: the largest shift, as a fraction of the height, in [0, 1).
        noise: standard deviation of the added noise, in [0, 1).

    Call arguments:
        images: `[batch, height, width, channels]`.
        training: whether to vary the images.

    Example:

    >>> import numpy as np
    >>> from rnnpipe.models.crnn import LineAugmentation
    >>> x = np.arange(8, dtype="float32").reshape(1, 8, 1, 1)
    >>> bool((LineAugmentation(0.25, 0.0)(x, training=False).numpy() == x).all())
    True
    >>> sorted(set(LineAugmentation(0.25, 0.0)(x, training=True).numpy().ravel()) - set(range(8)))
    []
    """

    def __init__(self, shift: float = 0.0, noise: float = 0.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        for name, value in (("shift", shift), ("noise", noise)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
                raise ValueError(f"Argument `{name}` must be a float in [0, 1). Received: {name}={value!r}")
        self.shift, self.noise = float(shift), float(noise)

    def call(self, images: Any, training: bool | None = None) -> tf.Tensor:
        if not training:
            return images
        shape = tf.shape(images)
        height = shape[1]
        if self.shift:
            most = tf.cast(tf.round(self.shift * tf.cast(height, tf.float32)), tf.int32)
            offset = tf.random.uniform([shape[0], 1], -most, most + 1, dtype=tf.int32)
            rows = tf.clip_by_value(tf.range(height)[None, :] - offset, 0, height - 1)
            images = tf.gather(images, rows, axis=1, batch_dims=1)
        if self.noise:
            images = images + tf.random.normal(shape, stddev=self.noise, dtype=images.dtype)
        return images

    def compute_output_shape(self, input_shape: Any) -> tuple:
        return tuple(input_shape)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "shift": self.shift, "noise": self.noise}


def build_crnn(
    num_classes: int,
    *,
    height: int,
    conv_filters: Sequence[int] = (32, 64, 96),
    width_pooling: Sequence[int] = (2, 2, 1),
    cell: str = "lstm",
    units: int = 96,
    num_layers: int = 2,
    dropout: float = 0.2,
    augment_shift: float = 0.0,
    augment_noise: float = 0.0,
) -> keras.Model:
    """CRNN over line images of any width, with per-line widths for masking.

    Inputs: `{"image": [batch, height, width, 1] float, "width": [batch] int}` (`width` is each line's
    true width before padding). Each conv block is a 3x3 ReLU Conv2D, its padding columns zeroed, and a max
    pooling of 2 in height and `width_pooling[i]` in width; the pooled columns become the frames of a
    stack of rnnpipe recurrent layers, then a softmax over `num_classes` symbols plus the blank (last).

    Args:
        num_classes: real symbols (>= 1), the blank excluded.
        height: image rows (>= 2 ** len(conv_filters)).
        conv_filters: filters per conv block.
        width_pooling: 1 or 2 per conv block: how much each block narrows the width.
        cell: `"lstm"`, `"gru"` or `"simple_rnn"` (rnnpipe's fast layers).
        units: units per direction of each recurrent layer.
        num_layers: stacked bidirectional recurrent layers.
        dropout: input dropout of each recurrent layer, in [0, 1).
        augment_shift: training only: random vertical shift, as a fraction of the height (0 = off).
        augment_noise: training only: Gaussian noise added to the pixels (0 = off).

    Example:

    >>> import numpy as np
    >>> from rnnpipe.models.crnn import build_crnn
    >>> model = build_crnn(10, height=16, conv_filters=(4, 8), width_pooling=(2, 1), units=4, num_layers=1)
    >>> out = model({"image": np.zeros((2, 16, 20, 1), "float32"), "width": np.array([20, 8])})
    >>> tuple(out.shape), float(out[1, -1, -1])
    ((2, 10, 11), 1.0)
    """
    num_classes = check_positive_int("num_classes", num_classes)
    height = check_positive_int("height", height)
    if not isinstance(conv_filters, (tuple, list)) or not conv_filters:
        raise ValueError(f"Argument `conv_filters` must be a non-empty list of positive integers. "
                         f"Received: conv_filters={conv_filters!r}")
    conv_filters = tuple(check_positive_int("conv_filters", f) for f in conv_filters)
    width_pooling = _check_pooling(width_pooling, len(conv_filters))
    if height < 2 ** len(conv_filters):
        raise ValueError(f"Argument `height` must be >= {2 ** len(conv_filters)} to survive "
                         f"{len(conv_filters)} height poolings. Received: height={height}")
    cell, units, num_layers, _, dropout, _ = check_stack_arguments(cell, units, num_layers, True, dropout)

    image = keras.Input(shape=(height, None, 1), name="image")
    width = keras.Input(shape=(), dtype="int32", name="width")
    x = image
    if augment_shift or augment_noise:
        x = LineAugmentation(augment_shift, augment_noise, name="augment")(x)
    stride = 1
    for index, (filters, pool) in enumerate(zip(conv_filters, width_pooling, strict=True)):
        # No batch normalization: its statistics would count the padding columns of a batch's narrower lines.
        x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu", name=f"conv_{index}")(x)
        x = ZeroPaddedColumns(stride, name=f"zero_padding_{index}")(x, width)
        x = keras.layers.MaxPooling2D((2, pool), padding="same", name=f"pool_{index}")(x)
        stride *= pool
    pooled_height = math.ceil(height / 2 ** len(conv_filters))
    # CRNN glue: [B, H, W, C] -> [B, W, H * C], so width is time.
    x = keras.layers.Permute((2, 1, 3), name="width_first")(x)
    x = keras.layers.Reshape((-1, pooled_height * conv_filters[-1]), name="columns_to_frames")(x)
    mask = FrameMask(math.prod(width_pooling), name="frame_mask")(x, width)
    for rnn in recurrent_stack(cell, units, num_layers, bidirectional=True, dropout=dropout):
        x = rnn(x, mask=mask)
    probabilities = keras.layers.Dense(num_classes + 1, activation="softmax", name="frame_probabilities")(x)
    outputs = BlankPaddedFrames(name="blank_padding")(probabilities, mask)
    return keras.Model({"image": image, "width": width}, outputs, name=f"{cell}_crnn")
