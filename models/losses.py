"""Label smoothing for integer labels, which Keras' `SparseCategoricalCrossentropy` lacks.

Label smoothing (Szegedy et al., 2016) trains against `(1 - s) * one_hot + s / classes` instead of the one-hot
target: the model is kept from driving its largest logit ever further from the rest, which regularizes
classifiers and is the usual setting (s = 0.1) for neural machine translation (Vaswani et al., 2017). Keras has
it for one-hot and binary labels; this module adds it for integer labels with `ignore_class` (padding), so a
sequence model trained with `SparseCategoricalCrossentropy(ignore_class=0)` can use it unchanged, and
`with_label_smoothing` swaps it in for whichever cross-entropy a model trains with.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops
from keras.src.backend.common.masking import get_keras_mask, set_keras_mask

from ._validation import check_bool, check_rate

__all__ = ["SparseCategoricalCrossentropyWithSmoothing", "with_label_smoothing"]


@keras.saving.register_keras_serializable(package="rnnpipe")
class SparseCategoricalCrossentropyWithSmoothing(keras.losses.Loss):
    """Cross-entropy of integer labels against the label-smoothed target distribution.

    The loss of one position is `(1 - label_smoothing) * -log p[label] + label_smoothing * mean_k(-log p[k])`,
    the cross-entropy with the target `(1 - label_smoothing) * one_hot(label) + label_smoothing / classes`.
    With `label_smoothing=0` it is Keras' `SparseCategoricalCrossentropy` with the same arguments, and, like
    it, positions whose label is `ignore_class` count for nothing: not in the sum, nor in the mean's divisor.

    Args:
        label_smoothing: the probability mass spread evenly over all classes, in [0, 1).
        from_logits: whether `y_pred` holds logits rather than probabilities.
        ignore_class: a label value (e.g. 0 for padding) whose positions are left out; `None` keeps all.
        reduction: Keras loss reduction.
        name: loss name.
        dtype: dtype of the loss computation.

    Example:

    >>> import numpy as np
    >>> from rnnpipe.models import SparseCategoricalCrossentropyWithSmoothing
    >>> logits = np.array([[[4.0, 0.0, 0.0], [0.0, 4.0, 0.0], [9.0, -9.0, 0.0]]], "float32")
    >>> labels = np.array([[0, 1, 0]])  # the last position is padding
    >>> plain = SparseCategoricalCrossentropyWithSmoothing(0.0, from_logits=True, ignore_class=0)
    >>> smoothed = SparseCategoricalCrossentropyWithSmoothing(0.1, from_logits=True, ignore_class=0)
    >>> float(plain(labels, logits)) < float(smoothed(labels, logits))  # confident and right costs more
    True
    """

    def __init__(
        self,
        label_smoothing: float = 0.1,
        from_logits: bool = False,
        ignore_class: int | None = None,
        reduction: str = "sum_over_batch_size",
        name: str = "sparse_categorical_crossentropy_with_smoothing",
        dtype: Any = None,
    ) -> None:
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.label_smoothing = check_rate("label_smoothing", label_smoothing)
        self.from_logits = check_bool("from_logits", from_logits)
        if ignore_class is not None and (isinstance(ignore_class, bool) or not isinstance(ignore_class, int)):
            raise ValueError(f"Argument `ignore_class` must be an int or None. Received: ignore_class={ignore_class!r}")
        self.ignore_class = ignore_class

    def call(self, y_true: Any, y_pred: Any) -> Any:
        # Keras' own loss gives -log p[label], zero and masked out where the label is ignore_class.
        nll = keras.losses.sparse_categorical_crossentropy(
            y_true, y_pred, from_logits=self.from_logits, ignore_class=self.ignore_class
        )
        if not self.label_smoothing:
            return nll
        mask = get_keras_mask(nll)
        y_pred = ops.convert_to_tensor(y_pred)
        if self.from_logits:
            log_probs = ops.log_softmax(y_pred, axis=-1)
        else:
            probs = y_pred / ops.sum(y_pred, axis=-1, keepdims=True)
            log_probs = ops.log(ops.clip(probs, keras.config.epsilon(), 1.0 - keras.config.epsilon()))
        uniform = -ops.mean(log_probs, axis=-1)
        if mask is not None:
            uniform = ops.where(mask, uniform, ops.zeros_like(uniform))
        loss = (1.0 - self.label_smoothing) * nll + self.label_smoothing * ops.cast(uniform, nll.dtype)
        if mask is not None:
            set_keras_mask(loss, mask)  # as Keras does, so the reduction divides by the kept positions only
        return loss

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            {
                "label_smoothing": self.label_smoothing,
                "from_logits": self.from_logits,
                "ignore_class": self.ignore_class,
                "dtype": self.dtype,
            }
        )
        return config


def with_label_smoothing(loss: Any, label_smoothing: float) -> Any:
    """`loss` (a Keras loss object or name) with `label_smoothing` of the target distribution.

    `SparseCategoricalCrossentropy` becomes `SparseCategoricalCrossentropyWithSmoothing` with the same
    `from_logits` and `ignore_class`; `CategoricalCrossentropy` and `BinaryCrossentropy` get their own
    `label_smoothing` argument. `label_smoothing=0` returns `loss` as it is. Any other loss raises `ValueError`:
    smoothing is defined for cross-entropy only.

    Example:

    >>> import keras
    >>> from rnnpipe.models import with_label_smoothing
    >>> loss = with_label_smoothing(keras.losses.SparseCategoricalCrossentropy(ignore_class=0), 0.1)
    >>> type(loss).__name__, loss.ignore_class, loss.label_smoothing
    ('SparseCategoricalCrossentropyWithSmoothing', 0, 0.1)
    """
    label_smoothing = check_rate("label_smoothing", label_smoothing)
    if not label_smoothing:
        return loss
    name = loss if isinstance(loss, str) else getattr(loss, "__name__", None)  # a name or Keras' function
    resolved = _CROSS_ENTROPY[name]() if name in _CROSS_ENTROPY else loss
    if isinstance(resolved, keras.losses.SparseCategoricalCrossentropy):
        config = resolved.get_config()
        return SparseCategoricalCrossentropyWithSmoothing(
            label_smoothing, from_logits=config["from_logits"], ignore_class=config.get("ignore_class"),
            reduction=config["reduction"],
        )
    if isinstance(resolved, (SparseCategoricalCrossentropyWithSmoothing, keras.losses.CategoricalCrossentropy,
                             keras.losses.BinaryCrossentropy)):
        return type(resolved).from_config({**resolved.get_config(), "label_smoothing": label_smoothing})
    raise ValueError(
        "Label smoothing needs a cross-entropy loss (sparse categorical, categorical or binary). "
        f"Received: loss={name or getattr(loss, 'name', type(loss).__name__)!r}"
    )


# Keras' cross-entropy losses by the name (or function name) a model may be compiled with.
_CROSS_ENTROPY = {
    "sparse_categorical_crossentropy": keras.losses.SparseCategoricalCrossentropy,
    "categorical_crossentropy": keras.losses.CategoricalCrossentropy,
    "binary_crossentropy": keras.losses.BinaryCrossentropy,
}
