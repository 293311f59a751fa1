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


def preprocessing_fn(inputs: dict, *, vocab_size: int = 20000, min_frequency: int = 2, max_tokens: int = 100) -> dict:
    tokens = tokenize(inputs[TEXT_KEY])[:, :max_tokens]
    # Ids start at 1: 0 is padding for the model's masked embedding; one OOV bucket after the vocabulary.
    ids = tft.compute_and_apply_vocabulary(tokens, top_k=vocab_size, frequency_threshold=min_frequency,
                                           num_oov_buckets=1, vocab_filename=VOCABULARY) + 1
    out = {TOKENS_KEY: ids}
    if LABEL_KEY in inputs:
        out[LABEL_KEY] = inputs[LABEL_KEY]
    return out

# Checked before the run's first step executes (Transform.check), so a bad value names its config key.
preprocessing_fn.config_params = {key: Param(int, min=1) for key in ("vocab_size", "min_frequency", "max_tokens")}
