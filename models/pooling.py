"""Mask-aware pooling over the time axis.

Padded steps must not leak into a sequence summary: a mean over a padded
batch would otherwise be diluted by the padding, and a max could pick a
padded step's output. Both layers consume the Keras mask and produce none.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

__all__ = ["MaskedMaxPooling1D", "MaskedMeanPooling1D"]


class _MaskedTimePooling(keras.layers.Layer):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.supports_masking = True
        self.input_spec = keras.layers.InputSpec(ndim=3)

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return (input_shape[0], input_shape[2])

    def compute_mask(self, inputs: Any, mask: Any = None) -> None:
        # The time axis is gone, so is the mask.
        return None


@keras.saving.register_keras_serializable(package="rnnpipe")
class MaskedMeanPooling1D(_MaskedTimePooling):
    """Mean over the time axis of `[batch, time, features]`, ignoring masked steps.

    A sequence with no valid step pools to zeros.

    Args:
        **kwargs: base `keras.layers.Layer` arguments (`name`, `dtype`, ...).

    Example:

    >>> import numpy as np
    >>> from rnnpipe.models import MaskedMeanPooling1D
    >>> x = np.array([[[1.0], [3.0], [100.0]]], "float32")
    >>> mask = np.array([[True, True, False]])
    >>> MaskedMeanPooling1D()(x, mask=mask).numpy().tolist()
    [[2.0]]
    """

    def call(self, inputs: Any, mask: Any = None) -> Any:
        if mask is None:
            return ops.mean(inputs, axis=1)
        weights = ops.expand_dims(ops.cast(mask, inputs.dtype), -1)
        total = ops.sum(inputs * weights, axis=1)
        # max(count, 1) turns an all-padding row into 0 / 1 = 0, not NaN.
        count = ops.maximum(ops.sum(weights, axis=1), ops.ones_like(weights[:, 0]))
        return total / count


@keras.saving.register_keras_serializable(package="rnnpipe")
class MaskedMaxPooling1D(_MaskedTimePooling):
    """Max over the time axis of `[batch, time, features]`, ignoring masked steps.

    A sequence with no valid step pools to zeros.

    Args:
        **kwargs: base `keras.layers.Layer` arguments (`name`, `dtype`, ...).

    Example:

    >>> import numpy as np
    >>> from rnnpipe.models import MaskedMaxPooling1D
    >>> x = np.array([[[1.0], [3.0], [100.0]]], "float32")
    >>> mask = np.array([[True, True, False]])
    >>> MaskedMaxPooling1D()(x, mask=mask).numpy().tolist()
    [[3.0]]
    """

    def call(self, inputs: Any, mask: Any = None) -> Any:
        if mask is None:
            return ops.max(inputs, axis=1)
        keep = ops.expand_dims(ops.cast(mask, "bool"), -1)
        # Masked steps get -inf so they can never win the max; an all-padding
        # row would then be -inf, so it is replaced by zeros.
        lowest = ops.full_like(inputs, float("-inf"))
        pooled = ops.max(ops.where(keep, inputs, lowest), axis=1)
        any_valid = ops.any(keep, axis=1)
        return ops.where(any_valid, pooled, ops.zeros_like(pooled))
