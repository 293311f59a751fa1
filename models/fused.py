"""Fused CPU training kernels for rnnpipe's `LSTM` and `GRU` layers, compiled on the machine that runs them.

On a CPU the per-step loop of a TensorFlow RNN is bound by the executor's dispatch of some forty small
ops per step (forward and backward) and by a `[batch, units] x [units, 4 units]` matmul that the
intra-op thread pool splits poorly. The kernels in `kernels/rnn_kernels.cc` cut the batch into one block
of rows per CPU worker thread and run the whole sequence for those rows in C++: one Eigen matmul and one
fused pass over the gates per step, no synchronisation between steps. The input projection and the
recurrent weight gradient stay single large TensorFlow matmuls.

They are used only where they give the same numbers as the TensorFlow loop and cannot leak into a
served model: in training (`training=True`; exported signatures trace `training=False`, so SavedModels
keep only stock TensorFlow ops that TF Serving runs), float32, tanh/sigmoid activations, no layer
normalization, no LSTM peepholes, GRU with `reset_after=True`, outside XLA, on CPU-only hosts.
Everywhere else, and wherever the library has not been built, the layers run their `tf.while_loop`.

Build once per TensorFlow version and CPU (`make` does it):

    python -m rnnpipe.models.build_kernels
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import os
import platform
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import tensorflow as tf
from keras import activations

from .cells import GRUCell, LSTMCell

__all__ = ["available", "build", "gru_sequence", "library_path", "lstm_sequence", "sequence", "supports"]

log = logging.getLogger(__name__)
SOURCE = Path(__file__).with_name("kernels") / "rnn_kernels.cc"


def _cpu_flags() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return line
    except OSError:
        pass
    return platform.processor()


# -march=native: the library is built where it runs; the CPU's flags are part of its name. The kernels use
# AVX-512F where the CPU has it, else AVX2/FMA; TensorFlow's bundled Eigen does not compile with GCC 12 where
# AVX512-FP16 is on, so it stays off.
CXXFLAGS = ["-O3", "-march=native", *(["-mno-avx512fp16"] if "avx512_fp16" in _cpu_flags().split() else []),
            "-fPIC", "-shared", "-w"]


def library_path() -> Path:
    """Where the library for this source, TensorFlow build, compiler flags and CPU lives."""
    key = hashlib.sha256()
    for part in (SOURCE.read_bytes(), tf.__version__.encode(), tf.sysconfig.get_compile_flags(), CXXFLAGS,
                 platform.machine(), _cpu_flags()):
        key.update(repr(part).encode() if not isinstance(part, bytes) else part)
    return kernels_dir() / f"rnn_kernels-{key.hexdigest()[:16]}.so"


def kernels_dir() -> Path:
    """A user cache folder, not the source tree, so a wheel or read-only install can build them too."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "rnnpipe" / "kernels"


def build(force: bool = False) -> Path:
    """Compile the kernels (about 40 s) unless this exact build exists; returns the library's path."""
    target = library_path()
    if target.exists() and not force:
        return target
    compiler = os.environ.get("CXX", "g++")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        partial = Path(tmp) / target.name
        command = [compiler, *CXXFLAGS, str(SOURCE), "-o", str(partial),
                   *tf.sysconfig.get_compile_flags(), *tf.sysconfig.get_link_flags()]
        try:
            done = subprocess.run(command, capture_output=True, text=True)
        except FileNotFoundError as error:
            raise RuntimeError(f"no C++ compiler {compiler!r} (set CXX) to build {SOURCE}") from error
        if done.returncode != 0:
            raise RuntimeError(f"building {SOURCE} failed ({' '.join(command)}):\n{done.stderr[-3000:]}")
        os.replace(partial, target)  # atomic: a half-written library is never loaded
    remove_stale(target)
    return target


def remove_stale(target: Path, max_age_days: float = 30) -> list[Path]:
    """Removes the other builds beside ``target`` untouched for ``max_age_days``; returns them. The key holds the
    venv's TensorFlow include path, so another checkout's build may sit beside this one and be in use."""
    oldest = time.time() - max_age_days * 24 * 3600
    removed = []
    for stale in target.parent.glob("rnn_kernels-*.so"):
        with contextlib.suppress(FileNotFoundError):
            if stale != target and stale.stat().st_mtime < oldest:
                stale.unlink()
                removed.append(stale)
    return removed


@functools.cache
def _library() -> Any:
    path = library_path()
    if not path.exists():
        # A warning: a copied venv (its TF include path, and so the name, differ) would otherwise train slower
        # without a word.
        log.warning("fused RNN kernels not built (%s missing): LSTM and GRU layers train with their TensorFlow loop; "
                    "`python -m rnnpipe.models.build_kernels` builds them", path.name)
        return None
    return tf.load_op_library(str(path))


def available() -> bool:
    """Whether the compiled kernels are loaded in this process."""
    return _library() is not None


def _in_xla() -> bool:
    from tensorflow.python.ops import control_flow_util

    return control_flow_util.GraphOrParentsInXlaContext(tf.compat.v1.get_default_graph())


def standard_cell(cell: Any) -> bool:
    """An LSTM cell without peepholes or a GRU cell with `reset_after`, tanh and sigmoid, no layer norm: the cell
    that the fused kernels here and cuDNN (`rnnpipe.models.cudnn`) compute."""
    if isinstance(cell, LSTMCell):
        kind_ok = not cell.peepholes
    elif isinstance(cell, GRUCell):
        kind_ok = cell.reset_after
    else:
        return False
    return (
        kind_ok
        and not cell.layer_norm
        and activations.serialize(cell.activation) == "tanh"
        and activations.serialize(cell.recurrent_activation) == "sigmoid"
    )


def supports(cell: Any, dtype: tf.DType) -> bool:
    """Whether `sequence(cell, ...)` computes exactly what `cell.recurrent_step` in a loop computes."""
    return (
        standard_cell(cell)
        and dtype == tf.float32
        and available()
        and not _in_xla()
        and not tf.config.list_logical_devices("GPU")
    )


def sequence(
    cell: Any,
    projected: tf.Tensor,
    states: list[tf.Tensor],
    mask: tf.Tensor | None,
    recurrent_mask: tf.Tensor | None,
    zero_output_for_mask: bool,
) -> tuple[tf.Tensor, tf.Tensor, list[tf.Tensor]]:
    """The cell's recurrence over time-major projected inputs, for a cell that `supports` accepts.

    Returns `(last_output, outputs [T, B, U], states)` with `keras.layers.RNN`'s masking semantics.
    `mask` is a time-major boolean `[T, B]`; `recurrent_mask` multiplies `h` before the matmul.
    """
    steps_by_batch = tf.shape(projected)[:2]
    mask = tf.ones(steps_by_batch) if mask is None else tf.cast(mask, tf.float32)
    keep = tf.ones_like(states[0]) if recurrent_mask is None else recurrent_mask
    kernel = tf.convert_to_tensor(cell.recurrent_kernel)
    if len(states) == 2:
        return lstm_sequence(projected, states, kernel, mask, keep, zero_output_for_mask)
    bias = cell.bias[1] if cell.use_bias else tf.zeros([kernel.shape[-1]], kernel.dtype)
    return gru_sequence(projected, states[0], kernel, tf.convert_to_tensor(bias), mask, keep, zero_output_for_mask)


def _upstream(upstream: tuple, outputs: tf.Tensor, state: tf.Tensor) -> list[tf.Tensor]:
    """Gradients of (outputs, last output, *last states); those of outputs the loss does not use arrive as None."""
    d_outputs = tf.zeros_like(outputs) if upstream[0] is None else upstream[0]
    return [d_outputs, *(tf.zeros_like(state) if g is None else g for g in upstream[1:])]


def _recurrent_kernel_gradient(h0: tf.Tensor, h_states: tf.Tensor, keep: tf.Tensor, d_z: tf.Tensor) -> tf.Tensor:
    """dU = sum_t (h_{t-1} * keep)^T dz_t, as one large matmul over all steps."""
    units = h0.shape[-1]
    h_inputs = tf.concat([h0[None], h_states[:-1]], 0) * keep
    return tf.matmul(tf.reshape(h_inputs, [-1, units]), tf.reshape(d_z, [-1, d_z.shape[-1]]), transpose_a=True)


def lstm_sequence(
    projected: tf.Tensor,
    states: list[tf.Tensor],
    kernel: tf.Tensor,
    mask: tf.Tensor,
    keep: tf.Tensor,
    zero_output_for_mask: bool,
) -> tuple[tf.Tensor, tf.Tensor, list[tf.Tensor]]:
    """LSTM recurrence (gates i, f, g, o); `mask` float `[T, B]`, `keep` the recurrent dropout mask."""
    ops = _library()

    @tf.custom_gradient
    def recurrence(projected: tf.Tensor, h0: tf.Tensor, c0: tf.Tensor, kernel: tf.Tensor) -> Any:
        outputs, h_states, c_states, gates, last_output, last_h, last_c = ops.rnnpipe_lstm_forward(
            projected, h0, c0, kernel, mask, keep, zero_output_for_mask=zero_output_for_mask)

        def grad(*upstream: Any) -> tuple:
            d_z, d_h0, d_c0 = ops.rnnpipe_lstm_backward(
                kernel, c0, mask, keep, c_states, gates, *_upstream(upstream, outputs, h0),
                zero_output_for_mask=zero_output_for_mask)
            return d_z, d_h0, d_c0, _recurrent_kernel_gradient(h0, h_states, keep, d_z)

        return (outputs, last_output, last_h, last_c), grad

    outputs, last_output, h, c = recurrence(projected, *states, kernel)
    return last_output, outputs, [h, c]


def gru_sequence(
    projected: tf.Tensor,
    h0: tf.Tensor,
    kernel: tf.Tensor,
    bias: tf.Tensor,
    mask: tf.Tensor,
    keep: tf.Tensor,
    zero_output_for_mask: bool,
) -> tuple[tf.Tensor, tf.Tensor, list[tf.Tensor]]:
    """GRU recurrence, `reset_after=True` (gates z, r, n); `bias` is the recurrent bias `[3U]`."""
    ops = _library()

    @tf.custom_gradient
    def recurrence(projected: tf.Tensor, h0: tf.Tensor, kernel: tf.Tensor, bias: tf.Tensor) -> Any:
        outputs, h_states, gates, recurrent_n, last_output, last_h = ops.rnnpipe_gru_forward(
            projected, h0, kernel, bias, mask, keep, zero_output_for_mask=zero_output_for_mask)

        def grad(*upstream: Any) -> tuple:
            d_x, d_recurrent, d_h0 = ops.rnnpipe_gru_backward(
                kernel, h0, mask, keep, h_states, gates, recurrent_n, *_upstream(upstream, outputs, h0),
                zero_output_for_mask=zero_output_for_mask)
            d_kernel = _recurrent_kernel_gradient(h0, h_states, keep, d_recurrent)
            return d_x, d_h0, d_kernel, tf.reduce_sum(d_recurrent, [0, 1])

        return (outputs, last_output, last_h), grad

    outputs, last_output, h = recurrence(projected, h0, kernel, bias)
    return last_output, outputs, [h]
