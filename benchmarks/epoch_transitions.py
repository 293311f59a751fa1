"""Wall time of Keras epochs with tf.data autotuning on and off, measured interleaved in one process.

Keras makes a new iterator of the train and eval datasets every epoch and deletes the last one. With TF 2.21,
deleting an iterator whose dataset autotunes waits for the autotuning thread to wake from its sleep, which
lengthens as the iterator ages (to a minute): on 2 cores, each 83-s epoch of the textgen default took 141 s.
The Trainer's datasets (`components.training.make_dataset`) therefore turn autotuning off. This measures the
same pipeline shape (records shuffled, mapped with `num_parallel_calls=AUTOTUNE`, batched, prefetched) feeding
the textgen default's layer (a 512-unit GRU, BPTT segments of 50), both ways, in alternating fits, and prints
the wall and CPU seconds of each epoch and the ratio of the medians. The CPU time per epoch is the same both
ways: the difference is time the process spends waiting.

    .venv/bin/python benchmarks/epoch_transitions.py            # ~4 minutes on 2 cores
    .venv/bin/python benchmarks/epoch_transitions.py --rounds 1 # ~2 minutes

2 cores (AMD EPYC, TF 2.21, 2026-12-05), `--rounds 1 --epochs 3`: epochs after the first took 19.5 and 20.5 s
with autotuning (18.8-18.9 s CPU) and 10.4 and 10.5 s without (18.8-19.0 s CPU): 0.52x the wall time. In the
Trainer, textgen's epochs of 83 s of work took 141-152 s with autotuning.
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

from rnnpipe.models import build_language_model  # noqa: E402

VOCAB, CHARS, BATCH = 72, 1000, 64


def dataset(ids: np.ndarray, autotune: bool, seed: int) -> tf.data.Dataset:
    ds = tf.data.Dataset.from_tensor_slices(ids).shuffle(len(ids), seed=seed)
    ds = ds.map(lambda x: (x[:-1], x[1:]), num_parallel_calls=tf.data.AUTOTUNE).batch(BATCH)
    options = tf.data.Options()
    options.autotune.enabled = autotune
    return ds.prefetch(tf.data.AUTOTUNE).with_options(options)


class EpochTimes(keras.callbacks.Callback):
    def __init__(self) -> None:
        super().__init__()
        self.wall: list[float] = []
        self.cpu: list[float] = []

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._wall, self._cpu = time.perf_counter(), time.process_time()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.wall.append(time.perf_counter() - self._wall)
        self.cpu.append(time.process_time() - self._cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=2, help="fits of each kind, alternating (default 2)")
    parser.add_argument("--epochs", type=int, default=4, help="epochs a fit (default 4)")
    parser.add_argument("--batches", type=int, default=8, help="batches of 64 records of 1,000 characters an epoch")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    train = rng.integers(1, VOCAB, size=(BATCH * args.batches, CHARS + 1)).astype("int32")
    evaluation = rng.integers(1, VOCAB, size=(BATCH * 2, CHARS + 1)).astype("int32")
    model = build_language_model(VOCAB, embedding_dim=64, cell="gru", units=512, bptt=50)
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=0))
    print(f"TF {tf.__version__}, Keras {keras.__version__}, {os.cpu_count()} CPUs; {args.epochs} epochs a fit of "
          f"{args.batches} batches (textgen default's GRU)", flush=True)
    times: dict[bool, list[tuple[float, float]]] = {True: [], False: []}
    for round_index in range(args.rounds):
        for autotune in (True, False) if round_index % 2 == 0 else (False, True):
            timer = EpochTimes()
            model.fit(dataset(train, autotune, round_index), validation_data=dataset(evaluation, autotune, 0),
                      epochs=args.epochs, verbose=0, callbacks=[timer], shuffle=False)
            # The first epoch of a fit has no iterator to delete before it.
            times[autotune] += list(zip(timer.wall[1:], timer.cpu[1:], strict=True))
            print(f"  autotune {'on ' if autotune else 'off'}: epochs " + ", ".join(
                f"{w:.1f} s ({c:.1f} s CPU)" for w, c in zip(timer.wall, timer.cpu, strict=True)), flush=True)
    wall = {k: statistics.median(w for w, _ in v) for k, v in times.items()}
    cpu = {k: statistics.median(c for _, c in v) for k, v in times.items()}
    print(f"median epoch after the first: autotune on {wall[True]:.1f} s ({cpu[True]:.1f} s CPU), "
          f"off {wall[False]:.1f} s ({cpu[False]:.1f} s CPU): off/on {wall[False] / wall[True]:.2f}x the wall time")


if __name__ == "__main__":
    main()
