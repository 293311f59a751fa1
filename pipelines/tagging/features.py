"""Tagging features: raw sentence -> word ids, per-token character ids (and tag ids when tags are given).

The sentence is the ``text`` feature split on whitespace, in training and in serving alike (the reader's
``text`` is the tokens joined by spaces), so the tokens the model tags are the tokens the client sent.
Words are case-folded with digits mapped to 0 for the word vocabulary; the characters keep their case
(a capital is evidence of a proper noun). Everything here is core TensorFlow and TF-Text ops, which
TF Serving links.
"""

from __future__ import annotations

import tensorflow as tf
import tensorflow_text as tf_text
import tensorflow_transform as tft

from rnnpipe.dsl import Param

TEXT_KEY = "text"
TAGS_KEY = "tags"
WORDS_KEY = "words"
CHARS_KEY = "chars"
TAG_IDS_KEY = "tag_ids"
WORD_VOCABULARY = "words"
CHAR_VOCABULARY = "chars"
TAG_VOCABULARY = "tags"
# Character slots per token: a longer token keeps its first and last MAX_CHARS / 2 characters
# (prefix: capitalization and stem; suffix: inflection). A constant, since serving reshapes by it.
MAX_CHARS = 16
# Tokens per sentence the model sees; the serving outputs are padded to this width.
MAX_TOKENS = 128


def split_tokens(text: tf.Tensor) -> tf.RaggedTensor:
    """[batch] sentences -> [batch, (tokens)], split on runs of whitespace."""
    return tf.strings.split(text)[:, :MAX_TOKENS]


def word_keys(tokens: tf.RaggedTensor) -> tf.RaggedTensor:
    """What the word vocabulary is built over: case-folded tokens with every digit as 0."""
    folded = tf.ragged.map_flat_values(tf_text.case_fold_utf8, tokens)
    return tf.ragged.map_flat_values(tf.strings.regex_replace, folded, r"\p{Nd}", "0")


def token_characters(tokens: tf.Tensor) -> tf.RaggedTensor:
    """[n] tokens -> [n, (chars <= MAX_CHARS)] characters: all of a short token, the two ends of a long one."""
    chars = tf.strings.unicode_split(tokens, "UTF-8")
    head = MAX_CHARS // 2
    return tf.concat([chars[:, :head], chars[:, head:][:, -(MAX_CHARS - head):]], axis=1)


def _ragged(x: tf.Tensor | tf.SparseTensor | tf.RaggedTensor) -> tf.RaggedTensor:
    if isinstance(x, tf.SparseTensor):
        return tf.RaggedTensor.from_sparse(x)
    if isinstance(x, tf.RaggedTensor):
        return x
    return tf.RaggedTensor.from_tensor(x)


def preprocessing_fn(inputs: dict, *, vocab_size: int = 30000, min_frequency: int = 2, char_vocab_size: int = 300,
                     min_char_frequency: int = 2) -> dict:
    """Word ids (0 = padding, then the vocabulary, then one unknown-word id), character ids per token
    flattened to ``tokens * MAX_CHARS`` values (0 = padding), and tag ids (0 = padding or a tag the train
    split never had) when the input has tags."""
    tokens = split_tokens(inputs[TEXT_KEY])
    # Words seen fewer than min_frequency times map to the unknown id: the model meets it in training
    # and learns to tag such words from their characters and their context.
    words = tft.compute_and_apply_vocabulary(word_keys(tokens), top_k=vocab_size, frequency_threshold=min_frequency,
                                             num_oov_buckets=1, vocab_filename=WORD_VOCABULARY,
                                             name="word_vocabulary") + 1
    chars = token_characters(tokens.flat_values)
    char_ids = tft.compute_and_apply_vocabulary(chars, top_k=char_vocab_size, frequency_threshold=min_char_frequency,
                                                num_oov_buckets=1, vocab_filename=CHAR_VOCABULARY,
                                                name="char_vocabulary") + 1
    per_token = char_ids.to_tensor(default_value=0, shape=[None, MAX_CHARS])
    out = {WORDS_KEY: words,
           CHARS_KEY: tf.RaggedTensor.from_row_splits(per_token, tokens.row_splits).merge_dims(1, 2)}
    if TAGS_KEY in inputs:
        tags = _ragged(inputs[TAGS_KEY])[:, :MAX_TOKENS]
        out[TAG_IDS_KEY] = tft.compute_and_apply_vocabulary(tags, default_value=-1,
                                                            vocab_filename=TAG_VOCABULARY, name="tag_vocabulary") + 1
    return out

# Checked before the run's first step executes (Transform.check), so a bad value names its config key.
preprocessing_fn.config_params = {key: Param(int, min=1) for key in (
    "vocab_size", "min_frequency", "char_vocab_size", "min_char_frequency")}
