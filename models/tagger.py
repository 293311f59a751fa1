"""Sequence tagger: one label per token (part-of-speech tags, named-entity tags, ...).

Words are embedded; a character-level recurrent encoder adds a representation
built from each word's spelling, which is what the tagger has to go on for a
word it never saw in training (suffixes carry much of a word's class in
inflected languages). Stacked (bi)directional recurrent layers then read the
sentence and a softmax predicts a tag per token.
"""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf

from ._stack import CELL_TYPES, check_stack_arguments, recurrent_layer, recurrent_stack
from ._validation import (
    check_bool,
    check_choice,
    check_int_at_least,
    check_positive_int,
    check_rate,
)

__all__ = ["CharacterEncoder", "WordDropout", "build_sequence_tagger"]


@keras.saving.register_keras_serializable(package="rnnpipe")
class CharacterEncoder(keras.layers.Layer):
    """Encodes every token of a sentence from its characters.

    Input: int ids `[batch, time, chars]`, 0 = padding (a padded token is all
    zeros). Each token's characters are embedded and read by a recurrent layer
    (forwards and backwards when `bidirectional`); the token's vector is the
    last valid output of each direction. Only real tokens are run through the
    recurrent layer (padding tokens get zeros), and the character axis is
    trimmed to the longest token of the batch. Output: `[batch, time,
    units * (2 if bidirectional else 1)]`, with the mask "token has at least
    one character".

    Args:
        char_vocab_size: number of character ids including padding 0 (>= 2).
        embedding_dim: size of the character embedding.
        units: units of the recurrent layer (per direction).
        cell: `"lstm"`, `"gru"` or `"simple_rnn"` (rnnpipe's fast layers).
        bidirectional: read the characters in both directions.
        dropout: input dropout of the recurrent layer, in [0, 1).
        **kwargs: base `keras.layers.Layer` arguments (`name`, `dtype`, ...).

    Example:

    >>> import numpy as np
    >>> from rnnpipe.models.tagger import CharacterEncoder
    >>> chars = np.array([[[3, 4, 0], [5, 0, 0], [0, 0, 0]]])  # 2 tokens + padding
    >>> vectors = CharacterEncoder(10, embedding_dim=4, units=3)(chars)
    >>> tuple(vectors.shape), float(np.abs(vectors[0, 2]).sum())
    ((1, 3, 6), 0.0)
    """

    def __init__(
        self,
        char_vocab_size: int,
        embedding_dim: int = 16,
        units: int = 32,
        cell: str = "lstm",
        bidirectional: bool = True,
        dropout: float = 0.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.char_vocab_size = check_int_at_least("char_vocab_size", char_vocab_size, 2)
        self.embedding_dim = check_positive_int("embedding_dim", embedding_dim)
        self.units = check_positive_int("units", units)
        self.cell = check_choice("cell", cell, tuple(CELL_TYPES))
        self.bidirectional = check_bool("bidirectional", bidirectional)
        self.dropout = check_rate("dropout", dropout)
        self.supports_masking = True
        self.embedding = keras.layers.Embedding(
            self.char_vocab_size, self.embedding_dim, mask_zero=True, name="char_embedding"
        )
        self.rnn = recurrent_layer(
            cell,
            self.units,
            bidirectional=self.bidirectional,
            dropout=self.dropout,
            name=f"char_{cell}",
            bidirectional_name=f"char_bi_{cell}",
        )

    @property
    def output_dim(self) -> int:
        return self.units * (2 if self.bidirectional else 1)

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        if len(input_shape) != 3:
            raise ValueError(
                "CharacterEncoder expects character ids of shape [batch, time, chars]. "
                f"Received: input_shape={tuple(input_shape)}"
            )
        self.embedding.build((None, input_shape[-1]))
        self.rnn.build((None, input_shape[-1], self.embedding_dim))

    def call(self, chars: Any, training: bool = False) -> Any:
        chars = tf.cast(chars, "int64")
        shape = tf.shape(chars)
        flat = tf.reshape(chars, [-1, shape[2]])
        present = flat != 0
        lengths = tf.reduce_sum(tf.cast(present, "int32"), axis=1)
        # Only real tokens, and only up to the longest one: padding tokens would
        # otherwise dominate the work of a padded batch.
        rows = tf.where(lengths > 0)
        tokens = tf.gather_nd(flat, rows)[:, : tf.reduce_max(tf.concat([lengths, [1]], 0))]
        encoded = self.rnn(self.embedding(tokens), mask=tokens != 0, training=training)
        out = tf.scatter_nd(rows, encoded, tf.stack([tf.shape(flat, out_type="int64")[0], self.output_dim]))
        return tf.reshape(out, tf.concat([shape[:2], [self.output_dim]], 0))

    def compute_mask(self, chars: Any, mask: Any = None) -> Any:
        return keras.ops.any(keras.ops.not_equal(chars, 0), axis=-1)

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return (input_shape[0], input_shape[1], self.output_dim)

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "char_vocab_size": self.char_vocab_size,
            "embedding_dim": self.embedding_dim,
            "units": self.units,
            "cell": self.cell,
            "bidirectional": self.bidirectional,
            "dropout": self.dropout,
        }


@keras.saving.register_keras_serializable(package="rnnpipe")
class WordDropout(keras.layers.Layer):
    """In training, replaces each real token id by `unknown_id` with probability `rate`.

    The model so meets the unknown-word id on words it knows the tags of, and
    learns to tag from the other inputs (characters, context) what it will
    meet as unknown at test time. Padding (id 0) is never replaced; outside
    training the ids pass unchanged.

    Args:
        rate: probability of replacing a token, in [0, 1).
        unknown_id: the id that stands for an out-of-vocabulary word (>= 1).
        seed: optional integer seed.
        **kwargs: base `keras.layers.Layer` arguments.

    Example:

    >>> import numpy as np
    >>> from rnnpipe.models.tagger import WordDropout
    >>> layer = WordDropout(0.5, unknown_id=9, seed=1)
    >>> ids = np.array([[3, 4, 5, 0]])
    >>> np.asarray(layer(ids)).tolist()  # not training: unchanged
    [[3, 4, 5, 0]]
    >>> dropped = np.asarray(layer(ids, training=True))
    >>> bool(set(dropped[0, :3]) <= {3, 4, 5, 9}), int(dropped[0, 3])
    (True, 0)
    """

    def __init__(self, rate: float, unknown_id: int, seed: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.rate = check_rate("rate", rate)
        self.unknown_id = check_positive_int("unknown_id", unknown_id)
        self.seed = None if seed is None else check_int_at_least("seed", seed, 0)
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.supports_masking = True

    def call(self, ids: Any, training: bool = False) -> Any:
        if not training or self.rate == 0.0:
            return ids
        drop = keras.random.uniform(tf.shape(ids), seed=self.seed_generator) < self.rate
        return tf.where(drop & (ids != 0), tf.cast(self.unknown_id, ids.dtype), ids)

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "rate": self.rate, "unknown_id": self.unknown_id, "seed": self.seed}


def build_sequence_tagger(
    vocab_size: int,
    num_classes: int,
    *,
    char_vocab_size: int | None = None,
    max_chars: int | None = None,
    embedding_dim: int = 64,
    char_embedding_dim: int = 16,
    char_units: int = 32,
    cell: str = "lstm",
    units: int = 64,
    num_layers: int = 1,
    bidirectional: bool = True,
    dropout: float = 0.0,
    recurrent_dropout: float = 0.0,
    word_dropout: float = 0.0,
) -> keras.Model:
    """Word embedding (+ character encoder) -> stacked (bi)directional RNN -> per-token softmax.

    Inputs (a dict, or just the word ids when `char_vocab_size` is None):

    * `"words"`: int ids `[batch, time]`, 0 = padding (masked everywhere);
      the last id, `vocab_size - 1`, is the unknown-word id that
      `word_dropout` substitutes;
    * `"chars"`: int ids `[batch, time, max_chars]` of each token's
      characters, 0 = padding.

    Output: `[batch, time, num_classes]` probabilities, carrying the padding
    mask, so Keras losses and metrics skip padded tokens. Tag labels padded
    with 0 suit `keras.losses.SparseCategoricalCrossentropy(ignore_class=0)`:
    class 0 is then the padding class, never a real tag.

    Args:
        vocab_size: number of word ids including padding 0 (>= 2).
        num_classes: size of the softmax (>= 2), including a padding class 0
            if the labels use one.
        char_vocab_size: number of character ids including padding 0 (>= 2),
            or None for a words-only tagger.
        max_chars: static number of character slots per token, or None.
        embedding_dim: size of the word embedding.
        char_embedding_dim: size of the character embedding.
        char_units: units of the character encoder (per direction).
        cell: `"lstm"`, `"gru"` or `"simple_rnn"`, for both encoders.
        units: units of each sentence-level recurrent layer (per direction).
        num_layers: number of stacked sentence-level layers (>= 1).
        bidirectional: bidirectional layers (merge mode "concat"), for both
            encoders.
        dropout: dropout on the token vectors, the recurrent layers' inputs
            and before the softmax, in [0, 1).
        recurrent_dropout: recurrent dropout of the sentence-level layers.
        word_dropout: probability of replacing a word id by the unknown-word
            id in training, in [0, 1).

    Returns:
        An uncompiled `keras.Model`.

    Example:

    >>> import numpy as np
    >>> from rnnpipe.models import build_sequence_tagger
    >>> model = build_sequence_tagger(50, 5, char_vocab_size=30, embedding_dim=8,
    ...                               char_embedding_dim=4, char_units=4, units=8)
    >>> words = np.array([[4, 7, 2, 0]])
    >>> chars = np.array([[[3, 5, 0], [6, 0, 0], [7, 8, 9], [0, 0, 0]]])
    >>> probs = model({"words": words, "chars": chars})
    >>> tuple(probs.shape), bool(np.allclose(np.asarray(probs).sum(-1), 1.0, atol=1e-5))
    ((1, 4, 5), True)
    """
    vocab_size = check_int_at_least("vocab_size", vocab_size, 2)
    num_classes = check_int_at_least("num_classes", num_classes, 2)
    if char_vocab_size is not None:
        char_vocab_size = check_int_at_least("char_vocab_size", char_vocab_size, 2)
    if max_chars is not None:
        max_chars = check_positive_int("max_chars", max_chars)
    embedding_dim = check_positive_int("embedding_dim", embedding_dim)
    char_embedding_dim = check_positive_int("char_embedding_dim", char_embedding_dim)
    char_units = check_positive_int("char_units", char_units)
    cell, units, num_layers, bidirectional, dropout, recurrent_dropout = check_stack_arguments(
        cell, units, num_layers, bidirectional, dropout, recurrent_dropout
    )
    word_dropout = check_rate("word_dropout", word_dropout)

    words = keras.Input(shape=(None,), dtype="int64", name="words")
    ids = WordDropout(word_dropout, unknown_id=vocab_size - 1, name="word_dropout")(words) if word_dropout else words
    x = keras.layers.Embedding(vocab_size, embedding_dim, mask_zero=True, name="word_embedding")(ids)
    inputs: Any = words
    if char_vocab_size is not None:
        chars = keras.Input(shape=(None, max_chars), dtype="int64", name="chars")
        spelled = CharacterEncoder(
            char_vocab_size, char_embedding_dim, char_units, cell, bidirectional, dropout, name="char_encoder"
        )(chars)
        x = keras.layers.Concatenate(name="word_and_chars")([x, spelled])
        inputs = {"words": words, "chars": chars}
    if dropout > 0.0:
        x = keras.layers.Dropout(dropout, name="token_dropout")(x)
    for rnn in recurrent_stack(
        cell, units, num_layers, bidirectional=bidirectional, dropout=dropout, recurrent_dropout=recurrent_dropout
    ):
        x = rnn(x)
    if dropout > 0.0:
        x = keras.layers.Dropout(dropout, name="dropout")(x)
    probabilities = keras.layers.Dense(num_classes, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, probabilities, name=f"{cell}_sequence_tagger")
