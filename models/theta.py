"""The Theta method in TensorFlow: statsmodels' ``ThetaModel`` forecast of windows (a Keras layer a forecaster
can fall back on) and of whole series of any length (``theta_forecast``)."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import tensorflow as tf

from ._validation import check_choice, check_positive_int

__all__ = ["Theta", "theta_forecast"]

# statsmodels' ThetaModel tests seasonality at 10 %: chi2(1) critical value 1.645 ** 2.
SEASONALITY_CRITICAL = 2.705543454095404
# Smoothing weights the SES step may pick (statsmodels optimizes over [0, 1]): finest where the level moves
# slowly, since there a small change of the weight moves the forecast most.
ALPHAS = np.concatenate([np.arange(1, 21) / 100, np.arange(22, 51, 2) / 100, np.arange(55, 101, 5) / 100])
DECOMPOSITIONS = ("additive", "auto")


def theta_forecast(series: Any, horizon: int, season: int = 1, decomposition: str = "additive") -> tf.Tensor:
    """``[batch, horizon]``: statsmodels' ``ThetaModel(row, period=season).fit().forecast(horizon)`` for each
    ``[batch, time]`` row (theta = 2), over the values from its first finite one (NaN before it is padding, so
    rows of different lengths share a batch; ``time`` may be dynamic).

    Where ``season > 1``, the row holds two seasons and its autocorrelation at lag ``season`` passes
    statsmodels' 10 % seasonality test, classical decomposition removes the seasonal component:
    ``"additive"``, or ``"auto"`` as statsmodels' default method (multiplicative where every value is
    positive and the seasonal indices are too). Simple exponential smoothing (its weight the one of least
    one-step squared error on a grid, refined by a parabola; the level starting at the first value) and half
    the slope of the least-squares line through the row then forecast, and the seasonal component is put back.

    >>> import numpy as np
    >>> series = np.array([[np.nan, 2.0, 2.0, 2.0], [1.0, 2.0, 3.0, 4.0]])
    >>> np.round(theta_forecast(series, 2).numpy(), 3).tolist()
    [[2.0, 2.0], [4.5, 5.0]]
    """
    horizon = check_positive_int("horizon", horizon)
    season = check_positive_int("season", season)
    check_choice("decomposition", decomposition, DECOMPOSITIONS)
    raw = tf.cast(series, tf.float64)  # SSE over hundreds of steps and powers of (1 - alpha)
    valid = tf.math.is_finite(raw)
    mask = tf.cast(valid, raw.dtype)
    y = tf.where(valid, raw, 0.0)
    time = tf.shape(y)[1]
    count = tf.reduce_sum(mask, axis=1)  # [batch]
    steps = tf.cast(tf.range(time), y.dtype)[None, :]
    phases = tf.one_hot(tf.range(time) % season, season, dtype=y.dtype)  # [time, season]
    ahead = tf.one_hot((time + tf.range(horizon)) % season, season, dtype=y.dtype)  # [horizon, season]
    multiplicative = None
    if season > 1:
        seasonal = _is_seasonal(y, mask, count, season) & (count >= 2 * season)
        additive = _seasonal_indices(y, mask, phases, season, multiplicative=False)
        if decomposition == "auto":
            positive = tf.reduce_all(tf.where(valid, raw > 0, True), axis=1)
            ratios = _seasonal_indices(y, mask, phases, season, multiplicative=True)
            multiplicative = seasonal & positive & tf.reduce_all(ratios > 0, axis=1)
            ratios = tf.where(multiplicative[:, None], ratios, 1.0)
            y = tf.where(multiplicative[:, None], y / tf.maximum(ratios @ tf.transpose(phases), 1e-300), y) * mask
            additive *= tf.cast(seasonal & ~multiplicative, y.dtype)[:, None]
        else:
            additive *= tf.cast(seasonal, y.dtype)[:, None]
        y = (y - additive @ tf.transpose(phases)) * mask

    mean_step = tf.reduce_sum(steps * mask, axis=1, keepdims=True) / tf.maximum(count, 1.0)[:, None]
    centre = (steps - mean_step) * mask
    slope = tf.reduce_sum(y * centre, axis=1) / tf.maximum(tf.reduce_sum(centre ** 2, axis=1), 1e-300)

    first = tf.cast(time, tf.int64) - tf.cast(count, tf.int64)  # left padding: the first finite value's step
    first_value = tf.gather(y, tf.minimum(first, tf.cast(time, tf.int64) - 1), batch_dims=1)[:, None]
    is_first = tf.cast(tf.equal(tf.range(time, dtype=tf.int64)[None, :], first[:, None]), y.dtype)
    # SES for every alpha of the grid at once: level_t = (1 - alpha) level_(t-1) + alpha y_t from the first
    # value (level_0 = y_0, as statsmodels' ThetaModel starts it), as a scan of log2(time) doubling steps:
    # after the step of lag k each level holds the sum of (1 - alpha)^j alpha y_(t-j) for j < 2k. Padding
    # holds zeros, which add nothing.
    alpha = tf.constant(ALPHAS)[None, :, None]
    levels = tf.where(is_first[:, None, :] > 0, y[:, None, :], alpha * y[:, None, :] * (1.0 - is_first[:, None, :]))
    decay, lag = 1.0 - alpha, tf.constant(1)

    def double(levels: tf.Tensor, decay: tf.Tensor, lag: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        shifted = tf.pad(levels[:, :, :time - lag], [[0, 0], [0, 0], [lag, 0]])
        return levels + decay * shifted, decay * decay, 2 * lag

    levels, _, _ = tf.while_loop(lambda levels, decay, lag: lag < time, double, (levels, decay, lag))
    pairs = mask[:, 1:] * mask[:, :-1]  # one-step errors from the second value on
    sse = tf.reduce_sum(pairs[:, None, :] * (y[:, None, 1:] - levels[:, :, :-1]) ** 2, axis=2)
    chosen = _refine(sse)[:, None]
    weights = chosen * (1.0 - chosen) ** (tf.cast(time, y.dtype) - 1.0 - steps) * mask  # the last level
    level = tf.reduce_sum(weights * y, axis=1, keepdims=True) + (1.0 - chosen) ** count[:, None] * first_value

    h = tf.range(horizon, dtype=y.dtype)[None, :]
    drift = 0.5 * slope[:, None] * (h + 1.0 / chosen - (1.0 - chosen) ** count[:, None] / chosen)  # theta = 2
    forecast = level + drift
    if season > 1:
        forecast += additive @ tf.transpose(ahead)
        if multiplicative is not None:
            forecast *= ratios @ tf.transpose(ahead)
    return forecast


def _is_seasonal(y: tf.Tensor, mask: tf.Tensor, count: tf.Tensor, season: int) -> tf.Tensor:
    """``[batch]``: statsmodels' ThetaModel seasonality test, ``count * acf[m] ** 2 / sum(acf[:m] ** 2) >
    1.645 ** 2``, on each row's finite values."""
    centred = (y - tf.reduce_sum(y, axis=1, keepdims=True) / tf.maximum(count, 1.0)[:, None]) * mask
    acf = tf.stack([tf.reduce_sum(centred * tf.pad(centred[:, k:], [[0, 0], [0, k]]), axis=1)
                    for k in range(season + 1)], axis=1)
    acf /= tf.maximum(acf[:, :1], 1e-300)
    return count * acf[:, season] ** 2 / tf.maximum(tf.reduce_sum(acf[:, :season] ** 2, axis=1), 1e-300) \
        > SEASONALITY_CRITICAL


def _seasonal_indices(y: tf.Tensor, mask: tf.Tensor, phases: tf.Tensor, season: int, multiplicative: bool
                      ) -> tf.Tensor:
    """``[batch, season]``: the seasonal index of each phase (``phases``: each step's one-hot phase), as
    statsmodels' ``seasonal_decompose`` makes it: a centred moving average as the trend, the mean of the values
    less (or over) it at each phase, centred on zero (or on one). Steps whose average reaches padding are left
    out, as statsmodels leaves out the series' ends."""
    weights = np.r_[0.5, np.ones(season - 1), 0.5] / season if season % 2 == 0 else np.ones(season) / season
    half = len(weights) // 2
    kernel = tf.constant(weights[:, None, None])

    def average(x: tf.Tensor) -> tf.Tensor:  # the centred moving average, zeros at the ends
        out = tf.nn.conv1d(x[:, :, None], kernel, stride=1, padding="VALID")[:, :, 0]
        return tf.pad(out, [[0, 0], [half, half]])

    trend = average(y)
    covered = tf.cast(average(mask) > 1.0 - 1e-9, y.dtype)  # every value under the average is finite
    detrended = (y / tf.where(covered > 0, trend, 1.0) if multiplicative else y - trend) * covered
    means = (detrended @ phases) / tf.maximum(covered @ phases, 1.0)
    if multiplicative:
        return means / tf.reduce_mean(means, axis=1, keepdims=True)
    return means - tf.reduce_mean(means, axis=1, keepdims=True)


@keras.saving.register_keras_serializable(package="rnnpipe")
class Theta(keras.layers.Layer):
    """Theta-method forecast of each window (Assimakopoulos & Nikolopoulos, 2000), as statsmodels'
    `ThetaModel` makes it with an additive decomposition (`theta_forecast`).

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

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return (input_shape[0], self.horizon)

    def call(self, window: Any) -> Any:
        return tf.cast(theta_forecast(window[:, :, 0], self.horizon, self.season), window.dtype)

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
