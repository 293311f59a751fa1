"""Recurrent cells: one timestep of SimpleRNN, LSTM and GRU.

The cells use exactly the weight layout of Keras' built-in cells (`kernel`,
`recurrent_kernel`, `bias`, same shapes and gate order), so weights copy both
ways with `set_weights`. Each cell splits its step into two public halves:

* `project_inputs(inputs)`: the input-side affine map, valid for inputs of any
  rank, so a sequence layer can project every timestep in one matmul;
* `recurrent_step(projected, states, recurrent_mask)`: the part that depends
  on the previous state.

`call()` is the two halves glued together, which is what `keras.layers.RNN`
needs; the fast sequence layers in `rnnpipe.models.recurrent` call the halves
directly, so both paths share one implementation of the maths.

Dropout is "variational": one input mask and one recurrent mask per sequence,
shared by all gates and reused at every timestep. The caching comes from
Keras' `DropoutRNNCell` mixin, which `keras.layers.RNN` recognises: it fills
the masks before its loop and clears them after, so masks are never created
inside the loop body (where a cached tensor would leak out of the loop's
graph) and never survive into the next batch. A cell driven by hand keeps its
masks until `reset_dropout_mask()` / `reset_recurrent_dropout_mask()` are
called, so call them between sequences.

Two optional extras, both off by default (with them off the weights and the
maths are exactly those of the Keras built-in cells):

* `layer_norm=True` (all cells): layer normalization (Ba et al., 2016) of
  the summed pre-activations `x W + h U + b`, **per gate** (each gate's
  `units` pre-activations are normalized on their own), with a learned gain
  `layer_norm_gamma` (ones) and bias `layer_norm_beta` (zeros) of shape
  `(gates * units,)`. The LSTM also normalizes the new cell state before the
  output `tanh` (`h = o * tanh(LN(c))`; the carried state `c` itself is not
  normalized), with `cell_norm_gamma` / `cell_norm_beta` of shape
  `(units,)`. Normalization happens in `recurrent_step`, on the sum, so the
  fast layers (which hoist `x W + b` out of the loop) compute the same thing.
* `peepholes=True` (`LSTMCell` only): diagonal peephole connections (Gers &
  Schmidhuber, 2000): the input and forget gates add `p_i * c_{t-1}` and
  `p_f * c_{t-1}`, the output gate `p_o * c_t`, with weights
  `input_peephole`, `forget_peephole`, `output_peephole` of shape
  `(units,)`, initialized to zeros. With `layer_norm` too, the peephole
  terms are added after the normalization.

The extra weights are created only when the option is on, after `kernel`,
`recurrent_kernel` and `bias`. Both options come after the Keras cells'
arguments (so positional calls stay those of the Keras cells) and are part of
`get_config()`.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import activations, constraints, initializers, ops, regularizers

# Private module, but the only way to be recognised by `keras.layers.RNN`'s
# mask pre-population (it checks `isinstance(cell, DropoutRNNCell)`).
from keras.src.layers.rnn.dropout_rnn_cell import DropoutRNNCell

from ._validation import (
    check_bool,
    check_int_at_least,
    check_positive_int,
    check_rate,
)

__all__ = ["GRUCell", "LSTMCell", "SimpleRNNCell"]


def _is_nested(states: Any) -> bool:
    return isinstance(states, (list, tuple))


# Variance epsilon of the layer normalization (as keras.layers.LayerNormalization).
LAYER_NORM_EPSILON = 1e-3


def _normalize(x: Any, gamma: Any, beta: Any) -> Any:
    """Layer-normalize `x` over its last axis, then scale by `gamma`, shift by `beta`."""
    mean = ops.mean(x, axis=-1, keepdims=True)
    variance = ops.var(x, axis=-1, keepdims=True)
    return (x - mean) * ops.rsqrt(variance + LAYER_NORM_EPSILON) * gamma + beta


class _RecurrentCell(keras.layers.Layer, DropoutRNNCell):
    """Shared weights, dropout and config handling of the rnnpipe cells.

    Subclasses set `_num_gates` and implement `recurrent_step`; they may
    override `_input_bias`, `_bias_shape` and `_make_bias_initializer`.
    """

    _num_gates = 1

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
        **kwargs: Any,
    ) -> None:
        # Validate before super().__init__ so a bad config leaves no half-built
        # layer behind in Keras' name registry.
        units = check_positive_int("units", units)
        check_bool("use_bias", use_bias)
        dropout = check_rate("dropout", dropout)
        recurrent_dropout = check_rate("recurrent_dropout", recurrent_dropout)
        if seed is not None:
            seed = check_int_at_least("seed", seed, 0)
        layer_norm = check_bool("layer_norm", layer_norm)
        super().__init__(**kwargs)
        self.units = units
        self.layer_norm = layer_norm
        self.activation = activations.get(activation)
        self.use_bias = use_bias
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.recurrent_initializer = initializers.get(recurrent_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.recurrent_regularizer = regularizers.get(recurrent_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self.kernel_constraint = constraints.get(kernel_constraint)
        self.recurrent_constraint = constraints.get(recurrent_constraint)
        self.bias_constraint = constraints.get(bias_constraint)
        self.dropout = dropout
        self.recurrent_dropout = recurrent_dropout
        self.seed = seed
        # The DropoutRNNCell mixin draws its masks from this generator.
        self.seed_generator = keras.random.SeedGenerator(seed=seed)
        self.state_size: int | list[int] = units
        self.output_size = units

    # -- weights -----------------------------------------------------------

    def _bias_shape(self) -> tuple[int, ...]:
        return (self._num_gates * self.units,)

    def _make_bias_initializer(self) -> Any:
        return self.bias_initializer

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        input_dim = input_shape[-1]
        if input_dim is None:
            raise ValueError(
                f"{type(self).__name__} needs a known last (feature) dimension. "
                f"Received: input_shape={tuple(input_shape)}"
            )
        width = self._num_gates * self.units
        self.kernel = self.add_weight(
            shape=(input_dim, width),
            name="kernel",
            initializer=self.kernel_initializer,
            regularizer=self.kernel_regularizer,
            constraint=self.kernel_constraint,
        )
        self.recurrent_kernel = self.add_weight(
            shape=(self.units, width),
            name="recurrent_kernel",
            initializer=self.recurrent_initializer,
            regularizer=self.recurrent_regularizer,
            constraint=self.recurrent_constraint,
        )
        if self.use_bias:
            self.bias = self.add_weight(
                shape=self._bias_shape(),
                name="bias",
                initializer=self._make_bias_initializer(),
                regularizer=self.bias_regularizer,
                constraint=self.bias_constraint,
            )
        else:
            self.bias = None
        if self.layer_norm:
            self.layer_norm_gamma = self.add_weight(
                shape=(width,), name="layer_norm_gamma", initializer="ones"
            )
            self.layer_norm_beta = self.add_weight(
                shape=(width,), name="layer_norm_beta", initializer="zeros"
            )
        self._build_extra_weights()

    def _build_extra_weights(self) -> None:
        """Hook for subclass-specific optional weights (after the standard ones)."""

    def _normalize_gate(self, x: Any, gate: int) -> Any:
        """Layer-normalize the `[batch, units]` pre-activation of gate `gate`."""
        sl = slice(gate * self.units, (gate + 1) * self.units)
        return _normalize(x, self.layer_norm_gamma[sl], self.layer_norm_beta[sl])

    def _input_bias(self) -> Any:
        return self.bias

    # -- maths -------------------------------------------------------------

    def project_inputs(self, inputs: Any) -> Any:
        """Input-side affine map `inputs @ kernel + input_bias`.

        Accepts `[..., input_dim]` and returns `[..., gates * units]`; inputs
        of rank > 2 are flattened so the whole batch of timesteps is a single
        matrix multiplication.
        """
        if len(inputs.shape) > 2:
            leading = ops.shape(inputs)[:-1]
            flat = ops.reshape(inputs, (-1, inputs.shape[-1]))
            projected = self.project_inputs(flat)
            return ops.reshape(projected, (*leading, projected.shape[-1]))
        projected = ops.matmul(inputs, self.kernel)
        if self.use_bias:
            projected = ops.add(projected, self._input_bias())
        return projected

    def recurrent_step(
        self, projected: Any, states: list[Any], recurrent_mask: Any = None
    ) -> tuple[Any, list[Any]]:
        """One timestep from projected inputs and the previous states.

        Args:
            projected: `project_inputs()` of this step's (dropped-out) inputs,
                shape `[batch, gates * units]`.
            states: list of previous state tensors, each `[batch, units]`.
            recurrent_mask: optional `[batch, units]` multiplier applied to the
                previous output before the recurrent matmul (recurrent dropout).

        Returns:
            `(output, new_states)` with `new_states` a list like `states`.
        """
        raise NotImplementedError

    def call(self, inputs: Any, states: Any, training: bool = False) -> tuple[Any, Any]:
        nested = _is_nested(states)
        states = list(states) if nested else [states]
        if training and self.dropout > 0.0:
            inputs = inputs * self.get_dropout_mask(inputs)
        recurrent_mask = None
        if training and self.recurrent_dropout > 0.0:
            recurrent_mask = self.get_recurrent_dropout_mask(states[0])
        output, new_states = self.recurrent_step(
            self.project_inputs(inputs), states, recurrent_mask
        )
        return output, (new_states if nested else new_states[0])

    def get_initial_state(self, batch_size: Any = None) -> list[Any]:
        sizes = self.state_size if _is_nested(self.state_size) else [self.state_size]
        return [ops.zeros((batch_size, size), dtype=self.compute_dtype) for size in sizes]

    # -- config ------------------------------------------------------------

    def _argument_config(self) -> dict[str, Any]:
        """Constructor arguments only (no name/dtype/trainable).

        The fast sequence layers merge this into their own config.
        """
        return {
            "units": self.units,
            "activation": activations.serialize(self.activation),
            "use_bias": self.use_bias,
            "kernel_initializer": initializers.serialize(self.kernel_initializer),
            "recurrent_initializer": initializers.serialize(self.recurrent_initializer),
            "bias_initializer": initializers.serialize(self.bias_initializer),
            "kernel_regularizer": regularizers.serialize(self.kernel_regularizer),
            "recurrent_regularizer": regularizers.serialize(self.recurrent_regularizer),
            "bias_regularizer": regularizers.serialize(self.bias_regularizer),
            "kernel_constraint": constraints.serialize(self.kernel_constraint),
            "recurrent_constraint": constraints.serialize(self.recurrent_constraint),
            "bias_constraint": constraints.serialize(self.bias_constraint),
            "dropout": self.dropout,
            "recurrent_dropout": self.recurrent_dropout,
            "seed": self.seed,
            "layer_norm": self.layer_norm,
        }

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), **self._argument_config()}


@keras.saving.register_keras_serializable(package="rnnpipe")
class SimpleRNNCell(_RecurrentCell):
    """Fully-connected RNN cell: `h_t = activation(x_t W + h_{t-1} U + b)`.

    Weight layout is that of `keras.layers.SimpleRNNCell`: `kernel`
    `(input_dim, units)`, `recurrent_kernel` `(units, units)`, `bias`
    `(units,)`.

    Args:
        units: positive integer, size of the output and state.
        activation: activation of the new state. Default `"tanh"`.
        use_bias: whether to add a bias. Default `True`.
        kernel_initializer, recurrent_initializer, bias_initializer:
            initializers of the three weights.
        kernel_regularizer, recurrent_regularizer, bias_regularizer:
            optional regularizers of the three weights.
        kernel_constraint, recurrent_constraint, bias_constraint:
            optional constraints of the three weights.
        dropout: float in [0, 1), fraction of input units dropped (one mask
            per sequence, reused at every step).
        recurrent_dropout: float in [0, 1), fraction of the previous output
            dropped before the recurrent matmul (one mask per sequence).
        seed: optional integer seed of the dropout masks.
        layer_norm: layer-normalize the pre-activation `x W + h U + b` (see
            the module docstring).
        **kwargs: base `keras.layers.Layer` arguments (`name`, `dtype`, ...).

    Example:

    >>> import numpy as np, keras
    >>> from rnnpipe.models import SimpleRNNCell
    >>> rnn = keras.layers.RNN(SimpleRNNCell(4), return_sequences=True)
    >>> tuple(rnn(np.zeros((2, 5, 3), "float32")).shape)
    (2, 5, 4)
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
        **kwargs: Any,
    ) -> None:
        super().__init__(
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
            **kwargs,
        )

    def recurrent_step(
        self, projected: Any, states: list[Any], recurrent_mask: Any = None
    ) -> tuple[Any, list[Any]]:
        h_tm1 = states[0]
        if recurrent_mask is not None:
            h_tm1 = h_tm1 * recurrent_mask
        z = projected + ops.matmul(h_tm1, self.recurrent_kernel)
        if self.layer_norm:
            z = self._normalize_gate(z, 0)
        output = self.activation(z)
        return output, [output]


@keras.saving.register_keras_serializable(package="rnnpipe")
class LSTMCell(_RecurrentCell):
    """Long short-term memory cell (Hochreiter & Schmidhuber, 1997).

    Weight layout is that of `keras.layers.LSTMCell`: `kernel`
    `(input_dim, 4 * units)`, `recurrent_kernel` `(units, 4 * units)`, `bias`
    `(4 * units,)`, gates in the order input, forget, cell, output. States are
    `[h, c]`.

    Args:
        units: positive integer, size of the output and of each state.
        activation: activation of the cell candidate and of the output.
            Default `"tanh"`.
        recurrent_activation: activation of the gates. Default `"sigmoid"`.
        use_bias: whether to add a bias. Default `True`.
        kernel_initializer, recurrent_initializer, bias_initializer:
            initializers of the three weights.
        unit_forget_bias: if `True` (default), the forget-gate slice of the
            bias starts at 1 (Jozefowicz et al., 2015) whatever
            `bias_initializer` gives the other gates.
        kernel_regularizer, recurrent_regularizer, bias_regularizer:
            optional regularizers of the three weights.
        kernel_constraint, recurrent_constraint, bias_constraint:
            optional constraints of the three weights.
        dropout: float in [0, 1), fraction of input units dropped (one mask
            per sequence, shared by the four gates).
        recurrent_dropout: float in [0, 1), fraction of `h` dropped before the
            recurrent matmul (one mask per sequence, shared by the gates).
        seed: optional integer seed of the dropout masks.
        layer_norm: layer-normalize each gate's pre-activation
            `x W + h U + b` and the cell state before the output activation
            (see the module docstring).
        peepholes: diagonal peephole connections from `c_{t-1}` to the input
            and forget gates and from `c_t` to the output gate.
        **kwargs: base `keras.layers.Layer` arguments (`name`, `dtype`, ...).

    Example:

    >>> import numpy as np, keras
    >>> from rnnpipe.models import LSTMCell
    >>> rnn = keras.layers.RNN(LSTMCell(4), return_state=True)
    >>> output, h, c = rnn(np.zeros((2, 5, 3), "float32"))
    >>> tuple(output.shape), tuple(c.shape)
    ((2, 4), (2, 4))
    """

    _num_gates = 4

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
        **kwargs: Any,
    ) -> None:
        check_bool("unit_forget_bias", unit_forget_bias)
        peepholes = check_bool("peepholes", peepholes)
        super().__init__(
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
            **kwargs,
        )
        self.recurrent_activation = activations.get(recurrent_activation)
        self.unit_forget_bias = unit_forget_bias
        self.peepholes = peepholes
        self.state_size = [units, units]

    def _build_extra_weights(self) -> None:
        if self.layer_norm:
            self.cell_norm_gamma = self.add_weight(
                shape=(self.units,), name="cell_norm_gamma", initializer="ones"
            )
            self.cell_norm_beta = self.add_weight(
                shape=(self.units,), name="cell_norm_beta", initializer="zeros"
            )
        if self.peepholes:
            for gate in ("input", "forget", "output"):
                weight = self.add_weight(
                    shape=(self.units,), name=f"{gate}_peephole", initializer="zeros"
                )
                setattr(self, f"{gate}_peephole", weight)

    def _make_bias_initializer(self) -> Any:
        if not self.unit_forget_bias:
            return self.bias_initializer
        units, base = self.units, self.bias_initializer

        # Same construction as Keras' LSTMCell, so seeded inits agree too.
        def bias_initializer(_: Any, *args: Any, **kwargs: Any) -> Any:
            return ops.concatenate(
                [
                    base((units,), *args, **kwargs),
                    initializers.get("ones")((units,), *args, **kwargs),
                    base((units * 2,), *args, **kwargs),
                ]
            )

        return bias_initializer

    def recurrent_step(
        self, projected: Any, states: list[Any], recurrent_mask: Any = None
    ) -> tuple[Any, list[Any]]:
        h_tm1, c_tm1 = states[0], states[1]
        if recurrent_mask is not None:
            h_tm1 = h_tm1 * recurrent_mask
        z = projected + ops.matmul(h_tm1, self.recurrent_kernel)
        z_i, z_f, z_c, z_o = ops.split(z, 4, axis=-1)
        if self.layer_norm:
            z_i, z_f, z_c, z_o = (
                self._normalize_gate(part, gate) for gate, part in enumerate((z_i, z_f, z_c, z_o))
            )
        if self.peepholes:
            z_i = z_i + self.input_peephole * c_tm1
            z_f = z_f + self.forget_peephole * c_tm1
        i = self.recurrent_activation(z_i)
        f = self.recurrent_activation(z_f)
        c = f * c_tm1 + i * self.activation(z_c)
        if self.peepholes:
            z_o = z_o + self.output_peephole * c
        o = self.recurrent_activation(z_o)
        c_out = _normalize(c, self.cell_norm_gamma, self.cell_norm_beta) if self.layer_norm else c
        h = o * self.activation(c_out)
        return h, [h, c]

    def _argument_config(self) -> dict[str, Any]:
        return {
            **super()._argument_config(),
            "recurrent_activation": activations.serialize(self.recurrent_activation),
            "unit_forget_bias": self.unit_forget_bias,
            "peepholes": self.peepholes,
        }


@keras.saving.register_keras_serializable(package="rnnpipe")
class GRUCell(_RecurrentCell):
    """Gated recurrent unit cell (Cho et al., 2014), both bias conventions.

    Weight layout is that of `keras.layers.GRUCell`: `kernel`
    `(input_dim, 3 * units)`, `recurrent_kernel` `(units, 3 * units)`, gates
    in the order update (z), reset (r), candidate (h). With
    `reset_after=True` (default, cuDNN convention) the reset gate multiplies
    the recurrent projection of the candidate and `bias` is `(2, 3 * units)`
    (input bias, recurrent bias); with `reset_after=False` it multiplies the
    previous state before that projection and `bias` is `(3 * units,)`.

    Args:
        units: positive integer, size of the output and state.
        activation: activation of the candidate. Default `"tanh"`.
        recurrent_activation: activation of the gates. Default `"sigmoid"`.
        use_bias: whether to add biases. Default `True`.
        kernel_initializer, recurrent_initializer, bias_initializer:
            initializers of the three weights.
        kernel_regularizer, recurrent_regularizer, bias_regularizer:
            optional regularizers of the three weights.
        kernel_constraint, recurrent_constraint, bias_constraint:
            optional constraints of the three weights.
        dropout: float in [0, 1), fraction of input units dropped (one mask
            per sequence, shared by the three gates).
        recurrent_dropout: float in [0, 1), fraction of `h` dropped before the
            recurrent matmuls (one mask per sequence, shared by the gates).
        reset_after: bool, the convention described above. Default `True`.
        seed: optional integer seed of the dropout masks.
        layer_norm: layer-normalize each gate's pre-activation (for the
            candidate: `x W_h + b_h + r * (h U_h + b'_h)` with `reset_after`,
            `x W_h + b_h + (r * h) U_h` without; see the module docstring).
        **kwargs: base `keras.layers.Layer` arguments (`name`, `dtype`, ...).

    Example:

    >>> import numpy as np, keras
    >>> from rnnpipe.models import GRUCell
    >>> layer = keras.layers.Bidirectional(keras.layers.RNN(GRUCell(4)))
    >>> tuple(layer(np.zeros((2, 5, 3), "float32")).shape)
    (2, 8)
    """

    _num_gates = 3

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
        **kwargs: Any,
    ) -> None:
        check_bool("reset_after", reset_after)
        super().__init__(
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
            **kwargs,
        )
        self.recurrent_activation = activations.get(recurrent_activation)
        self.reset_after = reset_after

    def _bias_shape(self) -> tuple[int, ...]:
        if self.reset_after:
            return (2, 3 * self.units)
        return (3 * self.units,)

    def _input_bias(self) -> Any:
        return self.bias[0] if self.reset_after else self.bias

    def _maybe_normalize(self, x: Any, gate: int) -> Any:
        return self._normalize_gate(x, gate) if self.layer_norm else x

    def recurrent_step(
        self, projected: Any, states: list[Any], recurrent_mask: Any = None
    ) -> tuple[Any, list[Any]]:
        h_tm1 = states[0]
        # Dropout touches only the recurrent inputs; the final interpolation
        # below uses the undropped state, as Keras does.
        h_in = h_tm1 if recurrent_mask is None else h_tm1 * recurrent_mask
        x_z, x_r, x_h = ops.split(projected, 3, axis=-1)
        units = self.units
        if self.reset_after:
            inner = ops.matmul(h_in, self.recurrent_kernel)
            if self.use_bias:
                inner = ops.add(inner, self.bias[1])
            r_z, r_r, r_h = ops.split(inner, 3, axis=-1)
            z = self.recurrent_activation(self._maybe_normalize(x_z + r_z, 0))
            r = self.recurrent_activation(self._maybe_normalize(x_r + r_r, 1))
            candidate = self.activation(self._maybe_normalize(x_h + r * r_h, 2))
        else:
            inner = ops.matmul(h_in, self.recurrent_kernel[:, : 2 * units])
            r_z, r_r = ops.split(inner, 2, axis=-1)
            z = self.recurrent_activation(self._maybe_normalize(x_z + r_z, 0))
            r = self.recurrent_activation(self._maybe_normalize(x_r + r_r, 1))
            candidate = self.activation(
                self._maybe_normalize(
                    x_h + ops.matmul(r * h_in, self.recurrent_kernel[:, 2 * units :]), 2
                )
            )
        h = z * h_tm1 + (1 - z) * candidate
        return h, [h]

    def _argument_config(self) -> dict[str, Any]:
        return {
            **super()._argument_config(),
            "recurrent_activation": activations.serialize(self.recurrent_activation),
            "reset_after": self.reset_after,
        }
