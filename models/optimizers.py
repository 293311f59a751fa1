"""Keras optimizers with gradient clipping, built from a plain config dict."""

from __future__ import annotations

from typing import Any

import keras

from ._validation import check_choice, check_positive_float

__all__ = ["OPTIMIZERS", "make_optimizer"]

OPTIMIZERS = {
    "adam": keras.optimizers.Adam,
    "adamw": keras.optimizers.AdamW,
    "sgd": keras.optimizers.SGD,
    "rmsprop": keras.optimizers.RMSprop,
    "adagrad": keras.optimizers.Adagrad,
    "adamax": keras.optimizers.Adamax,
    "nadam": keras.optimizers.Nadam,
    "lion": keras.optimizers.Lion,
}
_CLIPPING = ("clipnorm", "clipvalue", "global_clipnorm")


def make_optimizer(
    name: str = "adam",
    learning_rate: float | keras.optimizers.schedules.LearningRateSchedule = 1e-3,
    clipnorm: float | None = None,
    clipvalue: float | None = None,
    global_clipnorm: float | None = None,
    **options: Any,
) -> keras.optimizers.Optimizer:
    """Build a Keras optimizer with at most one gradient-clipping mode, e.g. `make_optimizer(**cfg["optimizer"])`.

    RNNs are where clipping matters: one long sequence can produce a gradient orders of magnitude larger
    than the rest (see `GradientDiagnostics`). `global_clipnorm` rescales all gradients together and keeps
    their direction, which is usually what you want; `clipnorm` rescales each variable's gradient on its
    own, `clipvalue` clips each element.

    Args:
        name: one of `OPTIMIZERS` ("adam", "adamw", "sgd", "rmsprop", "adagrad", "adamax", "nadam", "lion"),
            case-insensitive.
        learning_rate: a number > 0 or a `keras.optimizers.schedules.LearningRateSchedule`.
        clipnorm: clip each variable's gradient to this L2 norm.
        clipvalue: clip each gradient element to [-clipvalue, clipvalue].
        global_clipnorm: clip all gradients together to this global L2 norm.
        **options: further constructor arguments of the optimizer (`momentum`, `weight_decay`, ...).

    Returns:
        A new, unbuilt `keras.optimizers.Optimizer`.

    Example:

    >>> from rnnpipe.models import make_optimizer
    >>> optimizer = make_optimizer("sgd", learning_rate=0.1, global_clipnorm=1.0, momentum=0.9)
    >>> type(optimizer).__name__, optimizer.global_clipnorm, optimizer.clipnorm
    ('SGD', 1.0, None)
    """
    if not isinstance(name, str):
        raise ValueError(f"Argument `name` must be a string, one of {', '.join(OPTIMIZERS)}. Received: name={name!r}")
    check_choice("name", name.lower(), tuple(OPTIMIZERS))
    if not isinstance(learning_rate, keras.optimizers.schedules.LearningRateSchedule):
        learning_rate = check_positive_float("learning_rate", learning_rate)
    clipping = {"clipnorm": clipnorm, "clipvalue": clipvalue, "global_clipnorm": global_clipnorm}
    chosen = {key: value for key, value in clipping.items() if value is not None}
    if len(chosen) > 1:
        received = ", ".join(f"{key}={value!r}" for key, value in chosen.items())
        raise ValueError(f"Expected at most one of {', '.join(_CLIPPING)} to be set. Received: {received}")
    for key, value in chosen.items():
        check_positive_float(key, value)
    return OPTIMIZERS[name.lower()](learning_rate=learning_rate, **chosen, **options)
