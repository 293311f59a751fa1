"""Text-generation features: a chunk of text -> character ids (Unicode code points through a vocabulary
learnt on the train split). Core TF ops only, so the same graph runs inside the serving signatures.

Two outputs: ``ids``, variable length (what the serving signatures read for any prompt), and
``window``, the same ids padded to ``chunk_chars`` (a fixed-length dense feature, so training batches
have a static length that truncated BPTT cuts into segments).
"""

from __future__ import annotations

import tensorflow as tf
import tensorflow_transform as tft

from rnnpipe.dsl import Param

TEXT_KEY = "text"
IDS_KEY = "ids"
WINDOW_KEY = "window"
VOCABULARY = "chars"
PAD_ID = 0


def code_points(text: tf.Tensor) -> tf.RaggedTensor:
    """[batch] strings -> ragged [batch, chars] int64 Unicode code points (invalid UTF-8 -> U+FFFD)."""
    return tf.cast(tf.strings.unicode_decode(text, "UTF-8", errors="replace"), tf.int64)


def preprocessing_fn(inputs: dict, *, chunk_chars: int = 1000, min_frequency: int = 1) -> dict:
    # Code points rather than one-character strings: tft writes vocabularies one entry per line, which a
    # newline character would break. Ids start at 1 (0 pads); one out-of-vocabulary id after the vocabulary.
    # tft warns that a threshold of 1 is a no-op and asks for None instead.
    ids = tft.compute_and_apply_vocabulary(code_points(inputs[TEXT_KEY]),
                                           frequency_threshold=min_frequency if min_frequency > 1 else None,
                                           num_oov_buckets=1, vocab_filename=VOCABULARY) + 1
    return {IDS_KEY: ids, WINDOW_KEY: ids[:, :chunk_chars].to_tensor(default_value=PAD_ID, shape=[None, chunk_chars])}

# Checked before the run's first step executes (Transform.check), so a bad value names its config key.
preprocessing_fn.config_params = {key: Param(int, min=1) for key in ("chunk_chars", "min_frequency")}
