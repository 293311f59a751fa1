"""Translation features: sentence pairs -> WordPiece ids, with one vocabulary per language learnt on the
train split inside the Transform's Beam pipeline.

Words are split off at punctuation and whitespace (``pre_tokenize``, TF ops, the same in training and
serving). Each vocabulary is learnt by ``LearnWordpiece``, a tf.Transform PTransform analyzer: Beam
counts the words of the train split, then tensorflow-text's WordPiece learner
(``wordpiece_tokenizer_learner_lib.learn``, the algorithm of its Beam tool, which the wheel does not ship)
turns the counts into a vocabulary file that tf.Transform keeps as an asset of the transform graph.
tensorflow-text's ``WordpieceTokenizer`` applies it in the graph, so the SavedModel takes plain strings.

Ids: 0 padding, 1 start, 2 end, 3 unknown piece (the reserved tokens head every vocabulary), which are
the conventions of ``rnnpipe.models.Seq2Seq``. Sources keep their first ``max_source_tokens`` pieces
(``source_length`` keeps the full count, so serving can say what it cut); the decoder input is
``[start] + target`` and the label ``target + [end]``, both cut to ``max_target_tokens + 1``.
"""

from __future__ import annotations

import collections
import os
from pathlib import Path
from typing import Any

import apache_beam as beam
import numpy as np
import tensorflow as tf
import tensorflow_text as tf_text
import tensorflow_transform as tft
import tensorflow_transform.beam as tft_beam

from rnnpipe.dsl import Param

from .data import SOURCE_KEY, TARGET_KEY

SOURCE_IDS, SOURCE_LENGTH, TARGET_IN, TARGET_OUT = "source_ids", "source_length", "target_in", "target_out"
PAD, START, END, UNK = "[PAD]", "[START]", "[END]", "[UNK]"
RESERVED = (PAD, START, END, UNK)
PAD_ID, START_ID, END_ID, UNK_ID = range(4)
JOINER = "##"
# The asset files' names: the serving signatures and the metrics find them in the SavedModel's assets/.
SOURCE_VOCABULARY, TARGET_VOCABULARY = "source_wordpiece.txt", "target_wordpiece.txt"
# Sentence co-occurrence counts of source and target pieces on the train split (model.py turns them into
# the lexicon of models.LexicalBias): `source_id target_id pairs` lines for the pieces seen together in at
# least MIN_COOCCURRENCE pairs (once is chance, and most of the file), then `source_id -1 pairs` and
# `-1 target_id pairs` for each language's own counts.
COOCCURRENCE = "piece_cooccurrence.tsv"
MIN_COOCCURRENCE = 2
MAX_BYTES_PER_WORD = 100
LEARNER_WORDS, LEARNER_ROUNDS = 5000, 2


def pre_tokenize(text: tf.Tensor) -> tf.RaggedTensor:
    """[batch] strings -> [batch, (words)]: NFC-normalized, every punctuation mark a word of its own."""
    text = tf_text.normalize_utf8(text, "NFC")
    return tf.strings.split(tf.strings.regex_replace(text, r"(\pP)", r" \1 "))


def wordpiece_tokenizer(vocabulary_path: Any) -> tf_text.WordpieceTokenizer:
    """tensorflow-text's WordPiece tokenizer over a vocabulary file (one piece per line, ids = line numbers)."""
    table = tf.lookup.StaticVocabularyTable(
        tf.lookup.TextFileInitializer(vocabulary_path, tf.string, tf.lookup.TextFileIndex.WHOLE_LINE,
                                      tf.int64, tf.lookup.TextFileIndex.LINE_NUMBER), num_oov_buckets=1)
    return tf_text.WordpieceTokenizer(table, suffix_indicator=JOINER, max_bytes_per_word=MAX_BYTES_PER_WORD,
                                      token_out_type=tf.int64, unknown_token=UNK)


def tokenize(tokenizer: tf_text.WordpieceTokenizer, text: tf.Tensor) -> tf.RaggedTensor:
    """[batch] strings -> [batch, (pieces)] int64 ids."""
    return tokenizer.tokenize(pre_tokenize(text)).merge_dims(1, 2)


def learn_vocabulary(word_counts: dict[str, int], vocab_size: int, min_count: int) -> list[str]:
    """tensorflow-text's WordPiece learner on word counts: the reserved tokens, then about ``vocab_size``
    pieces (every character of a word seen ``min_count`` times is among them, so few pieces are unknown)."""
    from tensorflow_text.tools.wordpiece_vocab import wordpiece_tokenizer_learner_lib as learner

    # The learner is plain Python: shaping the pieces by the most frequent words only, in two refinement
    # rounds, takes seconds instead of minutes on the default data (the rarer words' characters still join).
    vocabulary = learner.learn(word_counts, vocab_size=vocab_size, reserved_tokens=list(RESERVED),
                               lower_thresh=min_count, upper_thresh=max([min_count + 1, *word_counts.values()]),
                               num_iterations=LEARNER_ROUNDS, max_input_tokens=LEARNER_WORDS, joiner=JOINER)
    return [*RESERVED, *(piece for piece in vocabulary if piece not in RESERVED)]


class LearnWordpiece(tft_beam.experimental.PTransformAnalyzer):
    """tf.Transform analyzer: batches of words -> the path of a WordPiece vocabulary file (one element).

    The counting is Beam's (a combine over all batches, so it scales out like any analyzer); the learner
    then runs once on the counts, and the file goes to the analyzer's temporary directory, from which
    tf.Transform copies it into the transform graph's assets under the same name.
    """

    def __init__(self, filename: str, vocab_size: int, min_count: int) -> None:
        super().__init__()
        self.filename, self.vocab_size, self.min_count = filename, vocab_size, min_count

    def expand(self, batches: beam.PCollection) -> beam.PCollection:
        def count(batch: tuple[np.ndarray, ...]) -> collections.Counter:
            return collections.Counter(w.decode("utf-8", "replace") for w in np.ravel(batch[0]))

        def write(counts: collections.Counter) -> np.ndarray:
            pieces = learn_vocabulary(dict(counts), self.vocab_size, self.min_count)
            folder = Path(self.base_temp_dir) / f"wordpiece-{os.getpid()}-{id(self)}"
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / self.filename
            path.write_text("".join(p + "\n" for p in pieces), encoding="utf-8")
            return np.array(str(path).encode())

        return (batches
                | "Count" >> beam.Map(count)
                | "Sum" >> beam.CombineGlobally(lambda counters: sum(counters, collections.Counter()))
                | "Learn" >> beam.Map(write))


class CountCooccurrence(tft_beam.experimental.PTransformAnalyzer):
    """tf.Transform analyzer: batches of (source ids, target ids), 0-padded -> the path of a file counting, for
    every pair of a source and a target piece, the sentence pairs in which both occur (see COOCCURRENCE).

    A Beam combine of one dense count matrix per batch (a few MB at the default vocabulary sizes).
    """

    def __init__(self, filename: str) -> None:
        super().__init__()
        self.filename = filename

    def expand(self, batches: beam.PCollection) -> beam.PCollection:
        return (batches
                | "Count" >> beam.Map(lambda batch: cooccurrence_counts(batch[0], batch[1]))
                | "Sum" >> beam.CombineGlobally(_add_counts)
                | "Write" >> beam.Map(self._write))

    def _write(self, counts: tuple[np.ndarray, np.ndarray, np.ndarray]) -> np.ndarray:
        joint, source_counts, target_counts = counts
        folder = Path(self.base_temp_dir) / f"cooccurrence-{os.getpid()}-{id(self)}"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / self.filename
        rows = [f"{s}\t{t}\t{int(joint[s, t])}" for s, t in zip(*np.nonzero(joint >= MIN_COOCCURRENCE), strict=True)]
        rows += [f"{s}\t-1\t{int(c)}" for s, c in enumerate(source_counts) if c]
        rows += [f"-1\t{t}\t{int(c)}" for t, c in enumerate(target_counts) if c]
        path.write_text("".join(row + "\n" for row in rows), encoding="utf-8")
        return np.array(str(path).encode())


def cooccurrence_counts(source: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """0-padded id matrices ``[n, S]``, ``[n, T]`` -> (joint ``[max source id + 1, max target id + 1]``, source
    counts, target counts), each counting sentence pairs (an id repeated in a sentence counts once)."""
    def present(ids: np.ndarray) -> np.ndarray:
        ids = np.asarray(ids, np.int64).reshape(len(ids), -1)
        out = np.zeros((len(ids), int(ids.max(initial=0)) + 1), np.float32)
        out[np.repeat(np.arange(len(ids)), ids.shape[1]), ids.ravel()] = 1.0
        out[:, 0] = 0.0  # padding
        return out

    source_present, target_present = present(source), present(target)
    return source_present.T @ target_present, source_present.sum(axis=0), target_present.sum(axis=0)


def _add_counts(parts: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    parts = list(parts)
    if not parts:  # CombineGlobally's default on an empty split
        return np.zeros((1, 1), np.float32), np.zeros(1, np.float32), np.zeros(1, np.float32)
    rows = max(p[0].shape[0] for p in parts)
    cols = max(p[0].shape[1] for p in parts)
    joint, source_counts, target_counts = np.zeros((rows, cols)), np.zeros(rows), np.zeros(cols)
    for j, s, t in parts:
        joint[: j.shape[0], : j.shape[1]] += j
        source_counts[: len(s)] += s
        target_counts[: len(t)] += t
    return joint, source_counts, target_counts


def read_cooccurrence(path: Any, source_size: int, target_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The counts of a COOCCURRENCE file as (joint ``[source_size, target_size]``, source counts, target
    counts); ids at or past the sizes are dropped."""
    joint, source_counts = np.zeros((source_size, target_size)), np.zeros(source_size)
    target_counts = np.zeros(target_size)
    s, t, c = np.loadtxt(path, dtype=np.int64, delimiter="\t", ndmin=2).reshape(-1, 3).T
    pair = (0 <= s) & (s < source_size) & (0 <= t) & (t < target_size)
    joint[s[pair], t[pair]] = c[pair]
    own = (t == -1) & (0 <= s) & (s < source_size)
    source_counts[s[own]] = c[own]
    own = (s == -1) & (0 <= t) & (t < target_size)
    target_counts[t[own]] = c[own]
    return joint, source_counts, target_counts


def cooccurrence_file(source: tf.RaggedTensor, target: tf.RaggedTensor) -> tf.Tensor:
    """The path (an asset of the transform graph) of the train split's piece co-occurrence counts."""
    return tft.experimental.ptransform_analyzer(
        inputs=[source.to_tensor(), target.to_tensor()], ptransform=CountCooccurrence(COOCCURRENCE),
        output_dtypes=[tf.string], output_shapes=[[]], output_asset_default_values=[COOCCURRENCE.encode()],
        name=COOCCURRENCE.split(".")[0])[0]


def vocabulary_file(words: tf.RaggedTensor, filename: str, vocab_size: int, min_count: int) -> tf.Tensor:
    """The path (an asset of the transform graph) of a WordPiece vocabulary learnt on ``words``."""
    return tft.experimental.ptransform_analyzer(
        inputs=[words.flat_values], ptransform=LearnWordpiece(filename, vocab_size, min_count),
        output_dtypes=[tf.string], output_shapes=[[]], output_asset_default_values=[filename.encode()],
        name=filename.split(".")[0])[0]


def preprocessing_fn(inputs: dict, *, source_vocab_size: int = 8000, target_vocab_size: int = 8000,
                     min_count: int = 2, max_source_tokens: int = 48, max_target_tokens: int = 48) -> dict:
    source_vocabulary = vocabulary_file(pre_tokenize(inputs[SOURCE_KEY]), SOURCE_VOCABULARY, source_vocab_size,
                                        min_count)
    source = tokenize(wordpiece_tokenizer(source_vocabulary), inputs[SOURCE_KEY])
    out = {SOURCE_IDS: source[:, :max_source_tokens], SOURCE_LENGTH: source.row_lengths()}
    if TARGET_KEY in inputs:  # serving sends sources only
        target_vocabulary = vocabulary_file(pre_tokenize(inputs[TARGET_KEY]), TARGET_VOCABULARY,
                                            target_vocab_size, min_count)
        target = tokenize(wordpiece_tokenizer(target_vocabulary), inputs[TARGET_KEY])[:, :max_target_tokens]
        cooccurrence_file(out[SOURCE_IDS], target)
        rows = target.nrows()
        start = tf.RaggedTensor.from_tensor(tf.fill([rows, 1], tf.constant(START_ID, tf.int64)))
        end = tf.RaggedTensor.from_tensor(tf.fill([rows, 1], tf.constant(END_ID, tf.int64)))
        out[TARGET_IN] = tf.concat([start, target], axis=1)
        out[TARGET_OUT] = tf.concat([target, end], axis=1)
    return out

# Checked when the pipeline is built (Transform), so a bad value names its config key before Beam starts.
preprocessing_fn.config_params = {key: Param(int, min=1) for key in (
    "source_vocab_size", "target_vocab_size", "min_count", "max_source_tokens", "max_target_tokens")}
