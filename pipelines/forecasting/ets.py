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

import functools
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
    padding; ``check_start`` refuses NaN after it) and runs statsmodels' additive recursions
    (``holt_win_add_add_dam``); ``time`` may be any length, so a served model forecasts a series that has
    grown since training.

    With fixed parameters the recursions are linear: the state ``x = [level, trend, s_0 .. s_{m-1}]`` (``s_0``
    the season of the next value) moves as ``x' = F x + g y``, and the forecast is ``C x``. So after ``N``
    values ``forecast = C F^N x0 + sum_k C F^k g y[-1 - k]``: the powers come by doubling (log2(time) matmuls)
    and the sum is one matmul, instead of a loop of ``time`` steps (7-27x faster at 300-3,000 values).
    """
    series = tf.convert_to_tensor(series, tf.float32)
    params = tf.cast(params, tf.float32)
    alpha, beta, gamma, phi = (params[i] for i in (ALPHA, BETA, GAMMA, PHI))
    n = season + 2
    unit = functools.partial(tf.one_hot, depth=n)
    expected = unit(0) + phi * unit(1)  # level + phi * trend
    level = (1.0 - alpha) * expected - alpha * unit(2)  # alpha * (y - s_0) + (1 - alpha) * expected, less y
    rows = [level, beta * (level - unit(0)) + (1.0 - beta) * phi * unit(1),  # the trend follows the level
            *(unit(3 + j) for j in range(season - 1)),  # the seasons move up by one ...
            -gamma * expected + (1.0 - gamma) * unit(2)]  # ... and this value's season goes last
    transition = tf.stack(rows)
    gain = tf.stack([alpha, beta * alpha, *([tf.constant(0.0)] * (season - 1)), gamma])
    initial = tf.concat([params[LEVEL0:TREND0 + 1], params[SEASONS0:SEASONS0 + season]], axis=0)
    steps = tf.range(1, horizon + 1, dtype=tf.float32)
    readout = tf.concat([tf.ones([horizon, 1]), tf.cumsum(phi ** steps)[:, None],  # phi + ... + phi^h
                         tf.one_hot(tf.range(horizon) % season, season)], axis=1)  # [horizon, n]
    time = tf.shape(series)[1]

    def double(powers: tf.Tensor, power: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        return tf.concat([powers, tf.einsum("ij,kjl->kil", power, powers)], axis=0), power @ power

    powers, _ = tf.while_loop(  # powers[k] = F^k [g, x0], k = 0 .. time (and on to a power of two)
        lambda powers, _: tf.shape(powers)[0] <= time, double, (tf.stack([gain, initial], axis=1)[None], transition),
        shape_invariants=(tf.TensorShape([None, n, 2]), tf.TensorShape([n, n])))
    ahead = tf.einsum("hi,kil->klh", readout, powers[:time + 1])  # [time + 1, 2, horizon]
    valid = tf.math.is_finite(series)
    seen = tf.reduce_sum(tf.cast(valid, tf.int32), axis=1)
    latest_first = tf.reverse(tf.where(valid, series, 0.0), axis=[1])  # y[-1 - k]: padding adds nothing
    return tf.gather(ahead[:, 1], seen) + latest_first @ ahead[:time, 0]


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
    """An op that fails, naming what it expected, where a row does not start with the series' first value (the
    fitted initial states belong to the series' start, so a history cut anywhere else would be forecast wrongly
    without a word) or has a gap (NaN after its first value: fill it, as ExampleGen interpolates)."""
    first = first_values(series)
    expected = tf.cast(params[FIRST], tf.float32)
    ok = tf.abs(first - expected) <= 1e-4 * (1.0 + tf.abs(expected))
    starts = tf.debugging.Assert(tf.reduce_all(ok), [
        "model.skip=ets: 'history' must hold the whole series from its first value (left-pad shorter rows with "
        "NaN); the series this model was fitted on starts with", expected, "; rows start with", first],
        summarize=8)
    finite = tf.math.is_finite(series)
    after_first = tf.cumsum(tf.cast(finite, tf.int32), axis=1) > 0
    gaps = tf.reduce_sum(tf.cast(after_first & ~finite, tf.int32), axis=1)
    no_gaps = tf.debugging.Assert(tf.reduce_all(gaps == 0), [
        "model.skip=ets: 'history' has NaN after its first value (fill the gaps, e.g. by interpolation); NaN per "
        "row:", gaps], summarize=8)
    return tf.group(starts, no_gaps)
