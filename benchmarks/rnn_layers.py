"""Speed of rnnpipe's LSTM/GRU layers against Keras' built-in ones, measured interleaved in one process.

The machine is shared and noisy, so absolute numbers drift by tens of percent from minute to minute. Every
measurement is therefore taken in rounds: within a round each case runs a short block with the built-in layer
and one with the rnnpipe layer (the order flips every round), plus a block of a 2048x2048 float32 matmul as
the machine's reference speed. The table reports medians over rounds (`--best`: the fastest round) and the ratio
rnnpipe/built-in, which is what stays comparable between runs.

Cases (batch 64, input dim 64, 128 units unless said otherwise):
  * train:    sequences/s of one step (forward + backward + Adam update) of `Input -> layer -> Dense(10)`;
  * infer:    sequences/s of the same model's forward pass;
  * latency:  p50 milliseconds of one batch-1 call, T=100, of `Embedding -> GRU(128) -> Dense(2)` through a
              plain `tf.function` and through `tf.function(jit_compile=True)` (XLA).

GFLOP/s counts only the matrix multiplications of the recurrent layer (training counted as 3x the forward
pass), so the "% mm" column says how far each case is from the machine's dense matmul speed.

    .venv/bin/python benchmarks/rnn_layers.py            # ~3 minutes on 2 cores
    .venv/bin/python benchmarks/rnn_layers.py --quick    # ~1.5 minutes, T=100 only, fewer rounds
    .venv/bin/python benchmarks/rnn_layers.py --best     # fastest block instead of the median (busy machine)

Cases (continued): `train BiLSTM/BiGRU T=100` wrap each layer in `keras.layers.Bidirectional`. A limit probe at
the end times the LSTM's recurrent matmul chained 100 times in a `tf.while_loop` against the same FLOPs as one
matmul.

Notes (issue 3, training throughput target 1.3x the built-in layers at batch 64, T=100):
  * rnnpipe's LSTM and GRU train with the fused C++ kernels of `rnnpipe.models.fused` (built by `make`). Quiet
    2-core AMD EPYC, TF 2.21, 2026-11-27: LSTM 1.75x / 1.96x, GRU 2.35x / 2.31x (full run / --quick), T=500
    LSTM 1.26x, GRU 1.43x. Inference (stock TensorFlow ops, what SavedModels contain) stays 0.75x-1.0x.
  * What limits a TensorFlow-op loop: each step's [64, 128] x [128, 512] matmul runs at ~35-40 GFLOP/s chained
    in a while_loop against ~88 for one big matmul (limit probe), intra-op threading of such a small matmul
    costs more than it saves (1 intra-op thread trains the built-in LSTM faster than 2), and some forty ops per
    step cost ~10 us each to dispatch. Tried and dropped, all at 0.85x-1.1x: hoisting the input projection
    alone, a tf.custom_gradient loop with one dU matmul after it, XLA (jit_compile) on the whole step, splitting
    the batch into two while_loops, fusing both directions of a bidirectional layer into one batched matmul
    (0.73x of two concurrent loops).
  * What the kernels do instead: rows of a batch never interact, so each CPU worker thread runs the whole
    sequence for its block of rows, with no synchronisation between steps; the recurrent weights are packed
    once per call into 16-column panels and each step is a 6x16 register-blocked AVX2 FMA kernel (~60 GFLOP/s
    per core against ~37 for Eigen's GEMM at [32, 128] x [128, 512]) plus one fused pass over the gates. The
    input projection and dU = H^T dZ stay single large TensorFlow matmuls. At T=500 the saved gates (65 MB per
    LSTM batch) make the backward pass memory-bound, hence the smaller gain.
  * Since 2026-12-05, on a CPU with AVX-512F the panels are 32 columns and the blocks 8 x 32 (16 zmm
    accumulators), and each panel goes through all of a thread's row blocks while it sits in L1 (before, each
    block of rows streamed the whole weight matrix, 3 MB for the textgen default's GRU, from L3). One thread
    at the textgen default's [32, 512] x [512, 1536]: 267 GFLOP/s against 117 for the AVX2 kernel with rows
    outer. `train GRU 512 units T=50` is that layer (batch 64, BPTT segments of 50 steps); --quick, the same
    machine, one run each: 1.75x the built-in layer against 1.04x before (1,139 against 787 seq/s), LSTM T=100
    2.22x against 1.05x, GRU T=100 1.95x against 1.21x (the built-in layers' speed varied by 1.8x between the
    two runs: compare the ratios). The textgen default's training step takes 36 % less CPU time (6.5 s against
    10.1 s for 60 updates). Full run the same day: LSTM 1.48x, GRU 1.65x, T=500 1.36x / 2.08x, BiLSTM 1.22x,
    BiGRU 1.35x, GRU 512 units T=50 1.73x; the built-in layers were faster than on 2026-11-27 (limit probe: the
    chained matmul at 185 GFLOP/s against ~35-40), so the ratios fell while rnnpipe's seq/s rose.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from rnnpipe import models  # noqa: E402

BATCH, INPUT_DIM, UNITS, CLASSES = 64, 64, 128, 10
GATES = {"LSTM": 4, "GRU": 3}
BUILTIN = {"LSTM": keras.layers.LSTM, "GRU": keras.layers.GRU}
RNNPIPE = {"LSTM": models.LSTM, "GRU": models.GRU}
MATMUL_N = 2048


@dataclass
class Case:
    """One row of the table: a built-in and an rnnpipe callable doing the same work."""

    label: str
    unit: str  # "seq/s" (higher is better) or "ms p50" (lower is better)
    flops_per_call: float
    sequences_per_call: int
    variants: dict[str, Callable[[], object]]
    calls_per_block: dict[str, int] = field(default_factory=dict)
    samples: dict[str, list[float]] = field(default_factory=dict)  # seconds per call


def rnn_flops(cell: str, steps: int, input_dim: int, units: int) -> float:
    """Multiply-adds x 2 of one sequence's forward pass through the layer (the matmuls only)."""
    return 2.0 * steps * GATES[cell] * units * (input_dim + units)


def _sync(result: object) -> None:
    # Pull one value to the host so a block is only timed once its work is done (matters on a GPU).
    first = tf.nest.flatten(result)[0]
    if isinstance(first, tf.Tensor | tf.Variable):
        first.numpy()


def _regression_model(layer: keras.layers.Layer, steps: int) -> keras.Model:
    inputs = keras.Input((steps, INPUT_DIM))
    return keras.Model(inputs, keras.layers.Dense(CLASSES)(layer(inputs)))


def train_and_infer_cases(
    cell: str, steps: int, with_train: bool, with_infer: bool, bidirectional: bool = False, units: int = UNITS
) -> list[Case]:
    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(size=(BATCH, steps, INPUT_DIM)).astype("float32"))
    y = tf.constant(rng.integers(0, CLASSES, size=(BATCH,)).astype("int32"))
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    trains, infers = {}, {}
    for name, layer_class in (("built-in", BUILTIN[cell]), ("rnnpipe", RNNPIPE[cell])):
        keras.utils.set_random_seed(0)
        layer = layer_class(units)
        model = _regression_model(keras.layers.Bidirectional(layer) if bidirectional else layer, steps)
        optimizer = keras.optimizers.Adam(1e-3)
        optimizer.build(model.trainable_variables)

        # Bound as defaults so each closure keeps its own model and optimizer.
        @tf.function(jit_compile=False)
        def train_step(model=model, optimizer=optimizer):
            with tf.GradientTape() as tape:
                loss = loss_fn(y, model(x, training=True))
            grads = tape.gradient(loss, model.trainable_variables)
            optimizer.apply(grads, model.trainable_variables)
            return loss

        @tf.function(jit_compile=False)
        def infer_step(model=model):
            return model(x, training=False)

        trains[name], infers[name] = train_step, infer_step
    directions = 2 if bidirectional else 1
    forward = BATCH * directions * (rnn_flops(cell, steps, INPUT_DIM, units) + 2.0 * units * CLASSES)
    name = (f"Bi{cell}" if bidirectional else cell) + ("" if units == UNITS else f" {units} units")
    cases = []
    if with_train:
        cases.append(Case(f"train {name} T={steps}", "seq/s", 3 * forward, BATCH, trains))
    if with_infer:
        cases.append(Case(f"infer {name} T={steps}", "seq/s", forward, BATCH, infers))
    return cases


def latency_cases(steps: int = 100, vocab: int = 20000, embedding_dim: int = 64) -> list[Case]:
    """Batch-1 GRU(128) text classifier, same weights in both layers, plain and XLA tf.function."""
    tokens = tf.constant(np.random.default_rng(1).integers(1, vocab, size=(1, steps)), dtype=tf.int64)
    built = {}
    for name, layer_class in (("built-in", keras.layers.GRU), ("rnnpipe", models.GRU)):
        keras.utils.set_random_seed(0)
        inputs = keras.Input((steps,), dtype="int64")
        x = keras.layers.Embedding(vocab, embedding_dim)(inputs)
        x = layer_class(UNITS)(x)
        built[name] = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(x))
    built["rnnpipe"].set_weights(built["built-in"].get_weights())
    gap = float(np.max(np.abs(built["rnnpipe"](tokens) - built["built-in"](tokens))))
    print(f"latency models: same weights, max |rnnpipe - built-in| output difference = {gap:.2e}")

    flops = rnn_flops("GRU", steps, embedding_dim, UNITS) + 2.0 * UNITS * 2
    cases = []
    for label, jit in (("latency GRU T=100 tf.function", False), ("latency GRU T=100 XLA", True)):
        variants = {}
        for name, model in built.items():
            fn = tf.function(lambda t, model=model: model(t, training=False), jit_compile=jit)
            variants[name] = lambda fn=fn: fn(tokens)
        cases.append(Case(label, "ms p50", flops, 1, variants))
    return cases


def matmul_case() -> Case:
    rng = np.random.default_rng(2)
    a = tf.constant(rng.normal(size=(MATMUL_N, MATMUL_N)).astype("float32"))
    b = tf.constant(rng.normal(size=(MATMUL_N, MATMUL_N)).astype("float32"))
    fn = tf.function(lambda: tf.matmul(a, b))
    return Case(f"matmul {MATMUL_N}x{MATMUL_N} f32", "ms", 2.0 * MATMUL_N**3, 1, {"reference": fn})


def limit_probe(steps: int = 100, repeats: int = 25) -> None:
    """Print what bounds the recurrent loop: the same matmul FLOPs as `steps` chained step-sized matmuls
    (what any RNN's forward loop must do, one after the other) and as one big matmul (what a hoisted input
    projection or a weight gradient does)."""
    rng = np.random.default_rng(3)
    kernel = tf.constant(rng.normal(size=(UNITS, 4 * UNITS)).astype("float32") * 0.05)
    state = tf.constant(rng.normal(size=(BATCH, UNITS)).astype("float32"))
    stacked = tf.constant(rng.normal(size=(steps * BATCH, UNITS)).astype("float32"))

    @tf.function
    def chained():
        body = lambda t, h: (t + 1, tf.tanh(tf.matmul(h, kernel)[:, :UNITS]))  # noqa: E731
        return tf.while_loop(lambda t, h: t < steps, body, (0, state))[1]

    @tf.function
    def one_matmul():
        return tf.matmul(stacked, kernel)

    flops = 2.0 * steps * BATCH * UNITS * 4 * UNITS
    print(f"\nlimit probe ({steps} x [{BATCH}x{UNITS}] @ [{UNITS}x{4 * UNITS}], the LSTM recurrent matmul):")
    for label, fn in (("chained in a tf.while_loop", chained), ("as one matmul", one_matmul)):
        _sync(fn())
        seconds = []
        for _ in range(repeats):
            started = time.perf_counter()
            _sync(fn())
            seconds.append(time.perf_counter() - started)
        median = statistics.median(seconds)
        print(f"  {label:<28}{median * 1e3:8.2f} ms median = {flops / median / 1e9:6.1f} GFLOP/s")


def calibrate(case: Case, block_seconds: float) -> None:
    """Trace and warm every variant, then size its blocks to about `block_seconds`."""
    for name, fn in case.variants.items():
        _sync(fn())  # trace / compile
        started = time.perf_counter()
        for _ in range(2):
            _sync(fn())
        per_call = (time.perf_counter() - started) / 2
        case.calls_per_block[name] = max(1, int(block_seconds / per_call))
        case.samples[name] = []


def run_block(case: Case, name: str) -> None:
    fn = case.variants[name]
    if case.unit == "ms p50":
        # Latency: every call is a sample.
        for _ in range(case.calls_per_block[name]):
            started = time.perf_counter()
            _sync(fn())
            case.samples[name].append(time.perf_counter() - started)
        return
    calls = case.calls_per_block[name]
    started = time.perf_counter()
    for _ in range(calls):
        result = fn()
    _sync(result)
    case.samples[name].append((time.perf_counter() - started) / calls)


def report(cases: list[Case], reference: Case, rounds: int, wall: float, best: bool = False) -> None:
    # The fastest block is the one least disturbed by other processes; the median is the usual summary.
    summary = min if best else statistics.median
    mm_seconds = summary(reference.samples["reference"])
    mm_gflops = reference.flops_per_call / mm_seconds / 1e9
    statistic = "fastest" if best else "median"
    print(f"\n{reference.label}: {mm_seconds * 1e3:.1f} ms {statistic} = {mm_gflops:.1f} GFLOP/s (reference '% mm')")
    header = (
        f"{'case':<32}{'unit':>7}{'built-in':>10}{'rnnpipe':>10}{'rnnpipe/built-in':>18}"
        f"{'GFLOP/s b-in':>14}{'GFLOP/s rnnp':>14}{'% mm b-in':>11}{'% mm rnnp':>11}"
    )
    print(header)
    print("-" * len(header))
    for case in cases:
        # Latency rows stay p50 (every call is a sample); throughput rows follow --best.
        stat = summary if case.unit == "seq/s" else statistics.median
        seconds = {name: stat(s) for name, s in case.samples.items()}
        if case.unit == "seq/s":
            value = {name: case.sequences_per_call / s for name, s in seconds.items()}
            shown = {name: f"{v:.0f}" for name, v in value.items()}
        else:
            value = {name: s * 1e3 for name, s in seconds.items()}
            shown = {name: f"{v:.2f}" for name, v in value.items()}
        ratio = value["rnnpipe"] / value["built-in"]
        better = "faster" if (ratio > 1) == (case.unit == "seq/s") else "slower"
        gflops = {name: case.flops_per_call / s / 1e9 for name, s in seconds.items()}
        print(
            f"{case.label:<32}{case.unit:>7}{shown['built-in']:>10}{shown['rnnpipe']:>10}"
            f"{ratio:>11.2f}x {better:<6}{gflops['built-in']:>14.2f}{gflops['rnnpipe']:>14.2f}"
            f"{100 * gflops['built-in'] / mm_gflops:>10.1f}%{100 * gflops['rnnpipe'] / mm_gflops:>10.1f}%"
        )
    counts = ", ".join(f"{c.label}: {len(c.samples['rnnpipe'])}" for c in cases if c.unit == "ms p50")
    print(
        f"\n{rounds} interleaved rounds ({statistic} block); latency samples per variant: {counts}; "
        f"total wall {wall:.0f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="T=100 only, 3 rounds, shorter blocks")
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds (default 7, quick 3)")
    parser.add_argument("--block-seconds", type=float, default=None, help="target seconds per block")
    parser.add_argument("--best", action="store_true", help="report the fastest block, not the median")
    args = parser.parse_args()
    rounds = args.rounds or (3 if args.quick else 7)
    block_seconds = args.block_seconds or (0.25 if args.quick else 0.5)
    started = time.perf_counter()

    devices = [d.device_type for d in tf.config.list_physical_devices() if d.device_type != "CPU"] or ["CPU"]
    print(
        f"TF {tf.__version__}, Keras {keras.__version__}, Python {platform.python_version()}, "
        f"devices {devices}, {os.cpu_count()} CPUs, intra-op threads "
        f"{tf.config.threading.get_intra_op_parallelism_threads() or 'auto'}"
    )
    print(f"batch {BATCH}, input dim {INPUT_DIM}, {UNITS} units; building and tracing ...", flush=True)

    cases: list[Case] = []
    for steps in (100,) if args.quick else (100, 500):
        for cell in ("LSTM", "GRU"):
            cases += train_and_infer_cases(cell, steps, with_train=True, with_infer=True)
    for cell in ("LSTM", "GRU"):
        cases += train_and_infer_cases(cell, 100, with_train=True, with_infer=False, bidirectional=True)
    # The textgen default's layer: 512 units, truncated BPTT segments of 50 steps.
    cases += train_and_infer_cases("GRU", 50, with_train=True, with_infer=False, units=512)
    cases += latency_cases()
    # Rows in reading order: training first, then inference, then latency.
    cases.sort(key=lambda c: ("train", "infer", "latency").index(c.label.split()[0]))
    reference = matmul_case()
    for case in [reference, *cases]:
        calibrate(case, block_seconds)
    print(f"warm-up done after {time.perf_counter() - started:.0f} s; measuring {rounds} rounds", flush=True)

    for round_index in range(rounds):
        run_block(reference, "reference")
        order = ("built-in", "rnnpipe") if round_index % 2 == 0 else ("rnnpipe", "built-in")
        for case in cases:
            for name in order:
                run_block(case, name)
        print(f"  round {round_index + 1}/{rounds} done at {time.perf_counter() - started:.0f} s", flush=True)
    report(cases, reference, rounds, time.perf_counter() - started, best=args.best)
    limit_probe()


if __name__ == "__main__":
    main()
