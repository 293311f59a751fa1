"""Forecasting features: a raw history window -> the normalized window the model reads.

Each window is centred on its own level (its last value by default), so a trending series (CO2) looks
alike at every origin, then divided by one scale: the root mean square of the centred values over the
training windows (a tensorflow-transform analyzer, so the scale is computed on the train split only
and then baked into the graph that training, evaluation and serving all run). The level and the scale
are outputs too: the serving signature maps the model's answer back to original units with them.

With ``model.skip: ets`` the raw ``history`` is the whole series before the origin (left-padded with NaN):
the window is its last ``window`` values, and the ETS forecast of the whole series (``ets.py``), centred
and scaled like the target, is the forecast the network corrects; the Theta forecast of the whole series
(``models.theta_forecast``, statsmodels' default decomposition), centred and scaled alike, is one that
held-out windows may mix into it.
"""

from __future__ import annotations

import tensorflow as tf
import tensorflow_transform as tft

HISTORY_KEY = "history"
TARGET_KEY = "target"
HISTORY_NORM = "history_norm"
TARGET_NORM = "target_norm"
LEVEL = "level"
SCALE = "scale"
BASE_NORM = "base_norm"
SERIES_THETA_NORM = "series_theta_norm"
ETS_PARAMS = "ets_params"
LEVELS = ("last", "mean", "global")


def window_level(history: tf.Tensor, level: str) -> tf.Tensor:
    """``[batch, 1]``: the value every window is centred on."""
    if level == "last":
        return history[:, -1:]
    if level == "mean":
        return tf.reduce_mean(history, axis=1, keepdims=True)
    if level == "global":  # the classic z-score: one train-split mean for every window
        return tf.zeros_like(history[:, -1:]) + tft.mean(history)
    raise ValueError(f"transform.level must be one of {', '.join(LEVELS)}, got '{level}'")


def preprocessing_fn(inputs: dict, *, level: str = "last", window: int | None = None, horizon: int = 1,
                     season: int = 1, ets: dict | None = None) -> dict:
    history = tf.cast(inputs[HISTORY_KEY], tf.float32)
    series = None
    if window is not None:  # the whole series: the window is its end
        series, history = history, history[:, -window:]
    anchor = window_level(history, level)
    centred = history - anchor
    rms = tf.sqrt(tft.mean(tf.square(centred)))
    scale = tf.where(rms > 0, rms, tf.ones_like(rms))  # a constant series: any scale will do
    out = {HISTORY_NORM: centred / scale, LEVEL: anchor, SCALE: tf.zeros_like(anchor) + scale}
    if TARGET_KEY in inputs:
        target = tf.cast(inputs[TARGET_KEY], tf.float32)
        if target.shape.rank == 1:  # a horizon of 1 is a dense scalar in the schema
            target = target[:, None]
        out[TARGET_NORM] = (target - anchor) / scale
    if series is not None:
        from . import ets as ets_graph

        # Fitted on the train split's range (the analyzer reads history and target), like the ETS peer
        params = ets_graph.fitted_params(series, target, season, ets or {})
        out[BASE_NORM] = (ets_graph.forecast(series, params, horizon, season) - anchor) / scale
        out[ETS_PARAMS] = tf.zeros_like(anchor) + params[None, :]  # for the serving signature's own filter
        out[SERIES_THETA_NORM] = (series_theta(series, horizon, season) - anchor) / scale
    return out


def series_theta(series: tf.Tensor, horizon: int, season: int) -> tf.Tensor:
    """``[batch, horizon]``: statsmodels' ``ThetaModel(row, period=season)`` forecast of each row (left-padded
    with NaN), as the Theta peer refits it at each origin: deseasonalized only where the row holds two seasons."""
    from rnnpipe.models.theta import theta_forecast

    return tf.cast(theta_forecast(series, horizon, season, decomposition="auto"), tf.float32)
