"""Attention of a query sequence over a value sequence: Bahdanau (additive) and Luong (multiplicative).

Both layers take `query` `[batch, Tq, dq]` and `value` `[batch, Tv, dv]` (the values are also the keys, as in
the encoder-decoder papers) and return `(context, weights)`: `context` `[batch, Tq, dv]` is the
weighted sum of the values for each query step and `weights` `[batch, Tq, Tv]` are the attention
weights, returned because they are what one inspects or plots.

Masks come either explicitly, `mask=[query_mask, value_mask]` (either may be None), or from Keras masks on
the inputs (e.g. `Embedding(mask_zero=True)` or an rnnpipe recurrent layer upstream), which Keras passes to
the `query_mask` / `value_mask` call arguments. A masked value position gets weight exactly 0; a masked
query row gets zero weights and a zero context, so padding never leaks into what follows. The query mask is
propagated to both outputs.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import initializers, ops

from ._validation import check_bool, check_choice, check_positive_int

__all__ = ["SCORES", "AdditiveAttention", "MultiplicativeAttention"]

SCORES = ("dot", "general", "concat")


class _Attention(keras.layers.Layer):
    """Masking, softmax and weighted sum shared by the attention layers; subclasses compute raw scores."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.supports_masking = True

    def _scores(self, query: Any, value: Any) -> Any:
        """Unnormalised scores `[batch, Tq, Tv]`."""
        raise NotImplementedError

    def call(
        self,
        query: Any,
        value: Any,
        mask: Any = None,
        query_mask: Any = None,
        value_mask: Any = None,
    ) -> tuple[Any, Any]:
        if mask is not None:
            if not isinstance(mask, (list, tuple)) or len(mask) != 2:
                raise ValueError(
                    "Argument `mask` must be a list [query_mask, value_mask] (either may be None). "
                    "Received: "
                    + (
                        f"{type(mask).__name__} of length {len(mask)}"
                        if isinstance(mask, (list, tuple))
                        else f"a single {type(mask).__name__} of shape {tuple(getattr(mask, 'shape', ()))}"
                    )
                )
            query_mask, value_mask = mask
        scores = self._scores(query, value)
        if value_mask is not None:
            valid = ops.expand_dims(ops.cast(value_mask, "bool"), axis=1)
            # A finite stand-in for -inf: a row whose values are all masked must not become NaN in the
            # softmax; it is zeroed just below anyway.
            lowest = -1e9 if scores.dtype in ("float32", "float64") else -3e4
            scores = ops.where(valid, scores, ops.cast(lowest, scores.dtype))
        weights = ops.softmax(scores, axis=-1)
        if value_mask is not None:
            # Exact zeros, also in a row whose values are all masked (the softmax made it uniform).
            weights = ops.where(valid, weights, ops.zeros_like(weights))
        if query_mask is not None:
            weights = weights * ops.expand_dims(ops.cast(query_mask, weights.dtype), axis=-1)
        return ops.matmul(weights, value), weights

    def compute_mask(self, query: Any, previous_mask: Any = None) -> list[Any]:
        # `previous_mask` is the explicit `mask` list if one was passed, else the query's Keras mask.
        query_mask = previous_mask[0] if isinstance(previous_mask, (list, tuple)) else previous_mask
        return [query_mask, query_mask]

    def compute_output_shape(
        self, query_shape: tuple[int | None, ...], value_shape: tuple[int | None, ...], *args: Any, **kwargs: Any
    ) -> tuple[tuple[int | None, ...], tuple[int | None, ...]]:
        batch, query_steps = query_shape[0], query_shape[1]
        return (batch, query_steps, value_shape[-1]), (batch, query_steps, value_shape[1])


def _feature_dim(name: str, shape: tuple[int | None, ...]) -> int:
    if len(shape) != 3 or shape[-1] is None:
        raise ValueError(
            f"Expected `{name}` of shape [batch, time, features] with known features. Received: {name}.shape={shape}"
        )
    return shape[-1]


@keras.saving.register_keras_serializable(package="rnnpipe")
class AdditiveAttention(_Attention):
    """Bahdanau (additive) attention: `score(q_i, v_j) = w . tanh(q_i W_q + v_j W_v + b)`.

    Args:
        units: positive integer, size of the hidden layer that compares query and value.
        use_bias: whether to add the bias `b` inside the tanh.
        kernel_initializer: initializer of `W_q`, `W_v` and `w`.
        bias_initializer: initializer of `b`.
        **kwargs: base `keras.layers.Layer` arguments (`name`, `dtype`, ...).

    Call arguments:
        query: `[batch, Tq, dq]` float tensor.
        value: `[batch, Tv, dv]` float tensor, attended to (keys = values).
        mask: optional list `[query_mask, value_mask]` of `[batch, Tq]` / `[batch, Tv]` booleans, False at
            padding; overrides the Keras masks of the inputs.

    Returns:
        `(context [batch, Tq, dv], weights [batch, Tq, Tv])`.

    Example:

    >>> import numpy as np
    >>> from rnnpipe.models import AdditiveAttention
    >>> query, value = np.ones((2, 3, 4), "float32"), np.ones((2, 5, 6), "float32")
    >>> value_mask = np.array([[True] * 5, [True, True, False, False, False]])
    >>> context, weights = AdditiveAttention(8)(query, value, mask=[None, value_mask])
    >>> tuple(context.shape), np.round(weights.numpy()[1, 0], 3).tolist()
    ((2, 3, 6), [0.5, 0.5, 0.0, 0.0, 0.0])
    """

    def __init__(
        self,
        units: int,
        use_bias: bool = True,
        kernel_initializer: Any = "glorot_uniform",
        bias_initializer: Any = "zeros",
        **kwargs: Any,
    ) -> None:
        units = check_positive_int("units", units)
        use_bias = check_bool("use_bias", use_bias)
        super().__init__(**kwargs)
        self.units = units
        self.use_bias = use_bias
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)

    def build(self, query_shape: tuple[int | None, ...], value_shape: tuple[int | None, ...], **_: Any) -> None:
        self.query_kernel = self.add_weight(
            shape=(_feature_dim("query", query_shape), self.units),
            name="query_kernel",
            initializer=self.kernel_initializer,
        )
        self.value_kernel = self.add_weight(
            shape=(_feature_dim("value", value_shape), self.units),
            name="value_kernel",
            initializer=self.kernel_initializer,
        )
        self.bias = (
            self.add_weight(shape=(self.units,), name="bias", initializer=self.bias_initializer)
            if self.use_bias
            else None
        )
        self.score_kernel = self.add_weight(
            shape=(self.units,), name="score_kernel", initializer=self.kernel_initializer
        )

    def _scores(self, query: Any, value: Any) -> Any:
        # Project each side once ([B, T, units]) before broadcasting to [B, Tq, Tv, units].
        projected_query = ops.matmul(query, self.query_kernel)
        projected_value = ops.matmul(value, self.value_kernel)
        hidden = ops.expand_dims(projected_query, 2) + ops.expand_dims(projected_value, 1)
        if self.use_bias:
            hidden = hidden + self.bias
        return ops.sum(ops.tanh(hidden) * self.score_kernel, axis=-1)

    def get_config(self) -> dict[str, Any]:
        config = {
            "units": self.units,
            "use_bias": self.use_bias,
            "kernel_initializer": initializers.serialize(self.kernel_initializer),
            "bias_initializer": initializers.serialize(self.bias_initializer),
        }
        return {**super().get_config(), **config}


@keras.saving.register_keras_serializable(package="rnnpipe")
class MultiplicativeAttention(_Attention):
    """Luong attention with one of the three scores of Luong et al. (2015).

    * `"dot"`:     `score(q_i, v_j) = q_i . v_j` (needs dq == dv, no weights);
    * `"general"`: `score(q_i, v_j) = q_i W v_j` with `W` `[dq, dv]`;
    * `"concat"`:  `score(q_i, v_j) = w . tanh(W [q_i; v_j])` with `W` `[dq + dv, units]`.

    Args:
        score: one of `"dot"`, `"general"`, `"concat"`.
        units: hidden size of the `"concat"` score (ignored by the others); `None` means dv.
        kernel_initializer: initializer of the score weights.
        **kwargs: base `keras.layers.Layer` arguments (`name`, `dtype`, ...).

    Call arguments and returns: as in `AdditiveAttention`.

    Example:

    >>> import numpy as np
    >>> from rnnpipe.models import MultiplicativeAttention
    >>> query = np.array([[[1.0, 0.0]]], "float32")
    >>> value = np.array([[[1.0, 0.0], [0.0, 1.0]]], "float32")
    >>> context, weights = MultiplicativeAttention("dot")(query, value)
    >>> [round(float(w), 4) for w in weights.numpy().ravel()]  # softmax([1, 0])
    [0.7311, 0.2689]
    """

    def __init__(
        self,
        score: str = "dot",
        units: int | None = None,
        kernel_initializer: Any = "glorot_uniform",
        **kwargs: Any,
    ) -> None:
        score = check_choice("score", score, SCORES)
        if units is not None:
            units = check_positive_int("units", units)
        super().__init__(**kwargs)
        self.score = score
        self.units = units
        self.kernel_initializer = initializers.get(kernel_initializer)

    def build(self, query_shape: tuple[int | None, ...], value_shape: tuple[int | None, ...], **_: Any) -> None:
        query_dim, value_dim = _feature_dim("query", query_shape), _feature_dim("value", value_shape)
        if self.score == "dot" and query_dim != value_dim:
            raise ValueError(
                "The 'dot' score needs query and value of the same feature size. "
                f"Received: query features={query_dim}, value features={value_dim}"
            )
        if self.score == "general":
            self.kernel = self.add_weight(
                shape=(query_dim, value_dim), name="kernel", initializer=self.kernel_initializer
            )
        elif self.score == "concat":
            units = self.units or value_dim
            # W [q; v] split into its query and value blocks, so each side is projected once.
            self.query_kernel = self.add_weight(
                shape=(query_dim, units), name="query_kernel", initializer=self.kernel_initializer
            )
            self.value_kernel = self.add_weight(
                shape=(value_dim, units), name="value_kernel", initializer=self.kernel_initializer
            )
            self.score_kernel = self.add_weight(
                shape=(units,), name="score_kernel", initializer=self.kernel_initializer
            )

    def _scores(self, query: Any, value: Any) -> Any:
        if self.score == "dot":
            return ops.matmul(query, ops.transpose(value, (0, 2, 1)))
        if self.score == "general":
            return ops.matmul(ops.matmul(query, self.kernel), ops.transpose(value, (0, 2, 1)))
        hidden = ops.expand_dims(ops.matmul(query, self.query_kernel), 2) + ops.expand_dims(
            ops.matmul(value, self.value_kernel), 1
        )
        return ops.sum(ops.tanh(hidden) * self.score_kernel, axis=-1)

    def get_config(self) -> dict[str, Any]:
        config = {
            "score": self.score,
            "units": self.units,
            "kernel_initializer": initializers.serialize(self.kernel_initializer),
        }
        return {**super().get_config(), **config}
