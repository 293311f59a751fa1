"""Exponential smoothing as a Keras layer: the statistical forecast a recurrent forecaster can correct."""

from __future__ import annotations

import math
from typing import Any

import keras
import tensorflow as tf

from ._validation import check_bool, check_open_interval, check_positive_int

__all__ = ["HoltWinters"]

PHI_MIN = 0.8  # the damping range statsmodels and R's forecast::ets allow


def _logit(p: float) -> float:
    return math.log(p / (1.0 - p))


@keras.saving.register_keras_serializable(package="rnnpipe")
class HoltWinters(keras.layers.Layer):
    """Additive Holt-Winters forecast of each window, with learned smoothing weights.

    Runs additive exponential smoothing (level, trend, and with `season > 1`
    a seasonal component; Hyndman & Athanasopoulos' ETS(A,Ad,A)) over the
    first feature of a `[batch, time, features]` window and returns the
    next `horizon` values. The smoothing weights alpha, beta, gamma (and the
    damping phi) are weights of the layer, shared by every window and
    trained with the rest of the model, so they are fitted to the
    multi-step forecast error rather than the one-step one. The states
    start from the window itself: a least-squares line through the means of
    its whole seasons gives the level and trend, the average deviation
    from that line at each step of the season gives the seasonal
    component. The forecast is linear in the window, so it commutes with
    any shift and scale of the values (it works on normalized windows).

    Args:
        horizon: number of future steps (>= 1).
        season: season length in steps (>= 1; 1 = Holt's linear trend
            method, no seasonal component). The window must hold at least
            two whole seasons (two steps with `season=1`).
        damped: damp the trend by phi per step (phi learned in [0.8, 1)).
        alpha: initial level smoothing weight, in (0, 1).
        beta: initial trend smoothing weight, in (0, 1).
        gamma: initial seasonal smoothing weight, in (0, 1).
        phi: initial damping, in (0.8, 1).
        **kwargs: base `keras.layers.Layer` arguments (`name`, `trainable`, ...).

    Example:

    >>> import numpy as np
    >>> from rnnpipe.models import HoltWinters
    >>> line = np.arange(8, dtype="float32").reshape(1, 8, 1)
    >>> np.round(HoltWinters(horizon=3, damped=False)(line).numpy(), 4).tolist()
    [[8.0, 9.0, 10.0]]
    """

    def __init__(self, horizon: int, season: int = 1, damped: bool = True, alpha: float = 0.2, beta: float = 0.05,
                 gamma: float = 0.1, phi: float = 0.95, **kwargs: Any) -> None:
        horizon = check_positive_int("horizon", horizon)
        season = check_positive_int("season", season)
        damped = check_bool("damped", damped)
        alpha, beta, gamma = (check_open_interval(n, v, 0.0, 1.0)
                              for n, v in (("alpha", alpha), ("beta", beta), ("gamma", gamma)))
        phi = check_open_interval("phi", phi, PHI_MIN, 1.0)
        super().__init__(**kwargs)
        self.horizon, self.season, self.damped = horizon, season, damped
        self.alpha, self.beta, self.gamma, self.phi = alpha, beta, gamma, phi

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        if len(input_shape) != 3 or input_shape[1] is None or input_shape[1] < 2 * self.season:
            raise ValueError(f"HoltWinters needs a [batch, time, features] window with a static time of at least two "
                             f"seasons (2 * season = {2 * self.season} steps). Received: "
                             f"input_shape={tuple(input_shape)}")
        self.window = int(input_shape[1])

        def weight(name: str, value: float) -> Any:
            return self.add_weight(name=name, shape=(), initializer=keras.initializers.Constant(_logit(value)))

        # Logits: any step of the optimizer keeps the weights inside their ranges.
        self.alpha_logit = weight("alpha_logit", self.alpha)
        self.beta_logit = weight("beta_logit", self.beta)
        self.gamma_logit = weight("gamma_logit", self.gamma) if self.season > 1 else None
        self.phi_logit = weight("phi_logit", (self.phi - PHI_MIN) / (1.0 - PHI_MIN)) if self.damped else None

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return (input_shape[0], self.horizon)

    def smoothing(self) -> dict[str, Any]:
        """The current alpha, beta, gamma (1 without a season) and phi (1 undamped) as scalar tensors."""
        one = tf.constant(1.0)
        return {"alpha": tf.sigmoid(self.alpha_logit), "beta": tf.sigmoid(self.beta_logit),
                "gamma": tf.sigmoid(self.gamma_logit) if self.gamma_logit is not None else one,
                "phi": PHI_MIN + (1.0 - PHI_MIN) * tf.sigmoid(self.phi_logit) if self.phi_logit is not None else one}

    def _initial_states(self, y: Any) -> tuple[Any, Any, list[Any]]:
        m, k = self.season, self.window // self.season
        blocks = tf.reshape(y[:, :k * m], (-1, k, m))
        means = tf.reduce_mean(blocks, axis=2)  # [batch, k]
        centre = tf.range(k, dtype=y.dtype) - (k - 1) / 2
        slope = tf.reduce_sum(means * centre, axis=1) / tf.reduce_sum(centre ** 2) / m  # per step
        middle = tf.reduce_mean(means, axis=1)  # the line's value at step (k*m - 1) / 2
        steps = tf.cast(tf.range(k * m), y.dtype) - (k * m - 1) / 2
        line = middle[:, None] + slope[:, None] * steps[None, :]
        seasonal = tf.reduce_mean(tf.reshape(y[:, :k * m] - line, (-1, k, m)), axis=1)
        seasonal -= tf.reduce_mean(seasonal, axis=1, keepdims=True)
        level = middle + slope * ((m - 1) - (k * m - 1) / 2)  # at step m - 1, where the filter takes over
        return level, slope, tf.unstack(seasonal, axis=1) if m > 1 else []

    def call(self, window: Any) -> Any:
        y = window[:, :, 0]
        p = self.smoothing()
        alpha, beta, gamma, phi = (tf.cast(p[k], y.dtype) for k in ("alpha", "beta", "gamma", "phi"))
        m = self.season
        level, trend, seasons = self._initial_states(y)
        # A Python loop over the static window: the steps unroll into plain graph ops.
        for t in range(m, self.window):
            s = seasons[t % m] if m > 1 else 0.0
            previous = level
            level = alpha * (y[:, t] - s) + (1.0 - alpha) * (previous + phi * trend)
            trend = beta * (level - previous) + (1.0 - beta) * phi * trend
            if m > 1:
                seasons[t % m] = gamma * (y[:, t] - level) + (1.0 - gamma) * s
        out, damping = [], 0.0
        for h in range(1, self.horizon + 1):
            damping = damping + phi ** h
            out.append(level + damping * trend + (seasons[(self.window - 1 + h) % m] if m > 1 else 0.0))
        return tf.stack(out, axis=1)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "horizon": self.horizon, "season": self.season, "damped": self.damped,
                "alpha": self.alpha, "beta": self.beta, "gamma": self.gamma, "phi": self.phi}
