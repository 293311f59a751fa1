"""Sentiment features: raw sentence -> normalized, tokenized, vocabulary ids (tensorflow-text ops,
so the same graph runs in TF Serving, which links TF-Text)."""

from __future__ import annotations

import tensorflow as tf
import tensorflow_text as tf_text
import tensorflow_transform as tft

from rnnpipe.dsl import Param

TEXT_KEY = "text"
LABEL_KEY = "label"
TOKENS_KEY = "token_ids"
CHARS_KEY = "char_ids"
# Character ids: a code point below 255 is itself + 1 (0 pads); every other one shares the last id.
NUM_CHARS = 257
VOCABULARY = "tokens"
# Split on whitespace and around every punctuation mark or symbol, keeping those as tokens:
# "!", "?" and ":)" carry sentiment in these short texts; apostrophes stay inside words ("don't").
SYMBOL = r"[^\s\p{L}\p{M}\p{N}']"


def tokenize(text: tf.Tensor) -> tf.RaggedTensor:
    text = tf_text.normalize_utf8(text, "NFKC")
    text = tf_text.case_fold_utf8(text)
    text = tf.strings.regex_replace(text, r"&amp;", "&")
    text = tf.strings.regex_replace(text, r"''|``", " \" ")
    text = tf.strings.regex_replace(text, r"https?://\S+", " url ")
    text = tf.strings.regex_replace(text, r"@\w+", " @user ")
    return tf_text.regex_split(text, r"\s+|" + SYMBOL, SYMBOL)


def char_ids(tokens: tf.RaggedTensor, max_chars: int) -> tf.RaggedTensor:
    """Each token's first ``max_chars`` characters as ids, zero-padded to ``max_chars``, one row per text:
    ``[batch, (tokens * max_chars)]``."""
    points = tf.strings.unicode_decode(tokens.values, "UTF-8", errors="replace")
    ids = tf.ragged.map_flat_values(lambda p: tf.where(p < NUM_CHARS - 2, p + 1, NUM_CHARS - 1), points)
    per_token = tf.cast(ids.to_tensor(shape=[None, max_chars]), tf.int64)
    return tf.RaggedTensor.from_row_splits(per_token, tokens.row_splits).merge_dims(1, 2)


def preprocessing_fn(inputs: dict, *, vocab_size: int = 20000, min_frequency: int = 2, max_tokens: int = 100,
                     max_chars: int = 0) -> dict:
    tokens = tokenize(inputs[TEXT_KEY])[:, :max_tokens]
    # Ids start at 1: 0 is padding for the model's masked embedding; one OOV bucket after the vocabulary.
    ids = tft.compute_and_apply_vocabulary(tokens, top_k=vocab_size, frequency_threshold=min_frequency,
                                           num_oov_buckets=1, vocab_filename=VOCABULARY) + 1
    out = {TOKENS_KEY: ids}
    if max_chars:
        out[CHARS_KEY] = char_ids(tokens, max_chars)
    if LABEL_KEY in inputs:
        out[LABEL_KEY] = inputs[LABEL_KEY]
    return out

# Checked before the run's first step executes (Transform.check), so a bad value names its config key.
preprocessing_fn.config_params = {
    **{key: Param(int, min=1) for key in ("vocab_size", "min_frequency", "max_tokens")},
    "max_chars": Param(int, min=0),
}
