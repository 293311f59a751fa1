"""A learnt bias over the last axis: what a `Dense` output layer adds after its kernel, for an output whose
kernel lives elsewhere (the transposed embeddings of `keras.layers.ReversibleEmbedding`)."""

from __future__ import annotations

from typing import Any

import keras

from ._validation import check_positive_int

__all__ = ["Bias"]


@keras.saving.register_keras_serializable(package="rnnpipe")
class Bias(keras.layers.Layer):
    """Adds a trainable vector of `size` values (initially zeros) to the last axis of its input.

    Args:
        size: the last axis' length, a positive int.

    Example:

    >>> import numpy as np
    >>> from rnnpipe.models import Bias
    >>> layer = Bias(3)
    >>> layer(np.ones((2, 3), "float32")).numpy().tolist()  # zeros until trained
    [[1.0, 1.0, 1.0], [1.0, 1.0, 1.0]]
    >>> layer.set_weights([np.array([0.0, 1.0, 2.0], "float32")])
    >>> layer(np.ones((2, 3), "float32")).numpy().tolist()
    [[1.0, 2.0, 3.0], [1.0, 2.0, 3.0]]
    """

    def __init__(self, size: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.size = check_positive_int("size", size)

    def build(self, input_shape: Any) -> None:
        if input_shape[-1] is not None and input_shape[-1] != self.size:
            raise ValueError(f"Expected inputs whose last axis has size={self.size}. "
                             f"Received: input_shape={tuple(input_shape)}")
        self.bias = self.add_weight(shape=(self.size,), initializer="zeros", name="bias")

    def call(self, inputs: Any) -> Any:
        return inputs + keras.ops.cast(self.bias, inputs.dtype)

    def compute_output_shape(self, input_shape: Any) -> Any:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "size": self.size}
