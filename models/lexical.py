"""A discrete translation lexicon added to a decoder's logits through its attention (Arthur et al., 2016,
"Incorporating Discrete Translation Lexicons into Neural Machine Translation", the "bias" method).

At each target step the attention weights `a_j` over the source tokens `x_j` mix the lexicon's rows into
one distribution over target tokens, `p_lex = sum_j a_j * table[x_j]`, and the layer returns
`logits + log(p_lex + epsilon)`. Where the attended source tokens have a confident translation, that
target token gets up to `log(1 / epsilon)` nats more than the others; a source token with no entries
(an all-zero row) shifts every logit by the same amount, which the softmax ignores.

The table is a weight that training leaves alone: a small parallel corpus teaches the network word order and
agreement long before it learns rare word translations, which co-occurrence counts give at once.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import tensorflow as tf

from ._validation import check_int_at_least, check_open_interval

__all__ = ["LexicalBias", "dice_lexicon"]


@keras.saving.register_keras_serializable(package="rnnpipe")
class LexicalBias(keras.layers.Layer):
    """Adds `log(sum_j a_j * table[x_j] + epsilon)` to target logits (see the module docstring).

    Called on `(logits [batch, T, target_vocab_size], attention [batch, T, S], source [batch, S] ids)`, it
    returns the biased logits (float32). Set the table with `set_table` (rows: source ids, columns: target
    ids, each row a distribution or all zeros); until then it is all zeros and the layer changes nothing.

    Args:
        source_vocab_size: rows of the table, the number of source ids including padding 0 (>= 1).
        target_vocab_size: columns of the table, the number of target ids (>= 1).
        epsilon: floor added to the lexical probability, in (0, 1): the largest bias is `log(1 / epsilon)`.

    Example:

    >>> import numpy as np
    >>> from rnnpipe.models import LexicalBias
    >>> layer = LexicalBias(3, 4, epsilon=0.01)
    >>> layer.set_table(np.array([[0, 0, 0, 0], [0, 0, 1, 0], [0, 0.5, 0, 0.5]], "float32"))
    >>> logits = np.zeros((1, 1, 4), "float32")
    >>> out = layer((logits, np.array([[[1.0, 0.0]]], "float32"), np.array([[1, 2]])))
    >>> int(np.argmax(out[0, 0]))  # the attended source id 1 translates to target id 2
    2
    """

    def __init__(self, source_vocab_size: int, target_vocab_size: int, epsilon: float = 1e-3,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.source_vocab_size = check_int_at_least("source_vocab_size", source_vocab_size, 1)
        self.target_vocab_size = check_int_at_least("target_vocab_size", target_vocab_size, 1)
        self.epsilon = check_open_interval("epsilon", epsilon, 0.0, 1.0)
        self.supports_masking = True  # the logits' mask (target padding) passes through
        self.table = self.add_weight(shape=(self.source_vocab_size, self.target_vocab_size), initializer="zeros",
                                     trainable=False, dtype="float32", name="table")

    def set_table(self, table: Any) -> None:
        """Replaces the lexicon: `[source_vocab_size, target_vocab_size]`, rows summing to 1 or 0."""
        table = np.asarray(table, dtype=np.float32)
        expected = (self.source_vocab_size, self.target_vocab_size)
        if table.shape != expected:
            raise ValueError(f"Expected a lexicon table of shape {expected}. Received: shape {table.shape}")
        sums = table.sum(axis=1)
        if np.any(table < 0) or not np.all(np.isclose(sums, 1.0, atol=1e-3) | (sums == 0)):
            raise ValueError("Expected every row of the lexicon table to be a distribution (non-negative, "
                             f"summing to 1) or all zeros. Received: row sums from {sums.min():g} to {sums.max():g}")
        self.table.assign(table)

    def call(self, inputs: Any) -> tf.Tensor:
        logits, attention, source = inputs
        rows = tf.gather(self.table, tf.cast(source, tf.int32))  # [batch, S, target vocabulary]
        lexical = tf.einsum("bts,bsv->btv", tf.cast(attention, tf.float32), rows)
        return tf.cast(logits, tf.float32) + tf.math.log(lexical + self.epsilon)

    def compute_mask(self, inputs: Any, mask: Any = None) -> Any:
        return mask[0] if isinstance(mask, (list, tuple)) else mask

    def compute_output_shape(self, input_shape: Any) -> tuple:
        return tuple(input_shape[0])

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "source_vocab_size": self.source_vocab_size,
                "target_vocab_size": self.target_vocab_size, "epsilon": self.epsilon}


def dice_lexicon(joint: np.ndarray, source_counts: np.ndarray, target_counts: np.ndarray, *, top_k: int = 10,
                 min_joint: float = 2.0) -> np.ndarray:
    """A lexicon table from sentence co-occurrence counts: each source row keeps its `top_k` target ids by
    the Dice coefficient `2 c(s, t) / (c(s) + c(t))` among those seen together at least `min_joint` times,
    normalised to sum to 1 (rows with none stay 0).

    Args:
        joint: `[S, T]` sentence pairs in which source id s and target id t both occur.
        source_counts: `[S]` sentence pairs in which each source id occurs.
        target_counts: `[T]` the same for target ids.

    Example:

    >>> import numpy as np
    >>> table = dice_lexicon(np.array([[3.0, 0.0], [2.0, 2.0]]), np.array([3.0, 4.0]), np.array([5.0, 2.0]))
    >>> [[round(float(p), 3) for p in row] for row in table]
    [[1.0, 0.0], [0.4, 0.6]]
    """
    joint = np.asarray(joint, np.float64)
    dice = 2 * joint / np.maximum(np.asarray(source_counts, np.float64)[:, None]
                                  + np.asarray(target_counts, np.float64)[None, :], 1.0)
    dice[joint < min_joint] = 0.0
    if 0 < top_k < dice.shape[1]:
        cut = -np.partition(-dice, top_k - 1, axis=1)[:, top_k - 1 : top_k]  # each row's k-th largest
        dice[dice < cut] = 0.0
    sums = dice.sum(axis=1, keepdims=True)
    return np.where(sums > 0, dice / np.where(sums > 0, sums, 1.0), 0.0).astype(np.float32)
