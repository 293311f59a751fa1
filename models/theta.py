"""The Theta method as a Keras layer: a statistical forecast of each window that a forecaster can fall back on."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import tensorflow as tf

from ._validation import check_positive_int

__all__ = ["Theta"]

# statsmodels' ThetaModel tests seasonality at 10 %: chi2(1) critical value 1.645 ** 2.
SEASONALITY_CRITICAL = 2.705543454095404
# Smoothing weights the SES step may pick (statsmodels optimizes over [0, 1]): finest where the level moves
# slowly, since there a small change of the weight moves the forecast most.
ALPHAS = np.concatenate([np.arange(1, 21) / 100, np.arange(22, 51, 2) / 100, np.arange(55, 101, 5) / 100])


@keras.saving.register_keras_serializable(package="rnnpipe")
class Theta(keras.layers.Layer):
    """Theta-method forecast of each window (Assimakopoulos & Nikolopoulos, 2000), as statsmodels'
    `ThetaModel` makes it with an additive decomposition.

    Over the first feature of a `[batch, time, features]` window, per row:
    when `season > 1` and the autocorrelation at lag `season` passes
    statsmodels' 10 % seasonality test, classical additive decomposition
    removes the seasonal component; simple exponential smoothing (its
    weight the one of least one-step squared error on a grid, refined by
    a parabola; the level starting at the first value) and half the slope of the
    least-squares line through the window then forecast the next `horizon`
    values, and the seasonal component is added back. Nothing is trained:
    the weight is chosen per window, so the forecast commutes with any
    shift and scale of the values (it works on normalized windows).

    Args:
        horizon: number of future steps (>= 1).
        season: season length in steps (>= 1; 1 = no seasonal component).
            The window must hold at least two whole seasons.
        **kwargs: base `keras.layers.Layer` arguments (`name`, `dtype`, ...).

    Example:

    >>> import numpy as np
    >>> from rnnpipe.models import Theta
    >>> flat = np.full((1, 8, 1), 3.0, dtype="float32")
    >>> np.round(Theta(horizon=2)(flat).numpy(), 4).tolist()
    [[3.0, 3.0]]
    """

    def __init__(self, horizon: int, season: int = 1, **kwargs: Any) -> None:
        horizon = check_positive_int("horizon", horizon)
        season = check_positive_int("season", season)
        kwargs.setdefault("trainable", False)
        super().__init__(**kwargs)
        self.horizon, self.season = horizon, season

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        if len(input_shape) != 3 or input_shape[1] is None or input_shape[1] < 2 * self.season:
            raise ValueError(f"Theta needs a [batch, time, features] window with a static time of at least two "
                             f"seasons (2 * season = {2 * self.season} steps). Received: "
                             f"input_shape={tuple(input_shape)}")
        self.window = int(input_shape[1])

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return (input_shape[0], self.horizon)

    def _seasonal_indices(self) -> np.ndarray:
        """``[window, season]``: the linear map from a window to its additive seasonal indices by phase
        (statsmodels' ``seasonal_decompose``: a centred moving average as the trend, the mean detrended value
        at each phase, centred on zero)."""
        n, m = self.window, self.season
        weights = np.r_[0.5, np.ones(m - 1), 0.5] / m if m % 2 == 0 else np.ones(m) / m
        half = len(weights) // 2
        detrend = np.eye(n)[:, half:n - half].copy()  # column j: the value at t = half + j ...
        for j in range(n - 2 * half):
            detrend[j:j + len(weights), j] -= weights  # ... minus its centred moving average
        phases = (np.arange(half, n - half) % m)[:, None] == np.arange(m)[None, :]
        means = detrend @ (phases / phases.sum(axis=0))
        return means - means.mean(axis=1, keepdims=True)

    def call(self, window: Any) -> Any:
        y = tf.cast(window[:, :, 0], tf.float64)  # SSE over hundreds of steps and powers of (1 - alpha)
        n, m = self.window, self.season
        steps = tf.range(n, dtype=y.dtype)
        if m > 1:
            indices = y @ tf.constant(self._seasonal_indices())  # [batch, m]
            centred = y - tf.reduce_mean(y, axis=1, keepdims=True)
            acf = tf.stack([tf.reduce_sum(centred[:, :n - k] * centred[:, k:], axis=1) for k in range(m + 1)], axis=1)
            acf /= tf.maximum(acf[:, :1], 1e-300)
            stat = n * acf[:, m] ** 2 / tf.reduce_sum(acf[:, :m] ** 2, axis=1)
            indices *= tf.cast(stat > SEASONALITY_CRITICAL, y.dtype)[:, None]
            y = y - tf.gather(indices, np.arange(n) % m, axis=1)
        centre = steps - (n - 1) / 2
        slope = tf.reduce_sum(y * centre, axis=1) / tf.reduce_sum(centre ** 2)

        # SES for every alpha of the grid at once: level_t = (1 - alpha) level_(t-1) + alpha y_t from the first
        # value (level_0 = y_0, as statsmodels' ThetaModel starts it), as a scan of log2(n) doubling steps:
        # after the step of lag k each level holds the sum of (1 - alpha)^j alpha y_(t-j) for j < 2k.
        alpha = tf.constant(ALPHAS)[None, :, None]
        levels = tf.concat([tf.repeat(y[:, None, :1], len(ALPHAS), axis=1), alpha * y[:, None, 1:]], axis=2)
        decay, lag = 1.0 - alpha, 1
        while lag < n:
            levels += decay * tf.pad(levels[:, :, :n - lag], [[0, 0], [0, 0], [lag, 0]])
            decay, lag = decay * decay, 2 * lag
        sse = tf.reduce_sum((y[:, None, 1:] - levels[:, :, :-1]) ** 2, axis=2)  # one-step errors
        chosen = _refine(sse)[:, None]
        weights = chosen * (1.0 - chosen) ** (n - 1.0 - steps)[None, :]  # the last level at the chosen weight
        level = tf.reduce_sum(weights * y, axis=1, keepdims=True) + (1.0 - chosen) ** n * y[:, :1]

        h = tf.range(self.horizon, dtype=y.dtype)[None, :]
        drift = 0.5 * slope[:, None] * (h + 1.0 / chosen - (1.0 - chosen) ** n / chosen)  # theta = 2
        forecast = level + drift
        if m > 1:
            forecast += tf.gather(indices, (n + np.arange(self.horizon)) % m, axis=1)
        return tf.cast(forecast, window.dtype)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "horizon": self.horizon, "season": self.season}


def _refine(sse: Any) -> Any:
    """``[batch]``: the smoothing weight at the vertex of the parabola through the grid's best weight and its
    neighbours (``sse``: ``[batch, len(ALPHAS)]``), kept between the neighbours; the grid's best at its ends."""
    grid_index = tf.argmin(sse, axis=1)
    best = tf.clip_by_value(grid_index, 1, len(ALPHAS) - 2)
    x1, x2, x3 = (tf.gather(tf.constant(ALPHAS), best + k) for k in (-1, 0, 1))
    f1, f2, f3 = (tf.gather(sse, best + k, batch_dims=1) for k in (-1, 0, 1))
    numerator = (x2 - x1) ** 2 * (f2 - f3) - (x2 - x3) ** 2 * (f2 - f1)
    denominator = (x2 - x1) * (f2 - f3) - (x2 - x3) * (f2 - f1)
    vertex = x2 - 0.5 * numerator / tf.where(denominator < 0, denominator, -1.0)
    vertex = tf.where(denominator < 0, tf.clip_by_value(vertex, x1, x3), x2)
    grid_best = tf.gather(tf.constant(ALPHAS), grid_index)
    at_end = tf.logical_or(tf.equal(grid_best, ALPHAS[0]), tf.equal(grid_best, ALPHAS[-1]))
    return tf.where(at_end, grid_best, vertex)
