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
# IBM Model 1 translation probabilities p(target piece | source piece) on the train split, for
# models.LexicalBias: `source_id target_id probability` lines, the LEXICON_KEEP likeliest targets a source.
IBM1_LEXICON, IBM1_ITERATIONS, LEXICON_KEEP = "piece_lexicon_ibm1.tsv", 5, 20
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
            return write_asset(self, learn_vocabulary(dict(counts), self.vocab_size, self.min_count))

        return (batches
                | "Count" >> beam.Map(count)
                | "Sum" >> beam.CombineGlobally(lambda counters: sum(counters, collections.Counter()))
                | "Learn" >> beam.Map(write))


class LearnIbm1Lexicon(tft_beam.experimental.PTransformAnalyzer):
    """tf.Transform analyzer: batches of (source ids, target ids), 0-padded -> the path of a file of IBM
    Model 1 translation probabilities (see IBM1_LEXICON).

    Each EM iteration is a Beam stage: every batch's expected counts under the last table (a side input),
    combined, then normalized; so it scales out like the other analyzers.
    """

    def __init__(self, filename: str, iterations: int) -> None:
        super().__init__()
        self.filename, self.iterations = filename, iterations

    def expand(self, batches: beam.PCollection) -> beam.PCollection:
        from rnnpipe.models import ibm1_expected_counts, normalize_rows

        pairs = batches | "Pairs" >> beam.Map(lambda batch: list(zip(batch[0], batch[1], strict=True)))
        table = batches.pipeline | "Uniform" >> beam.Create([None])  # ibm1_expected_counts' uniform start
        for i in range(self.iterations):
            counts = pairs | f"Count{i}" >> beam.Map(lambda p, t: ibm1_expected_counts(t, p),
                                                       beam.pvalue.AsSingleton(table))
            table = (counts
                     | f"Sum{i}" >> beam.CombineGlobally(_add_matrices) | f"Normalize{i}" >> beam.Map(normalize_rows))
        return table | "Write" >> beam.Map(self._write)

    def _write(self, table: np.ndarray) -> np.ndarray:
        table = np.array(table)
        table[0] = 0.0  # "no source word": padding, never attended
        rows = []
        for s in np.nonzero(table.sum(axis=1))[0]:
            for t in np.argsort(-table[s])[:LEXICON_KEEP]:
                if table[s, t] > 0:
                    rows.append(f"{s}\t{t}\t{table[s, t]:.6g}")
        return write_asset(self, rows)


def write_asset(analyzer: tft_beam.experimental.PTransformAnalyzer, lines: list[str]) -> np.ndarray:
    """Writes ``lines`` to the analyzer's file (``analyzer.filename``) in its temporary directory, from which
    tf.Transform copies it into the transform graph's assets under the same name; returns the path."""
    folder = Path(analyzer.base_temp_dir) / f"{type(analyzer).__name__}-{os.getpid()}-{id(analyzer)}"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / analyzer.filename
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return np.array(str(path).encode())


def _add_matrices(parts: Any) -> np.ndarray:
    parts = list(parts)
    if not parts:
        return np.zeros((1, 1))
    out = np.zeros((max(p.shape[0] for p in parts), max(p.shape[1] for p in parts)))
    for p in parts:
        out[: p.shape[0], : p.shape[1]] += p
    return out


def read_lexicon(path: Any, source_size: int, target_size: int) -> np.ndarray:
    """An IBM1_LEXICON file as a dense ``[source_size, target_size]`` table (ids past the sizes dropped)."""
    table = np.zeros((source_size, target_size))
    data = np.loadtxt(path, dtype=np.float64, delimiter="\t", ndmin=2).reshape(-1, 3)
    s, t = data[:, 0].astype(np.int64), data[:, 1].astype(np.int64)
    inside = (s < source_size) & (t < target_size)
    table[s[inside], t[inside]] = data[inside, 2]
    return table


def _asset_file(inputs: list[tf.Tensor], analyzer: tft_beam.experimental.PTransformAnalyzer) -> tf.Tensor:
    """The path, an asset of the transform graph, of the file ``analyzer`` writes from ``inputs``."""
    return tft.experimental.ptransform_analyzer(
        inputs=inputs, ptransform=analyzer, output_dtypes=[tf.string], output_shapes=[[]],
        output_asset_default_values=[analyzer.filename.encode()], name=analyzer.filename.split(".")[0])[0]


def ibm1_lexicon_file(source: tf.RaggedTensor, target: tf.RaggedTensor) -> tf.Tensor:
    """The path (an asset of the transform graph) of the train split's IBM Model 1 piece lexicon."""
    return _asset_file([source.to_tensor(), target.to_tensor()], LearnIbm1Lexicon(IBM1_LEXICON, IBM1_ITERATIONS))


def vocabulary_file(words: tf.RaggedTensor, filename: str, vocab_size: int, min_count: int) -> tf.Tensor:
    """The path (an asset of the transform graph) of a WordPiece vocabulary learnt on ``words``."""
    return _asset_file([words.flat_values], LearnWordpiece(filename, vocab_size, min_count))


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
        ibm1_lexicon_file(out[SOURCE_IDS], target)
        rows = target.nrows()
        start = tf.RaggedTensor.from_tensor(tf.fill([rows, 1], tf.constant(START_ID, tf.int64)))
        end = tf.RaggedTensor.from_tensor(tf.fill([rows, 1], tf.constant(END_ID, tf.int64)))
        out[TARGET_IN] = tf.concat([start, target], axis=1)
        out[TARGET_OUT] = tf.concat([target, end], axis=1)
    return out

# Checked when the pipeline is built (Transform), so a bad value names its config key before Beam starts.
preprocessing_fn.config_params = {key: Param(int, min=1) for key in (
    "source_vocab_size", "target_vocab_size", "min_count", "max_source_tokens", "max_target_tokens")}
