"""A discrete translation lexicon added to a decoder's logits through its attention (Arthur et al., 2016,
"Incorporating Discrete Translation Lexicons into Neural Machine Translation", the "bias" method).

At each target step the attention weights `a_j` over the source tokens `x_j` mix the lexicon's rows into
one distribution over target tokens, `p_lex = sum_j a_j * table[x_j]`, and the layer returns
`logits + log(p_lex + epsilon)`. Where the attended source tokens have a confident translation, that
target token gets up to `log(1 / epsilon)` nats more than the others; a source token with no entries
(an all-zero row) shifts every logit by the same amount, which the softmax ignores.

The table is a weight that training leaves alone: a small parallel corpus teaches the network word order and
agreement long before it learns rare word translations, which a word-alignment model of the same pairs gives at
once. `ibm1_expected_counts` and `normalize_rows` are the EM steps of IBM Model 1, the usual such model, and
`keep_top_k` trims its table to the likeliest translations per source id.

The same table can also teach the attention (`alignment_weight`, guided alignment): in training, the attention of
each target step is pulled towards the source tokens the table says translate the token that step predicts, so
the lexicon is mixed in by the words being translated sooner than the outputs' loss alone would arrange.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import tensorflow as tf

from ._validation import check_int_at_least, check_non_negative_float, check_open_interval, check_positive_int

__all__ = ["LexicalBias", "ibm1_expected_counts", "keep_top_k", "normalize_rows"]


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
        alignment_weight: in training, when called with the teacher-forced target ids too, add this weight
            times a guided-alignment loss (Chen et al., 2016): the cross-entropy of the attention against the
            table's posterior over the source tokens for the token the step predicts,
            `table[x_j, y] / sum_k table[x_k, y]` (IBM Model 1's alignment of `y`). Steps whose token no source
            token's row gives any probability are left out. 0 (the default) adds nothing.

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
                 alignment_weight: float = 0.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.source_vocab_size = check_int_at_least("source_vocab_size", source_vocab_size, 1)
        self.target_vocab_size = check_int_at_least("target_vocab_size", target_vocab_size, 1)
        self.epsilon = check_open_interval("epsilon", epsilon, 0.0, 1.0)
        self.alignment_weight = check_non_negative_float("alignment_weight", alignment_weight)
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

    def call(self, inputs: Any, training: Any = None) -> tf.Tensor:
        """`inputs`: `(logits, attention, source)`, or with `target_in` (the teacher-forced target ids
        `[batch, T]`) fourth for the alignment loss."""
        logits, attention, source, *target_in = inputs
        source = tf.cast(source, tf.int32)
        attention = tf.cast(attention, tf.float32)
        rows = tf.gather(self.table, source)  # [batch, S, target vocabulary]
        if training and self.alignment_weight > 0 and target_in:
            self.add_loss(self.alignment_weight * self._alignment_loss(attention, source, rows, target_in[0]))
        lexical = tf.einsum("bts,bsv->btv", attention, rows)
        return tf.cast(logits, tf.float32) + tf.math.log(lexical + self.epsilon)

    @staticmethod
    def _alignment_loss(attention: tf.Tensor, source: tf.Tensor, rows: tf.Tensor, target_in: Any) -> tf.Tensor:
        # Step t predicts the next teacher-forced token; the last step (the end token) is left out.
        target_in = tf.cast(target_in, tf.int32)
        predicted = tf.pad(target_in[:, 1:], [[0, 0], [0, 1]])
        p = tf.gather(rows, predicted, axis=2, batch_dims=1)  # [batch, S, T]: table[x_j, y_t]
        p = tf.transpose(p, [0, 2, 1]) * tf.cast(source > 0, tf.float32)[:, None, :]
        total = tf.reduce_sum(p, axis=-1)
        guided = tf.cast((total > 1e-6) & (predicted > 0), tf.float32)
        posterior = p / tf.maximum(total, 1e-12)[..., None]
        cross_entropy = -tf.reduce_sum(posterior * tf.math.log(attention + 1e-9), axis=-1)
        return tf.reduce_sum(cross_entropy * guided) / tf.maximum(tf.reduce_sum(guided), 1.0)

    def compute_mask(self, inputs: Any, mask: Any = None) -> Any:
        return mask[0] if isinstance(mask, (list, tuple)) else mask

    def compute_output_shape(self, input_shape: Any) -> tuple:
        return tuple(input_shape[0])

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "source_vocab_size": self.source_vocab_size,
                "target_vocab_size": self.target_vocab_size, "epsilon": self.epsilon,
                "alignment_weight": self.alignment_weight}


def ibm1_expected_counts(table: np.ndarray, pairs: Any) -> np.ndarray:
    """One E-step of IBM Model 1 (Brown et al., 1993): the expected number of times each source id
    translates to each target id, given the translation probabilities `table[s, t] = p(t | s)`.

    Every target token of a pair is aligned to one of its source tokens or to "no source word", which is row
    0 (padding in the ids, never a real token), in proportion to `table`. `table` may be `None` for the
    uniform start. Sum the counts over the corpus and `normalize_rows` them for the next `table`.

    Args:
        table: `[S, T]` probabilities, or None (uniform).
        pairs: `(source ids, target ids)` integer sequences; 0s (padding) are skipped.

    Example:

    >>> import numpy as np
    >>> pairs = [([3], [5]), ([3, 4], [5, 6])]
    >>> table = None
    >>> for _ in range(10):
    ...     table = normalize_rows(ibm1_expected_counts(table, pairs))
    >>> int(table[3].argmax()), int(table[4].argmax())  # 4 -> 6 is all that explains 6
    (5, 6)
    """
    pairs = [(np.asarray(s).ravel(), np.asarray(t).ravel()) for s, t in pairs]
    rows = max([int(s.max(initial=0)) + 1 for s, _ in pairs] + [0 if table is None else table.shape[0]])
    cols = max([int(t.max(initial=0)) + 1 for _, t in pairs] + [0 if table is None else table.shape[1]])
    counts, probabilities = np.zeros((rows, cols)), np.ones((rows, cols))
    if table is not None:  # ids the table has not seen get no probability
        probabilities[:] = 0.0
        probabilities[: table.shape[0], : table.shape[1]] = table
    for source, target in pairs:
        source = np.concatenate([[0], source[source > 0]])  # row 0: no source word
        target = target[target > 0]
        share = probabilities[source[:, None], target[None, :]]
        share = share / np.maximum(share.sum(axis=0, keepdims=True), 1e-300)
        np.add.at(counts, (source[:, None], target[None, :]), share)
    return counts


def normalize_rows(counts: np.ndarray) -> np.ndarray:
    """Each row divided by its sum (all-zero rows stay 0): counts -> conditional probabilities."""
    counts = np.asarray(counts, np.float64)
    sums = counts.sum(axis=1, keepdims=True)
    return np.where(sums > 0, counts / np.where(sums > 0, sums, 1.0), 0.0)


def keep_top_k(table: np.ndarray, top_k: int) -> np.ndarray:
    """Each row's `top_k` largest entries renormalized to sum to 1; the rest 0 (float32)."""
    top_k = check_positive_int("top_k", top_k)  # 0 or less would keep every entry, silently
    table = np.array(table, np.float64)
    if top_k < table.shape[1]:
        cut = -np.partition(-table, top_k - 1, axis=1)[:, top_k - 1 : top_k]
        table[table < cut] = 0.0
    return normalize_rows(table).astype(np.float32)
