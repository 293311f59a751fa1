"""A word's spelling as features: a character CNN per token.

A word embedding gives every word outside the vocabulary the same vector.
Reading the characters too lets a model relate "unwatchable" to "watch" and
"-able", or "sooo" to "so" (Kim et al., 2016; Ma and Hovy, 2016).
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from ._validation import check_int_at_least, check_positive_int

__all__ = ["CharacterCNN"]


@keras.saving.register_keras_serializable(package="rnnpipe")
class CharacterCNN(keras.layers.Layer):
    """Character ids of each token -> one vector per token.

    Input `[batch, time, chars]` of character ids, 0 padding the characters
    after a token's end (and whole padded tokens). Each character is embedded,
    a 1-D convolution with `"same"` padding reads `kernel_size` neighbours
    (zeros before a word's first character, the padding id's embedding after
    its last: the filters see where a word starts and ends), and the
    maximum over the token's characters is its vector, `[batch, time,
    filters]`. A token with no characters gets zeros. The layer keeps the
    incoming mask: concatenate its output with a masked word embedding.

    Args:
        num_chars: number of character ids including the padding id 0 (>= 2).
        char_dim: size of each character's embedding.
        filters: number of convolution filters, the output's last dimension.
        kernel_size: characters each filter reads at once.
        **kwargs: base `keras.layers.Layer` arguments (`name`, `dtype`, ...).

    Example:

    >>> import numpy as np
    >>> from rnnpipe.models import CharacterCNN
    >>> layer = CharacterCNN(num_chars=30, char_dim=4, filters=6)
    >>> chars = np.array([[[3, 1, 20, 0], [9, 0, 0, 0], [0, 0, 0, 0]]])
    >>> out = layer(chars).numpy()
    >>> out.shape, out[0, 2].tolist()
    ((1, 3, 6), [0.0, 0.0, 0.0, 0.0, 0.0, 0.0])
    """

    def __init__(self, num_chars: int, char_dim: int = 16, filters: int = 64, kernel_size: int = 3,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.num_chars = check_int_at_least("num_chars", num_chars, 2)
        self.char_dim = check_positive_int("char_dim", char_dim)
        self.filters = check_positive_int("filters", filters)
        self.kernel_size = check_positive_int("kernel_size", kernel_size)
        self.embedding = keras.layers.Embedding(self.num_chars, self.char_dim, name="char_embedding")
        self.conv = keras.layers.Conv1D(self.filters, self.kernel_size, padding="same", activation="tanh",
                                        name="char_conv")
        self.input_spec = keras.layers.InputSpec(ndim=3)
        self.supports_masking = True

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        self.embedding.build((None, input_shape[2]))
        self.conv.build((None, input_shape[2], self.char_dim))

    def call(self, inputs: Any, mask: Any = None) -> Any:
        ids = ops.cast(inputs, "int32")
        shape = ops.shape(ids)
        # One row per token: the convolution runs along each token's characters.
        flat = ops.reshape(ids, (shape[0] * shape[1], shape[2]))
        features = self.conv(self.embedding(flat))
        present = ops.expand_dims(ops.not_equal(flat, 0), -1)
        # tanh lies in (-1, 1): -2 below every real value, so padding never wins the maximum.
        pooled = ops.max(ops.where(present, features, ops.full_like(features, -2.0)), axis=1)
        pooled = ops.where(ops.any(present, axis=1), pooled, ops.zeros_like(pooled))
        return ops.reshape(pooled, (shape[0], shape[1], self.filters))

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return (input_shape[0], input_shape[1], self.filters)

    def compute_mask(self, inputs: Any, mask: Any = None) -> Any:
        return mask

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "num_chars": self.num_chars, "char_dim": self.char_dim,
                "filters": self.filters, "kernel_size": self.kernel_size}
