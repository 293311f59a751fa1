"""Training speed of the translation model's default Seq2Seq, as the Trainer feeds it: sentence pairs in
length buckets, one Adam step a batch. The Trainer's time budget (`trainer.max_minutes`) makes a faster step
more epochs, so this is what bounds the default run's quality.

Cases, each against the translation config before this change (the baseline, measured in the same run):
  * `buckets / 2`: bucket boundaries every 2 pieces up to 64 instead of [12, 18, 24, 32, 40, 52], so a batch is
    padded to less than its bucket's widest pair;
  * `tied`: `tie_embeddings=True` as well, the logits as dot products with the 96-wide target embeddings
    instead of a 128 x 2,001 output layer.

Pairs are synthetic with the train split's lengths (English / Spanish pieces: mean 31 / 37, 95th percentile
54 / 64, cut at 64), the vocabularies its sizes (4,001 / 2,001 ids) and the lexicon a random top-10 table.
The machine is shared and noisy: the variants run in rounds, in an order that flips every round, and the
table reports the median over rounds (`--best`: the fastest) and the ratio to the baseline.

    .venv/bin/python benchmarks/seq2seq_training.py            # about 3 minutes on 2 cores
    .venv/bin/python benchmarks/seq2seq_training.py --rounds 2 # quicker, noisier
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from rnnpipe.models import build_seq2seq, keep_top_k  # noqa: E402
from rnnpipe.pipelines.translation.model import sequence_length  # noqa: E402

SOURCE_VOCAB, TARGET_VOCAB, CAP, BATCH = 4001, 2001, 64, 32
MODEL = dict(embedding_dim=96, cell="gru", units=128, bidirectional=True, dropout=0.2, attention="general",
             lexical_bias=True, guided_alignment=0.3)
BUCKETS = {"before": [12, 18, 24, 32, 40, 52], "every 2": list(range(6, CAP + 1, 2))}
CASES = {"baseline": ("before", False), "buckets / 2": ("every 2", False), "buckets / 2 + tied": ("every 2", True)}


def pairs(count: int, rng: np.random.Generator) -> list[tuple[np.ndarray, np.ndarray]]:
    """Source and target ids (the target starting with the start id 1) with the train split's lengths."""
    source_lengths = np.clip(rng.gamma(6.2, 5.0, count).round(), 3, CAP).astype(int)
    target_lengths = np.clip((source_lengths * rng.normal(1.22, 0.24, count)).round(), 3, CAP).astype(int)
    return [(rng.integers(3, SOURCE_VOCAB, s), np.concatenate([[1], rng.integers(3, TARGET_VOCAB, t - 1)]))
            for s, t in zip(source_lengths, target_lengths, strict=True)]


def dataset(examples: list, boundaries: list[int]) -> list:
    """One epoch's batches, bucketed as `components.training.make_dataset` does (by the longer side)."""
    def generate():
        for source, target in examples:
            yield {"source": source.astype("int32"), "target_in": target.astype("int32")}, \
                np.append(target[1:], 2).astype("int32")

    spec = ({"source": tf.TensorSpec([None], tf.int32), "target_in": tf.TensorSpec([None], tf.int32)},
            tf.TensorSpec([None], tf.int32))
    ds = tf.data.Dataset.from_generator(generate, output_signature=spec).bucket_by_sequence_length(
        lambda x, _: sequence_length(x), boundaries, [BATCH] * (len(boundaries) + 1))
    return list(ds)


def model(tied: bool, lexicon: np.ndarray) -> keras.Model:
    keras.utils.set_random_seed(0)
    seq2seq = build_seq2seq(SOURCE_VOCAB, TARGET_VOCAB, tie_embeddings=tied, **MODEL,
                            embeddings_initializer=keras.initializers.RandomNormal(stddev=1.0))
    seq2seq.get_layer("lexical_bias").set_table(lexicon)
    seq2seq.compile(optimizer=keras.optimizers.Adam(4e-3, global_clipnorm=1.0),
                    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=0))
    return seq2seq


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--pairs", type=int, default=8000, help="pairs a block (one pass over them)")
    parser.add_argument("--best", action="store_true", help="the fastest round instead of the median")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    examples = pairs(args.pairs, rng)
    lexicon = keep_top_k(rng.random((SOURCE_VOCAB, TARGET_VOCAB)).astype("float32") ** 8, 10)
    batches = {name: dataset(examples, boundaries) for name, boundaries in BUCKETS.items()}
    models = {tied: model(tied, lexicon) for tied in (False, True)}
    for name, (buckets, tied) in CASES.items():  # warm up: trace every batch shape once
        for x, y in batches[buckets]:
            models[tied].train_on_batch(x, y)
        padded = np.mean([x["source"].shape[1] * x["source"].shape[0] for x, _ in batches[buckets]]) / BATCH
        print(f"{name}: {len(batches[buckets])} batches, mean padded source length {padded:.1f}")
    seconds: dict[str, list[float]] = {name: [] for name in CASES}
    for round_ in range(args.rounds):
        for name in (list(CASES) if round_ % 2 == 0 else list(CASES)[::-1]):
            buckets, tied = CASES[name]
            start = time.perf_counter()
            for x, y in batches[buckets]:
                models[tied].train_on_batch(x, y)
            seconds[name].append(time.perf_counter() - start)
    pick = min if args.best else statistics.median
    base = pick(seconds["baseline"])
    print(f"\n{'case':<22} {'pairs/s':>8} {'speed-up':>9}   ({args.pairs} pairs a block, {args.rounds} rounds)")
    for name, times in seconds.items():
        print(f"{name:<22} {args.pairs / pick(times):>8.0f} {base / pick(times):>8.2f}x")


if __name__ == "__main__":
    main()
