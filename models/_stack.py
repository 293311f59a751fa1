"""Stacked recurrent layers, as the model builders of `rnnpipe.models` make them.

Every builder reads its sequence with one or more of rnnpipe's fast recurrent
layers (`GRU`, `LSTM`, `SimpleRNN`), chosen by a cell name, optionally each
wrapped in `keras.layers.Bidirectional` (merge mode "concat"). The helpers here
make those layers in one place; the builders keep their own layer names (they
are part of saved models and weight files) by passing name templates.
"""

from __future__ import annotations

from typing import Any

import keras

from ._validation import check_bool, check_choice, check_positive_int, check_rate
from .recurrent import GRU, LSTM, SimpleRNN

__all__ = ["CELL_TYPES", "check_stack_arguments", "recurrent_layer", "recurrent_stack"]

# Cell name -> rnnpipe's fast layer class.
CELL_TYPES: dict[str, type[keras.layers.Layer]] = {"gru": GRU, "lstm": LSTM, "simple_rnn": SimpleRNN}


def _check_name_template(arg: str, value: Any) -> str:
    """Return `value` if it is a non-empty name template with no fields but `cell` and `index`, else raise."""
    try:
        valid = isinstance(value, str) and bool(value.format(cell="gru", index=0))
    except (KeyError, IndexError, ValueError):
        valid = False
    if not valid:
        raise ValueError(
            f"Argument `{arg}` must be a non-empty name template whose only fields are {{cell}} and {{index}}. "
            f"Received: {arg}={value!r}"
        )
    return value


def check_stack_arguments(
    cell: Any,
    units: Any,
    num_layers: Any,
    bidirectional: Any = False,
    dropout: Any = 0.0,
    recurrent_dropout: Any = 0.0,
) -> tuple[str, int, int, bool, float, float]:
    """Checks the arguments every recurrent stack takes, in this order, and returns them normalised.

    A builder calls it before making any layer, so a bad configuration fails
    at once, with the same message whichever builder it was given to.

    Args:
        cell: one of `"gru"`, `"lstm"`, `"simple_rnn"`.
        units: positive int.
        num_layers: positive int.
        bidirectional: bool.
        dropout: float in [0, 1).
        recurrent_dropout: float in [0, 1).

    Returns:
        `(cell, units, num_layers, bidirectional, dropout, recurrent_dropout)`,
        the numbers as Python `int` / `float`.

    Raises:
        ValueError: naming the first argument out of its range, what was
            expected and what was received.

    Example:

    >>> import numpy as np
    >>> from rnnpipe.models._stack import check_stack_arguments
    >>> check_stack_arguments("gru", np.int64(8), 2, True, np.float32(0.25))
    ('gru', 8, 2, True, 0.25, 0.0)
    """
    check_choice("cell", cell, tuple(CELL_TYPES))
    units = check_positive_int("units", units)
    num_layers = check_positive_int("num_layers", num_layers)
    check_bool("bidirectional", bidirectional)
    dropout = check_rate("dropout", dropout)
    recurrent_dropout = check_rate("recurrent_dropout", recurrent_dropout)
    return cell, units, num_layers, bidirectional, dropout, recurrent_dropout


def recurrent_layer(
    cell: str,
    units: int,
    *,
    bidirectional: bool = False,
    name: str | None = None,
    bidirectional_name: str | None = None,
    **kwargs: Any,
) -> keras.layers.Layer:
    """One rnnpipe recurrent layer of the named cell, optionally bidirectional.

    Args:
        cell: `"gru"`, `"lstm"` or `"simple_rnn"`.
        units: units of the layer (per direction).
        bidirectional: wrap the layer in `keras.layers.Bidirectional`
            (merge mode "concat"): the output then has `2 * units` features
            and, with `return_state=True`, the forward states come first,
            then the backward ones.
        name: name of the recurrent layer (inside the wrapper when
            bidirectional); `None` lets Keras choose one.
        bidirectional_name: name of the `Bidirectional` wrapper; `None` lets
            Keras choose one. Unused when `bidirectional` is False.
        **kwargs: arguments of the layer class (`dropout`,
            `recurrent_dropout`, `return_sequences`, `return_state`,
            `layer_norm`, ...).

    Returns:
        The layer, not yet built.

    Raises:
        ValueError: if `cell` is not one of the names above, or `units` is not
            a positive integer.

    Example:

    >>> import numpy as np
    >>> from rnnpipe.models._stack import recurrent_layer
    >>> layer = recurrent_layer("lstm", 3, bidirectional=True, return_sequences=True)
    >>> tuple(layer(np.zeros((2, 5, 4), "float32")).shape)
    (2, 5, 6)
    """
    check_choice("cell", cell, tuple(CELL_TYPES))
    units = check_positive_int("units", units)
    check_bool("bidirectional", bidirectional)
    layer = CELL_TYPES[cell](units, name=name, **kwargs)
    if bidirectional:
        layer = keras.layers.Bidirectional(layer, merge_mode="concat", name=bidirectional_name)
    return layer


def recurrent_stack(
    cell: str,
    units: int,
    num_layers: int = 1,
    *,
    bidirectional: bool = False,
    dropout: float = 0.0,
    recurrent_dropout: float = 0.0,
    return_sequences: bool = True,
    return_state: bool = False,
    name: str = "{cell}_{index}",
    bidirectional_name: str = "bi_{cell}_{index}",
    **kwargs: Any,
) -> list[keras.layers.Layer]:
    """The layers of a stack of `num_layers` recurrent layers, bottom first.

    Apply them in order: each layer reads the previous one's output
    sequence. Lower layers always return sequences; `return_sequences`
    chooses what the top layer returns (the whole sequence or its last
    output). `return_state` is passed to every layer, so an encoder can hand
    each layer's final states on (unpack `output, *states = layer(x)`).

    Args:
        cell: `"gru"`, `"lstm"` or `"simple_rnn"` (rnnpipe's fast layers).
        units: units of each layer (per direction).
        num_layers: number of stacked layers (>= 1).
        bidirectional: wrap each layer in `keras.layers.Bidirectional`
            (merge mode "concat"), so each outputs `2 * units` features.
        dropout: input dropout of each layer, in [0, 1).
        recurrent_dropout: recurrent dropout of each layer, in [0, 1).
        return_sequences: whether the top layer returns the whole sequence.
        return_state: whether every layer also returns its final states.
        name: template of each recurrent layer's name, formatted with the
            fields `cell` and `index` (0 for the bottom layer).
        bidirectional_name: template of each `Bidirectional` wrapper's name,
            with the same fields. Unused when `bidirectional` is False.
        **kwargs: further arguments of every layer (`layer_norm`, `seed`, ...).

    Returns:
        A list of `num_layers` layers, not yet built.

    Raises:
        ValueError: if an argument is out of its range (the message names
            what was expected and what was received).

    Example:

    >>> import numpy as np
    >>> from rnnpipe.models._stack import recurrent_stack
    >>> layers = recurrent_stack("gru", 4, num_layers=2, bidirectional=True, return_sequences=False)
    >>> [layer.name for layer in layers]
    ['bi_gru_0', 'bi_gru_1']
    >>> x = np.zeros((3, 5, 2), "float32")
    >>> for layer in layers:
    ...     x = layer(x)
    >>> tuple(x.shape)
    (3, 8)
    """
    cell, units, num_layers, bidirectional, dropout, recurrent_dropout = check_stack_arguments(
        cell, units, num_layers, bidirectional, dropout, recurrent_dropout
    )
    check_bool("return_sequences", return_sequences)
    check_bool("return_state", return_state)
    name = _check_name_template("name", name)
    bidirectional_name = _check_name_template("bidirectional_name", bidirectional_name)
    return [
        recurrent_layer(
            cell,
            units,
            bidirectional=bidirectional,
            dropout=dropout,
            recurrent_dropout=recurrent_dropout,
            return_sequences=return_sequences or index < num_layers - 1,
            return_state=return_state,
            name=name.format(cell=cell, index=index),
            bidirectional_name=bidirectional_name.format(cell=cell, index=index),
            **kwargs,
        )
        for index in range(num_layers)
    ]
