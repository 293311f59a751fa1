"""Builder of the token-sequence classifier used by the text applications."""

from __future__ import annotations

import keras
import numpy as np

from ._stack import CELL_TYPES, check_stack_arguments, recurrent_stack
from ._validation import (
    check_choice,
    check_int_at_least,
    check_positive_int,
)
from .characters import CharacterCNN
from .pooling import MaskedMaxPooling1D, MaskedMeanPooling1D

__all__ = ["CELL_TYPES", "POOLING_TYPES", "build_sequence_classifier"]

POOLING_TYPES = ("last", "mean", "max")


def build_sequence_classifier(
    vocab_size: int,
    num_classes: int,
    *,
    embedding_dim: int = 64,
    cell: str = "gru",
    units: int = 64,
    num_layers: int = 1,
    bidirectional: bool = True,
    dropout: float = 0.0,
    recurrent_dropout: float = 0.0,
    pooling: str = "last",
    max_length: int | None = None,
    token_features: np.ndarray | None = None,
    num_chars: int | None = None,
    char_dim: int = 16,
    char_filters: int = 64,
    char_kernel_size: int = 3,
) -> keras.Model:
    """Embedding -> stacked (bi)directional RNN -> pooling -> softmax.

    Input is int64 token ids `[batch, time]` (int32 is accepted and cast)
    where id 0 is padding: the embedding masks it, so padded steps are
    skipped by every recurrent layer and by the pooling. Output is
    `[batch, num_classes]` class probabilities.

    Args:
        vocab_size: number of token ids including the padding id 0 (>= 2).
        num_classes: number of classes (>= 2).
        embedding_dim: size of the token embedding.
        cell: one of `"gru"`, `"lstm"`, `"simple_rnn"` (rnnpipe's fast layers).
        units: units of each recurrent layer (per direction).
        num_layers: number of stacked recurrent layers (>= 1).
        bidirectional: wrap each recurrent layer in
            `keras.layers.Bidirectional` (merge mode "concat").
        dropout: input dropout of each recurrent layer and dropout before the
            output layer, in [0, 1).
        recurrent_dropout: recurrent dropout of each recurrent layer, in [0, 1).
        pooling: `"last"` (output of the last valid step; for a backward
            direction, of the first token), `"mean"` or `"max"` (over valid
            steps).
        max_length: static sequence length, or `None` for variable length.
        token_features: optional frozen per-token features of shape
            `[vocab_size, k]` (e.g. scores from a sentiment lexicon),
            concatenated to the learned embedding: prior knowledge about
            rare words that a small training set cannot teach.
        num_chars: with a number of character ids (>= 2, id 0 padding), the
            model also reads each token's characters: its input is then a
            dict, `"tokens"` `[batch, time]` and `"chars"` `[batch, time,
            chars]`, and a `CharacterCNN` vector is concatenated to each
            token's embedding, so words outside the vocabulary still carry
            their spelling. `None`: token ids only.
        char_dim: size of each character's embedding (with `num_chars`).
        char_filters: size of each token's character vector (with
            `num_chars`).
        char_kernel_size: characters each filter reads (with `num_chars`).

    Returns:
        An uncompiled `keras.Model`.

    Example:

    >>> import numpy as np
    >>> from rnnpipe.models import build_sequence_classifier
    >>> model = build_sequence_classifier(100, 3, embedding_dim=8, units=8)
    >>> probs = model(np.array([[4, 2, 9, 0, 0]]))
    >>> tuple(probs.shape), bool(abs(float(probs.numpy().sum()) - 1.0) < 1e-5)
    ((1, 3), True)
    >>> with_chars = build_sequence_classifier(100, 2, embedding_dim=8, units=8, num_chars=30)
    >>> chars = np.array([[[5, 7, 0], [9, 0, 0], [0, 0, 0]]])
    >>> tuple(with_chars({"tokens": np.array([[4, 2, 0]]), "chars": chars}).shape)
    (1, 2)
    """
    vocab_size = check_int_at_least("vocab_size", vocab_size, 2)
    num_classes = check_int_at_least("num_classes", num_classes, 2)
    embedding_dim = check_positive_int("embedding_dim", embedding_dim)
    cell, units, num_layers, bidirectional, dropout, recurrent_dropout = check_stack_arguments(
        cell, units, num_layers, bidirectional, dropout, recurrent_dropout
    )
    check_choice("pooling", pooling, POOLING_TYPES)
    if max_length is not None:
        max_length = check_positive_int("max_length", max_length)
    if token_features is not None:
        token_features = np.asarray(token_features, dtype="float32")
        if token_features.ndim != 2 or token_features.shape[0] != vocab_size:
            raise ValueError(
                f"Expected token_features of shape (vocab_size={vocab_size}, k), "
                f"received shape {token_features.shape}."
            )

    tokens = keras.Input(shape=(max_length,), dtype="int64", name="tokens")
    x = keras.layers.Embedding(vocab_size, embedding_dim, mask_zero=True, name="embedding")(
        tokens
    )
    inputs: keras.KerasTensor | dict = tokens
    if num_chars is not None:
        chars = keras.Input(shape=(max_length, None), dtype="int64", name="chars")
        inputs = {"tokens": tokens, "chars": chars}
        spelling = CharacterCNN(num_chars, char_dim, char_filters, char_kernel_size, name="characters")(chars)
        x = keras.layers.Concatenate(name="embedding_and_characters")([x, spelling])
    if token_features is not None:
        prior = keras.layers.Embedding(
            vocab_size,
            token_features.shape[1],
            mask_zero=True,
            trainable=False,
            embeddings_initializer=keras.initializers.Constant(token_features),
            name="token_features",
        )(tokens)
        x = keras.layers.Concatenate(name="embedding_and_features")([x, prior])
    for rnn in recurrent_stack(
        cell,
        units,
        num_layers,
        bidirectional=bidirectional,
        dropout=dropout,
        recurrent_dropout=recurrent_dropout,
        return_sequences=pooling != "last",
    ):
        x = rnn(x)
    if pooling == "mean":
        x = MaskedMeanPooling1D(name="mean_pool")(x)
    elif pooling == "max":
        x = MaskedMaxPooling1D(name="max_pool")(x)
    if dropout > 0.0:
        x = keras.layers.Dropout(dropout, name="dropout")(x)
    probabilities = keras.layers.Dense(num_classes, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, probabilities, name=f"{cell}_sequence_classifier")
