"""ETS in the serving graph: the statsmodels model of the ETS peer, fitted on the train split by a
tf.Transform analyzer, and its exponential smoothing filter run over the whole series in TensorFlow.

A window cannot hold what a model fitted on the whole series knows (its level, trend and seasonal states
start from the series' first values), so with ``model.skip: ets`` each record's ``history`` is the whole
series before its origin, left-padded with NaN to one length; the network reads its last values and
corrects this forecast. The served model takes the same: the whole series, any length, shorter rows of a
batch left-padded with NaN.

The fit is one vector, a constant of the transform graph like a vocabulary (training reads the forecasts it
gives the records, the served model the vector itself, from the transform's outputs): ``[alpha, beta, gamma,
phi, initial level, initial trend, first value, initial seasonal states...]``, with beta, the trend and gamma
0 and phi 1 where the model has no such component.
"""

from __future__ import annotations

from typing import Any

import apache_beam as beam
import numpy as np
import tensorflow as tf
import tensorflow_transform as tft
import tensorflow_transform.beam as tft_beam

from .baselines import ETS

ALPHA, BETA, GAMMA, PHI, LEVEL0, TREND0, FIRST, SEASONS0 = range(8)


def params_vector(y_train: np.ndarray, season: int, ets: ETS) -> np.ndarray:
    """The ETS model fitted on ``y_train``, as the vector described in the module docstring."""
    fit = ets.fit(y_train, season)
    s = fit.smoothing
    seasons = fit.initial.get("initial_seasonal", np.zeros(season))
    return np.array([s["smoothing_level"], s.get("smoothing_trend", 0.0), s.get("smoothing_seasonal", 0.0),
                     s.get("damping_trend", 1.0), fit.initial["initial_level"], fit.initial.get("initial_trend", 0.0),
                     y_train[0], *seasons], dtype="float32")


def forecast(series: tf.Tensor, params: tf.Tensor, horizon: int, season: int) -> tf.Tensor:
    """``[batch, horizon]``: the forecast after the last value of each ``[batch, time]`` row.

    The filter starts at each row's first finite value with the fitted initial states (NaN before it is
    padding) and runs statsmodels' additive recursions (``holt_win_add_add_dam``); ``time`` may be any
    length, so a served model forecasts a series that has grown since training.
    """
    series = tf.convert_to_tensor(series, tf.float32)
    p = tf.unstack(tf.cast(params[:SEASONS0], tf.float32))
    alpha, beta, gamma, phi, level0, trend0 = p[ALPHA], p[BETA], p[GAMMA], p[PHI], p[LEVEL0], p[TREND0]
    batch = tf.shape(series)[0]
    ones = tf.ones([batch], tf.float32)
    seasons0 = tf.tile(tf.cast(params[None, SEASONS0:SEASONS0 + season], tf.float32), [batch, 1])

    def step(state: tuple, y: tf.Tensor) -> tuple:
        level, trend, seasons, seen = state
        slot = tf.one_hot(seen % season, season)  # the season of this value: its position after the first
        s = tf.reduce_sum(seasons * slot, axis=1)
        expected = level + phi * trend
        new_level = alpha * (y - s) + (1.0 - alpha) * expected
        new_trend = beta * (new_level - level) + (1.0 - beta) * phi * trend
        new_s = gamma * (y - expected) + (1.0 - gamma) * s
        valid = tf.math.is_finite(y)
        return (tf.where(valid, new_level, level), tf.where(valid, new_trend, trend),
                tf.where(valid[:, None], seasons + slot * (new_s - s)[:, None], seasons),
                seen + tf.cast(valid, tf.int32))

    initial = (level0 * ones, trend0 * ones, seasons0, tf.zeros([batch], tf.int32))
    level, trend, seasons, seen = tf.foldl(step, tf.transpose(series), initializer=initial)
    h = tf.range(1, horizon + 1, dtype=tf.float32)
    damping = tf.cumsum(phi ** h)  # phi + phi^2 + ... + phi^h
    ahead = tf.gather(seasons, (seen[:, None] + tf.range(horizon)[None, :]) % season, batch_dims=1)
    return level[:, None] + damping[None, :] * trend[:, None] + ahead


def first_values(series: tf.Tensor) -> tf.Tensor:
    """``[batch]``: each row's first finite value (NaN for a row without one)."""
    finite = tf.math.is_finite(series)
    first = tf.argmax(tf.cast(finite, tf.int32), axis=1)
    return tf.where(tf.reduce_any(finite, axis=1), tf.gather(series, first, batch_dims=1), np.nan)


class FitEts(tft_beam.experimental.PTransformAnalyzer):
    """tf.Transform analyzer: batches of (left-padded histories, targets) of the train split -> the ETS
    parameter vector fitted on the train range (the longest history with its target: the train split's
    last window ends where the train range does)."""

    def __init__(self, season: int, ets: dict) -> None:
        super().__init__()
        self.season, self.ets = season, ets

    def expand(self, batches: beam.PCollection) -> beam.PCollection:
        def longest(batch: tuple[np.ndarray, ...]) -> np.ndarray:
            history, target = np.asarray(batch[0], "float64"), np.asarray(batch[1], "float64")
            i = int(np.argmax(np.isfinite(history).sum(axis=1)))
            row = history[i]
            return np.concatenate([row[np.isfinite(row)], target[i].reshape(-1)])

        return (batches
                | "Longest" >> beam.Map(longest)
                | "Range" >> beam.CombineGlobally(lambda rows: max(rows, key=len, default=np.zeros(0)))
                | "Fit" >> beam.Map(lambda y: params_vector(y, self.season, ETS(**self.ets))))


def fitted_params(history: tf.Tensor, target: tf.Tensor, season: int, ets: dict) -> tf.Tensor:
    """The ETS parameter vector (see the module docstring), a constant of the transform graph."""
    return tft.experimental.ptransform_analyzer(
        inputs=[history, target], ptransform=FitEts(season, ets), output_dtypes=[tf.float32],
        output_shapes=[[SEASONS0 + season]], name="fit_ets")[0]


def check_start(series: tf.Tensor, params: tf.Tensor) -> Any:
    """An op that fails, naming the value expected, where a row does not start with the series' first value:
    the fitted initial states belong to the series' start, so a history cut anywhere else would be
    forecast wrongly without a word."""
    first = first_values(series)
    expected = tf.cast(params[FIRST], tf.float32)
    ok = tf.abs(first - expected) <= 1e-4 * (1.0 + tf.abs(expected))
    return tf.debugging.Assert(tf.reduce_all(ok), [
        "model.skip=ets: 'history' must hold the whole series from its first value (left-pad shorter rows with "
        "NaN); the series this model was fitted on starts with", expected, "; rows start with", first],
        summarize=8)
