"""Fast sequence layers: `SimpleRNN`, `LSTM` and `GRU`.

Each layer owns one cell from `rnnpipe.models.cells` (so its weights have
the same names, shapes and order as the Keras built-in layer of the same
name) but does not run the cell once per timestep the way
`keras.layers.RNN` does. Instead it

1. projects the inputs of *all* timesteps with one matrix multiplication
   (`cell.project_inputs` on a `[time * batch, features]` matrix), then
2. runs a `tf.while_loop` over a `TensorArray` of the projections that only
   does the recurrent half of the step (`cell.recurrent_step`).

The loop is plain TensorFlow, so the layers trace in a `tf.function`, export
to a SavedModel, and compile with XLA (`jit_compile=True`). They are
therefore TensorFlow-backend only. In training on a CPU, `LSTM` and `GRU` run the
recurrence in the fused C++ kernels of `rnnpipe.models.fused` where they are
built (same results; see that module for when). On a GPU, `LSTM` and `GRU` in
their standard form run on cuDNN, through the kernels Keras' own layers call
(`rnnpipe.models.cudnn` says when).

Masking reproduces `keras.layers.RNN` on the TensorFlow backend exactly: at a
masked step the states keep their previous value and the output is the
previous step's output (zeros before the first valid step), or zeros when
`zero_output_for_mask=True` (which `keras.layers.Bidirectional` switches on
when `return_sequences=True`, as it does for the built-in layers). The
non-sequence output is the output of the last processed step, i.e. the
output of the last valid step.
"""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf

from . import cudnn, fused
from ._validation import check_bool
from .cells import GRUCell, LSTMCell, SimpleRNNCell, _RecurrentCell

__all__ = ["GRU", "LSTM", "SimpleRNN"]


class _FastRecurrent(keras.layers.Layer):
    """Sequence loop shared by the fast layers; subclasses only build a cell."""

    def __init__(
        self,
        cell: _RecurrentCell,
        return_sequences: bool = False,
        return_state: bool = False,
        go_backwards: bool = False,
        zero_output_for_mask: bool = False,
        **kwargs: Any,
    ) -> None:
        if keras.backend.backend() != "tensorflow":
            raise ValueError(
                f"{type(self).__name__} runs a tf.while_loop and needs the "
                "'tensorflow' Keras backend. "
                f"Received: backend={keras.backend.backend()!r}"
            )
        super().__init__(**kwargs)
        self.cell = cell
        self.return_sequences = return_sequences
        self.return_state = return_state
        self.go_backwards = go_backwards
        self.zero_output_for_mask = zero_output_for_mask
        # Read by keras.layers.Bidirectional; stateful RNNs are not supported,
        # so there are never state variables.
        self.stateful = False
        self.states = None
        self.supports_masking = True
        self.input_spec = keras.layers.InputSpec(ndim=3)

    @property
    def units(self) -> int:
        return self.cell.units

    @property
    def dropout(self) -> float:
        return self.cell.dropout

    @property
    def recurrent_dropout(self) -> float:
        return self.cell.recurrent_dropout

    @property
    def _state_sizes(self) -> list[int]:
        size = self.cell.state_size
        return list(size) if isinstance(size, (list, tuple)) else [size]

    def build(
        self,
        sequences_shape: tuple[int | None, ...],
        initial_state_shape: Any = None,
    ) -> None:
        if not self.cell.built:
            self.cell.build((sequences_shape[0], sequences_shape[-1]))

    def compute_output_shape(
        self,
        sequences_shape: tuple[int | None, ...],
        initial_state_shape: Any = None,
    ) -> Any:
        batch, length = sequences_shape[0], sequences_shape[1]
        if self.return_sequences:
            output_shape = (batch, length, self.cell.output_size)
        else:
            output_shape = (batch, self.cell.output_size)
        if self.return_state:
            return (output_shape, *[(batch, size) for size in self._state_sizes])
        return output_shape

    def compute_mask(self, sequences: Any, mask: Any = None) -> Any:
        if isinstance(mask, (list, tuple)):
            mask = mask[0]
        output_mask = mask if self.return_sequences else None
        if self.return_state:
            return [output_mask] + [None] * len(self._state_sizes)
        return output_mask

    def _initial_states(self, initial_state: Any, batch: Any, dtype: tf.DType) -> list[Any]:
        if initial_state is None:
            return [tf.zeros((batch, size), dtype=dtype) for size in self._state_sizes]
        if not isinstance(initial_state, (list, tuple)):
            initial_state = [initial_state]
        if len(initial_state) != len(self._state_sizes):
            raise ValueError(
                f"{type(self).__name__} expects {len(self._state_sizes)} initial "
                f"state tensor(s). Received: {len(initial_state)}"
            )
        return [tf.cast(s, dtype) for s in initial_state]

    def call(
        self,
        sequences: Any,
        initial_state: Any = None,
        mask: Any = None,
        training: bool = False,
    ) -> Any:
        cell = self.cell
        sequences = tf.convert_to_tensor(sequences)
        states = self._initial_states(initial_state, tf.shape(sequences)[0], sequences.dtype)

        # One mask per sequence, drawn here rather than per step, is what
        # makes the dropout variational (constant across timesteps).
        if training and cell.dropout > 0.0:
            input_mask = keras.random.dropout(
                tf.ones_like(sequences[:, 0, :]), rate=cell.dropout, seed=cell.seed_generator
            )
            sequences = sequences * input_mask[:, None, :]
        recurrent_mask = None
        if training and cell.recurrent_dropout > 0.0:
            recurrent_mask = keras.random.dropout(
                tf.ones_like(states[0]), rate=cell.recurrent_dropout, seed=cell.seed_generator
            )

        # Time-major so that each loop iteration reads one contiguous slice.
        batch_mask = None if mask is None else tf.cast(mask, tf.bool)
        time_major = tf.transpose(sequences, [1, 0, 2])
        mask = None if batch_mask is None else tf.transpose(batch_mask, [1, 0])

        def recurrence() -> tuple[tf.Tensor, tf.Tensor | None, list[tf.Tensor]]:
            return self._recurrence(time_major, states, mask, recurrent_mask, training)

        if cudnn.applies(self, mask, training):
            last_output, outputs, states = cudnn.sequence(self, sequences, states, batch_mask, recurrence)
        else:
            last_output, outputs, states = recurrence()

        if self.return_sequences:
            output = tf.transpose(outputs, [1, 0, 2])
            output.set_shape([sequences.shape[0], sequences.shape[1], cell.output_size])
        else:
            output = last_output
        if self.return_state:
            return (output, *states)
        return output

    def _recurrence(
        self,
        time_major: tf.Tensor,
        states: list[tf.Tensor],
        mask: tf.Tensor | None,
        recurrent_mask: tf.Tensor | None,
        training: bool,
    ) -> tuple[tf.Tensor, tf.Tensor | None, list[tf.Tensor]]:
        """The layer over time-major (dropped-out) inputs without cuDNN: the fused kernel or the loop."""
        cell = self.cell
        projected = cell.project_inputs(time_major)
        if self.go_backwards:
            projected = tf.reverse(projected, [0])
            if mask is not None:
                mask = tf.reverse(mask, [0])
        if training and fused.supports(cell, projected.dtype):
            return fused.sequence(cell, projected, states, mask, recurrent_mask, self.zero_output_for_mask)
        return self._loop(projected, states, mask, recurrent_mask)

    def _loop(
        self,
        projected: tf.Tensor,
        states: list[tf.Tensor],
        mask: tf.Tensor | None,
        recurrent_mask: tf.Tensor | None,
    ) -> tuple[tf.Tensor, tf.Tensor | None, list[tf.Tensor]]:
        """Recurrent half of the computation over time-major projections."""
        cell = self.cell
        steps = tf.shape(projected)[0]
        inputs_ta = tf.TensorArray(
            projected.dtype, size=steps, element_shape=projected.shape[1:]
        ).unstack(projected)
        mask_ta = None
        if mask is not None:
            mask_ta = tf.TensorArray(tf.bool, size=steps, element_shape=mask.shape[1:])
            mask_ta = mask_ta.unstack(mask)
        # Like keras.layers.RNN: the output carried into masked steps starts
        # at zeros, not at the initial state.
        zeros = tf.zeros_like(states[0])

        def body(time: tf.Tensor, prev_output: tf.Tensor, prev_states: tuple, *rest: Any) -> tuple:
            output, new_states = cell.recurrent_step(
                inputs_ta.read(time), list(prev_states), recurrent_mask
            )
            if mask_ta is not None:
                keep = mask_ta.read(time)[:, None]
                fill = zeros if self.zero_output_for_mask else prev_output
                output = tf.where(keep, output, fill)
                new_states = [
                    tf.where(keep, new, old)
                    for new, old in zip(new_states, prev_states, strict=True)
                ]
            if rest:
                rest = (rest[0].write(time, output),)
            return (time + 1, output, tuple(new_states), *rest)

        loop_vars: tuple = (tf.constant(0, tf.int32), zeros, tuple(states))
        if self.return_sequences:
            loop_vars += (
                tf.TensorArray(projected.dtype, size=steps, element_shape=zeros.shape),
            )
        result = tf.while_loop(
            lambda time, *_: time < steps,
            body,
            loop_vars,
            maximum_iterations=steps,
        )
        outputs = result[3].stack() if self.return_sequences else None
        return result[1], outputs, list(result[2])

    def get_config(self) -> dict[str, Any]:
        config = {
            **self.cell._argument_config(),
            "return_sequences": self.return_sequences,
            "return_state": self.return_state,
            "go_backwards": self.go_backwards,
            "zero_output_for_mask": self.zero_output_for_mask,
        }
        return {**super().get_config(), **config}


def _check_layer_flags(**flags: Any) -> None:
    for name, value in flags.items():
        check_bool(name, value)


def _cell_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    # The cell follows the layer's dtype policy and trainability, as in Keras.
    return {"dtype": kwargs.get("dtype"), "trainable": kwargs.get("trainable", True)}


@keras.saving.register_keras_serializable(package="rnnpipe")
class SimpleRNN(_FastRecurrent):
    """Fully-connected RNN over a sequence, with a fused input projection.

    Weights (`kernel`, `recurrent_kernel`, `bias`) match
    `keras.layers.SimpleRNN`, so `set_weights(keras_layer.get_weights())`
    works; the outputs match too, masking included.

    Args:
        units: positive integer, size of the output and state.
        activation, use_bias, kernel_initializer, recurrent_initializer,
        bias_initializer, kernel_regularizer, recurrent_regularizer,
        bias_regularizer, kernel_constraint, recurrent_constraint,
        bias_constraint, dropout, recurrent_dropout, seed:
            as in `rnnpipe.models.SimpleRNNCell`.
        return_sequences: return the output of every step `[batch, time,
            units]` instead of the last one `[batch, units]`.
        return_state: also return the final state.
        go_backwards: process the sequence in reverse and return the
            (reversed) outputs in processing order.
        zero_output_for_mask: output zeros at masked steps instead of
            repeating the previous output.
        layer_norm: the cell's layer normalization (see the cell).
        **kwargs: base `keras.layers.Layer` arguments (`name`, `dtype`, ...).

    Call arguments:
        sequences: `[batch, time, features]` float tensor.
        initial_state: optional list with one `[batch, units]` tensor.
        mask: optional `[batch, time]` boolean tensor, `False` at padding.
        training: whether dropout is active.

    Example:

    >>> import numpy as np
    >>> from rnnpipe.models import SimpleRNN
    >>> layer = SimpleRNN(4, return_sequences=True, return_state=True)
    >>> outputs, state = layer(np.zeros((2, 5, 3), "float32"))
    >>> tuple(outputs.shape), tuple(state.shape)
    ((2, 5, 4), (2, 4))
    """

    def __init__(
        self,
        units: int,
        activation: Any = "tanh",
        use_bias: bool = True,
        kernel_initializer: Any = "glorot_uniform",
        recurrent_initializer: Any = "orthogonal",
        bias_initializer: Any = "zeros",
        kernel_regularizer: Any = None,
        recurrent_regularizer: Any = None,
        bias_regularizer: Any = None,
        kernel_constraint: Any = None,
        recurrent_constraint: Any = None,
        bias_constraint: Any = None,
        dropout: float = 0.0,
        recurrent_dropout: float = 0.0,
        seed: int | None = None,
        layer_norm: bool = False,
        return_sequences: bool = False,
        return_state: bool = False,
        go_backwards: bool = False,
        zero_output_for_mask: bool = False,
        **kwargs: Any,
    ) -> None:
        _check_layer_flags(
            return_sequences=return_sequences,
            return_state=return_state,
            go_backwards=go_backwards,
            zero_output_for_mask=zero_output_for_mask,
        )
        cell = SimpleRNNCell(
            units,
            activation=activation,
            use_bias=use_bias,
            kernel_initializer=kernel_initializer,
            recurrent_initializer=recurrent_initializer,
            bias_initializer=bias_initializer,
            kernel_regularizer=kernel_regularizer,
            recurrent_regularizer=recurrent_regularizer,
            bias_regularizer=bias_regularizer,
            kernel_constraint=kernel_constraint,
            recurrent_constraint=recurrent_constraint,
            bias_constraint=bias_constraint,
            dropout=dropout,
            recurrent_dropout=recurrent_dropout,
            seed=seed,
            layer_norm=layer_norm,
            name="simple_rnn_cell",
            **_cell_kwargs(kwargs),
        )
        super().__init__(
            cell,
            return_sequences=return_sequences,
            return_state=return_state,
            go_backwards=go_backwards,
            zero_output_for_mask=zero_output_for_mask,
            **kwargs,
        )


@keras.saving.register_keras_serializable(package="rnnpipe")
class LSTM(_FastRecurrent):
    """LSTM over a sequence, with a fused input projection.

    Weights (`kernel`, `recurrent_kernel`, `bias`) match `keras.layers.LSTM`,
    so `set_weights(keras_layer.get_weights())` works; the outputs match too,
    masking included. With `return_state=True` the layer returns
    `output, h, c`.

    Args:
        units: positive integer, size of the output and of each state.
        activation, recurrent_activation, use_bias, kernel_initializer,
        recurrent_initializer, bias_initializer, unit_forget_bias,
        kernel_regularizer, recurrent_regularizer, bias_regularizer,
        kernel_constraint, recurrent_constraint, bias_constraint, dropout,
        recurrent_dropout, seed:
            as in `rnnpipe.models.LSTMCell`.
        return_sequences: return the output of every step `[batch, time,
            units]` instead of the last one `[batch, units]`.
        return_state: also return the final states `h` and `c`.
        go_backwards: process the sequence in reverse and return the
            (reversed) outputs in processing order.
        zero_output_for_mask: output zeros at masked steps instead of
            repeating the previous output.
        layer_norm, peepholes: the cell's options (see the cell).
        **kwargs: base `keras.layers.Layer` arguments (`name`, `dtype`, ...).

    Call arguments:
        sequences: `[batch, time, features]` float tensor.
        initial_state: optional list `[h, c]` of `[batch, units]` tensors.
        mask: optional `[batch, time]` boolean tensor, `False` at padding.
        training: whether dropout is active.

    Example:

    >>> import numpy as np
    >>> from rnnpipe.models import LSTM
    >>> output, h, c = LSTM(4, return_state=True)(np.zeros((2, 5, 3), "float32"))
    >>> tuple(output.shape), tuple(c.shape)
    ((2, 4), (2, 4))
    """

    def __init__(
        self,
        units: int,
        activation: Any = "tanh",
        recurrent_activation: Any = "sigmoid",
        use_bias: bool = True,
        kernel_initializer: Any = "glorot_uniform",
        recurrent_initializer: Any = "orthogonal",
        bias_initializer: Any = "zeros",
        unit_forget_bias: bool = True,
        kernel_regularizer: Any = None,
        recurrent_regularizer: Any = None,
        bias_regularizer: Any = None,
        kernel_constraint: Any = None,
        recurrent_constraint: Any = None,
        bias_constraint: Any = None,
        dropout: float = 0.0,
        recurrent_dropout: float = 0.0,
        seed: int | None = None,
        layer_norm: bool = False,
        peepholes: bool = False,
        return_sequences: bool = False,
        return_state: bool = False,
        go_backwards: bool = False,
        zero_output_for_mask: bool = False,
        **kwargs: Any,
    ) -> None:
        _check_layer_flags(
            return_sequences=return_sequences,
            return_state=return_state,
            go_backwards=go_backwards,
            zero_output_for_mask=zero_output_for_mask,
        )
        cell = LSTMCell(
            units,
            activation=activation,
            recurrent_activation=recurrent_activation,
            use_bias=use_bias,
            kernel_initializer=kernel_initializer,
            recurrent_initializer=recurrent_initializer,
            bias_initializer=bias_initializer,
            unit_forget_bias=unit_forget_bias,
            kernel_regularizer=kernel_regularizer,
            recurrent_regularizer=recurrent_regularizer,
            bias_regularizer=bias_regularizer,
            kernel_constraint=kernel_constraint,
            recurrent_constraint=recurrent_constraint,
            bias_constraint=bias_constraint,
            dropout=dropout,
            recurrent_dropout=recurrent_dropout,
            seed=seed,
            layer_norm=layer_norm,
            peepholes=peepholes,
            name="lstm_cell",
            **_cell_kwargs(kwargs),
        )
        super().__init__(
            cell,
            return_sequences=return_sequences,
            return_state=return_state,
            go_backwards=go_backwards,
            zero_output_for_mask=zero_output_for_mask,
            **kwargs,
        )


@keras.saving.register_keras_serializable(package="rnnpipe")
class GRU(_FastRecurrent):
    """GRU over a sequence, with a fused input projection.

    Weights (`kernel`, `recurrent_kernel`, `bias`) match `keras.layers.GRU`
    for both `reset_after` conventions, so
    `set_weights(keras_layer.get_weights())` works; the outputs match too,
    masking included.

    Args:
        units: positive integer, size of the output and state.
        activation, recurrent_activation, use_bias, kernel_initializer,
        recurrent_initializer, bias_initializer, kernel_regularizer,
        recurrent_regularizer, bias_regularizer, kernel_constraint,
        recurrent_constraint, bias_constraint, dropout, recurrent_dropout,
        reset_after, seed:
            as in `rnnpipe.models.GRUCell`.
        return_sequences: return the output of every step `[batch, time,
            units]` instead of the last one `[batch, units]`.
        return_state: also return the final state.
        go_backwards: process the sequence in reverse and return the
            (reversed) outputs in processing order.
        zero_output_for_mask: output zeros at masked steps instead of
            repeating the previous output.
        layer_norm: the cell's layer normalization (see the cell).
        **kwargs: base `keras.layers.Layer` arguments (`name`, `dtype`, ...).

    Call arguments:
        sequences: `[batch, time, features]` float tensor.
        initial_state: optional list with one `[batch, units]` tensor.
        mask: optional `[batch, time]` boolean tensor, `False` at padding.
        training: whether dropout is active.

    Example:

    >>> import numpy as np, keras
    >>> from rnnpipe.models import GRU
    >>> layer = keras.layers.Bidirectional(GRU(4, return_sequences=True))
    >>> tuple(layer(np.zeros((2, 5, 3), "float32")).shape)
    (2, 5, 8)
    """

    def __init__(
        self,
        units: int,
        activation: Any = "tanh",
        recurrent_activation: Any = "sigmoid",
        use_bias: bool = True,
        kernel_initializer: Any = "glorot_uniform",
        recurrent_initializer: Any = "orthogonal",
        bias_initializer: Any = "zeros",
        kernel_regularizer: Any = None,
        recurrent_regularizer: Any = None,
        bias_regularizer: Any = None,
        kernel_constraint: Any = None,
        recurrent_constraint: Any = None,
        bias_constraint: Any = None,
        dropout: float = 0.0,
        recurrent_dropout: float = 0.0,
        reset_after: bool = True,
        seed: int | None = None,
        layer_norm: bool = False,
        return_sequences: bool = False,
        return_state: bool = False,
        go_backwards: bool = False,
        zero_output_for_mask: bool = False,
        **kwargs: Any,
    ) -> None:
        _check_layer_flags(
            return_sequences=return_sequences,
            return_state=return_state,
            go_backwards=go_backwards,
            zero_output_for_mask=zero_output_for_mask,
        )
        cell = GRUCell(
            units,
            activation=activation,
            recurrent_activation=recurrent_activation,
            use_bias=use_bias,
            kernel_initializer=kernel_initializer,
            recurrent_initializer=recurrent_initializer,
            bias_initializer=bias_initializer,
            kernel_regularizer=kernel_regularizer,
            recurrent_regularizer=recurrent_regularizer,
            bias_regularizer=bias_regularizer,
            kernel_constraint=kernel_constraint,
            recurrent_constraint=recurrent_constraint,
            bias_constraint=bias_constraint,
            dropout=dropout,
            recurrent_dropout=recurrent_dropout,
            reset_after=reset_after,
            seed=seed,
            layer_norm=layer_norm,
            name="gru_cell",
            **_cell_kwargs(kwargs),
        )
        super().__init__(
            cell,
            return_sequences=return_sequences,
            return_state=return_state,
            go_backwards=go_backwards,
            zero_output_for_mask=zero_output_for_mask,
            **kwargs,
        )

    @property
    def reset_after(self) -> bool:
        return self.cell.reset_after
