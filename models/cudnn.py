"""cuDNN for the standard `LSTM` and `GRU` on a GPU, through the kernels Keras' own layers call.

rnnpipe's cells keep the weights of `keras.layers.LSTMCell` / `GRUCell` in the same layout, so the fast
layers can hand them to Keras' TensorFlow backend (`keras.src.backend.tensorflow.rnn.lstm` / `gru`, which
build `tf.raw_ops.CudnnRNNV3`), as `keras.layers.LSTM(use_cudnn="auto")` does. They do when `applies` says so:

- a GPU is visible and the layer is not compiled with XLA (cuDNN ops are not XLA ops);
- the cell is the standard one: tanh and sigmoid, a bias, no layer norm, no peepholes, GRU with
  `reset_after=True`, no recurrent dropout while training;
- the masking semantics are the same: no mask; or sequences returned with zeros at masked steps
  (`zero_output_for_mask`, which `Bidirectional` sets); or only the last output returned, which is then the last
  valid step's (without `zero_output_for_mask`).

A mask must also be right-padded with no empty row, which only the data can tell: `sequence` checks it in the
graph and runs the loop (`fallback`) for a batch that is not. `tests/test_models_cudnn.py` compares both paths
on a GPU and is skipped elsewhere.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

import tensorflow as tf

from .cells import LSTMCell
from .fused import _in_xla as in_xla
from .fused import standard_cell

Result = tuple[tf.Tensor, tf.Tensor, list[tf.Tensor]]


def applies(layer: Any, mask: Any, training: bool) -> bool:
    """Whether `layer` (an rnnpipe LSTM or GRU) computes this call with cuDNN."""
    cell = layer.cell
    return (
        standard_cell(cell)
        and cell.use_bias
        and not (training and cell.recurrent_dropout > 0.0)
        # Masked steps: cuDNN's outputs are zeros, its last output the last valid step's.
        and (mask is None or layer.zero_output_for_mask == layer.return_sequences)
        and not in_xla()
        and gpu_visible()
    )


def gpu_visible() -> bool:
    return bool(tf.config.list_logical_devices("GPU"))


def sequence(layer: Any, sequences: tf.Tensor, states: list[tf.Tensor], mask: tf.Tensor | None,
             fallback: Callable[[], Result]) -> Result:
    """`(last_output, outputs [T, B, U] (with return_sequences; else `last_output` again), states)` of `layer`
    over batch-major (dropped-out) `sequences` [B, T, F] and a batch-major boolean `mask` [B, T], on cuDNN;
    `fallback()` (the loop) for a batch whose mask is not right-padded or has an empty row, which cuDNN cannot
    run, and where Keras finds no cuDNN kernel on this device."""
    # The module itself: `from keras.src.backend.tensorflow import rnn` is the package's function `rnn`.
    keras_rnn = importlib.import_module("keras.src.backend.tensorflow.rnn")

    cell = layer.cell

    def cudnn() -> Result:
        # Batch-major, as Keras' layers call it: its mask checks read [batch, time].
        common = dict(kernel=cell.kernel, recurrent_kernel=cell.recurrent_kernel, bias=cell.bias,
                      activation=cell.activation, recurrent_activation=cell.recurrent_activation,
                      return_sequences=layer.return_sequences, go_backwards=layer.go_backwards)
        if isinstance(cell, LSTMCell):
            last, outputs, new_states = keras_rnn.lstm(sequences, states[0], states[1], mask, **common)
        else:
            last, outputs, new_states = keras_rnn.gru(sequences, states[0], mask, reset_after=True, **common)
        return last, tf.transpose(outputs, [1, 0, 2]) if layer.return_sequences else last, list(new_states)

    def loop() -> Result:
        last, outputs, new_states = fallback()
        return last, outputs if layer.return_sequences else last, list(new_states)

    try:
        if mask is None:
            return cudnn()
        lengths = tf.reduce_sum(tf.cast(mask, tf.int32), axis=1)
        right_padded = tf.reduce_all(tf.equal(mask, tf.sequence_mask(lengths, tf.shape(mask)[1])))
        return tf.cond(tf.logical_and(right_padded, tf.reduce_all(lengths > 0)), cudnn, loop)
    except NotImplementedError:  # Keras' backend: no cuDNN kernel here
        return loop()
