"""Keras optimizers with gradient clipping, built from a plain config dict."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras

from ._validation import check_choice, check_patterns, check_positive_float

__all__ = ["OPTIMIZERS", "make_optimizer", "warm_up_moving_average"]

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
    exclude_from_weight_decay: Sequence[str] = (),
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
        exclude_from_weight_decay: regular expressions; a variable whose name (Keras' short name, such as
            `bias`, `embeddings`, `kernel`, `recurrent_kernel`, `gamma`) contains a match is not decayed.
        **options: further constructor arguments of the optimizer (`momentum`, `weight_decay`, ...). With
            `use_ema=True` the moving average of the weights warms up (see `warm_up_moving_average`).

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
    exclude = check_patterns("exclude_from_weight_decay", exclude_from_weight_decay)
    optimizer = OPTIMIZERS[name.lower()](learning_rate=learning_rate, **chosen, **options)
    if exclude:
        optimizer.exclude_from_weight_decay(var_names=exclude)
    return warm_up_moving_average(optimizer) if optimizer.use_ema else optimizer


def warm_up_moving_average(optimizer: keras.optimizers.Optimizer) -> keras.optimizers.Optimizer:
    """Make `optimizer`'s moving average of the weights (`use_ema=True`) move at momentum
    `min(ema_momentum, (1 + t) / (10 + t))` at step t, as TF1's `ExponentialMovingAverage(num_updates=...)` did.

    Keras moves the average at `ema_momentum` from the first step on, so with 0.998 a run of a few hundred steps
    keeps mostly its first, untrained weights. Warmed up, the average covers about the last t / 9 steps until
    the configured momentum takes over (after about 4,500 steps at 0.998). Keras has no hook for the rule, so
    this replaces the optimizer's update of the average (called once per step inside the train function).

    Example:

    >>> import keras
    >>> from rnnpipe.models import warm_up_moving_average
    >>> optimizer = warm_up_moving_average(keras.optimizers.SGD(0.1, use_ema=True, ema_momentum=0.998))
    >>> optimizer.ema_momentum
    0.998
    """
    if not optimizer.use_ema:
        raise ValueError(f"Expected an optimizer built with use_ema=True. Received: {type(optimizer).__name__} "
                         "with use_ema=False")
    ops = keras.ops

    def update(trainable_variables: list) -> None:
        step = ops.cast(optimizer.iterations, "float32")
        # Step 0 copies the weights (the average starts at zero), as Keras does.
        momentum = ops.minimum(optimizer.ema_momentum, (1.0 + step) / (10.0 + step)) * ops.cast(step > 0, "float32")
        for variable, average in zip(trainable_variables, optimizer._model_variables_moving_average, strict=True):
            if average is not None:
                rate = ops.cast(momentum, variable.dtype)
                average.assign(rate * average + (1.0 - rate) * variable)

    optimizer._update_model_variables_moving_average = update
    return optimizer
