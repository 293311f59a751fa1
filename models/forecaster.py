"""Builder of the multi-step time-series forecaster, and its autoregressive decoder layer.

The forecaster reads a window of `history_length` past values (already
normalized, `[batch, history_length, num_features]`) and returns the next
`horizon` values of the first feature, `[batch, horizon]`, in the same
normalized units. Two ways to produce the horizon:

- `"direct"`: the stacked RNN's last output goes through one `Dense(horizon)`:
  every step of the horizon has its own output weights (no error feedback).
- `"autoregressive"`: the RNN predicts one step, feeds the prediction back as
  the next input and runs its cells again, `horizon` times
  (`AutoregressiveRNN`); trained on the whole horizon, so training and
  inference decode the same way.

Either way optional skips are added to the recurrent part. A
`SeasonalNaive` skip adds last season's values (a fixed copy, no weights), so
the network learns a correction to seasonal-naive rather than the season
itself. A `HoltWinters` skip adds exponential smoothing of the window instead
(its smoothing weights learned with the network, whose output then starts at
zero): on a short series, where a few dozen windows cannot teach a network
the trend and the season, the model starts as the statistical forecast and
learns only what the windows show beyond it. A `base_forecast` input does the
same for a forecast made outside the window (ETS over the whole series), and
`CorrectionShare` keeps as much of the correction as held-out windows support.
A linear "highway" (as in LSTNet, Lai et al. 2018) maps the last
`highway_length` input steps straight to the horizon and is added to the recurrent part: a linear autoregression
the RNN only has to correct. With `highway_length` at least the season length
it can copy last season's values, which a recurrent state finds hard to keep
over hundreds of steps.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import tensorflow as tf

from ._stack import check_stack_arguments, recurrent_stack
from ._validation import check_bool, check_choice, check_positive_int
from .smoothing import HoltWinters
from .theta import Theta

__all__ = ["AutoregressiveRNN", "CorrectionShare", "FORECAST_STRATEGIES", "SeasonalDifference", "SeasonalNaive",
           "build_forecaster", "choose_correction_share", "inverse_error_weights"]

FORECAST_STRATEGIES = ("direct", "autoregressive")


@keras.saving.register_keras_serializable(package="rnnpipe")
class SeasonalNaive(keras.layers.Layer):
    """The seasonal-naive forecast: each horizon step's value one season (or whole seasons) earlier.

    Reads the first feature of a `[batch, time, features]` history whose
    length is static and at least `season`; has no weights. With `season=1`
    it repeats the last value (naive).

    Args:
        season: season length in steps (>= 1).
        horizon: number of future steps (>= 1).
        **kwargs: base `keras.layers.Layer` arguments (`name`, `dtype`, ...).

    Example:

    >>> import numpy as np
    >>> from rnnpipe.models import SeasonalNaive
    >>> history = np.arange(6, dtype="float32").reshape(1, 6, 1)
    >>> SeasonalNaive(season=4, horizon=5)(history).numpy().tolist()
    [[2.0, 3.0, 4.0, 5.0, 2.0]]
    """

    def __init__(self, season: int, horizon: int, **kwargs: Any) -> None:
        season = check_positive_int("season", season)
        horizon = check_positive_int("horizon", horizon)
        super().__init__(**kwargs)
        self.season, self.horizon = season, horizon

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        if len(input_shape) != 3 or input_shape[1] is None or input_shape[1] < self.season:
            raise ValueError(f"SeasonalNaive needs a [batch, time, features] history with a static time of at least "
                             f"season={self.season} steps. Received: input_shape={tuple(input_shape)}")
        self.history_length = int(input_shape[1])

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return (input_shape[0], self.horizon)

    def call(self, history: Any) -> Any:
        steps = [self.history_length - self.season * (h // self.season + 1) + h for h in range(self.horizon)]
        return tf.gather(history[:, :, 0], steps, axis=1)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "season": self.season, "horizon": self.horizon}


@keras.saving.register_keras_serializable(package="rnnpipe")
class SeasonalDifference(keras.layers.Layer):
    """`x[t] - x[t - season]` of every feature: how each step differs from the same step a season earlier.

    Maps `[batch, time, features]` (static time > `season`) to `[batch, time - season, features]`; no weights.

    Args:
        season: season length in steps (>= 1).
        **kwargs: base `keras.layers.Layer` arguments (`name`, `dtype`, ...).

    Example:

    >>> import numpy as np
    >>> from rnnpipe.models import SeasonalDifference
    >>> history = np.array([[1, 2, 3, 5, 8]], "float32")[..., None]
    >>> SeasonalDifference(season=2)(history).numpy()[..., 0].tolist()
    [[2.0, 3.0, 5.0]]
    """

    def __init__(self, season: int, **kwargs: Any) -> None:
        season = check_positive_int("season", season)
        super().__init__(**kwargs)
        self.season = season

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        if len(input_shape) != 3 or input_shape[1] is None or input_shape[1] <= self.season:
            raise ValueError(f"SeasonalDifference needs a [batch, time, features] input with a static time longer "
                             f"than season={self.season}. Received: input_shape={tuple(input_shape)}")

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return (input_shape[0], input_shape[1] - self.season, input_shape[2])

    def call(self, x: Any) -> Any:
        return x[:, self.season:] - x[:, :-self.season]

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "season": self.season}


@keras.saving.register_keras_serializable(package="rnnpipe")
class CorrectionShare(keras.layers.Layer):
    """Multiplies a correction by a share that is chosen on held-out data, not trained.

    One non-trainable scalar weight, `share`, scales the input. A
    forecaster that corrects a statistical forecast (`base_forecast`) ends
    with it: after training, `choose_correction_share` sets the share that
    forecasts the eval split best, from 0 (the statistical forecast alone)
    to 1 (the whole correction the network learnt).

    Args:
        share: the initial share (>= 0).
        **kwargs: base `keras.layers.Layer` arguments (`name`, `dtype`, ...).

    Example:

    >>> import numpy as np
    >>> from rnnpipe.models import CorrectionShare
    >>> layer = CorrectionShare(share=0.5)
    >>> layer(np.array([[2.0, -4.0]], "float32")).numpy().tolist()
    [[1.0, -2.0]]
    """

    def __init__(self, share: float = 1.0, **kwargs: Any) -> None:
        if isinstance(share, bool) or not isinstance(share, int | float) or not share >= 0:
            raise ValueError(f"Argument `share` must be a number >= 0. Received: share={share!r}")
        super().__init__(**kwargs)
        self.initial_share = float(share)

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        self.share = self.add_weight(name="share", shape=(), trainable=False,
                                     initializer=keras.initializers.Constant(self.initial_share))

    def call(self, correction: Any) -> Any:
        return correction * keras.ops.cast(self.share, correction.dtype)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "share": self.initial_share}


SHARES = ("correction_share", "theta_share", "alternative_share", "series_theta_share")


def choose_correction_share(model: keras.Model, batches: Any, steps: int = 20,
                            alternative_batches: Any = ()) -> dict[str, float]:
    """Sets the model's `CorrectionShare` layers to the shares chosen on held-out windows, and returns them
    with the mean absolute errors on ``batches``.

    A model with statistical alternatives to its base (``base_alternative``: Theta and Holt-Winters of the
    window; ``series_theta``: Theta of the whole series) combines them with it in two steps, each weighting
    forecasts by the inverse eighth power of their mean absolute errors, in the manner of Bates & Granger
    (1969): steadier than a choice that a few windows can sway, and sharp enough that a forecast 10 % further
    off gets 0.47 of the other's weight and one twice as far off almost none.

    1. The alternatives among themselves, on ``alternative_batches`` (the training windows) and ``batches``
       together: none of them learnt from those windows (each is fitted on the values before its origin
       only), and many windows are steadier than the eval split's few.
    2. Their combination against the base, by the mean of two such weights: one from ``batches`` (the eval
       split) alone, one from the training windows and ``batches`` together. The base's parameters were
       fitted on the training range, so there its errors are in-sample and flatter it (on monthly series of
       about 100 values, a median 0.56 of its errors after that range); the eval split compares all out of
       sample but has few windows. The mean trades the one's bias against the other's noise.

    The shares are then "theta_share", "alternative_share" and "series_theta_share" (the base keeps the
    rest). ``batches`` (``(inputs, targets)``) then choose "correction_share", the network's share, in 0,
    1/steps, ..., 1: the smallest whose error exceeds the lowest by no more than one standard error (the
    one-standard-error rule of Breiman et al., 1984), from the windows' differences in error, counting the
    horizons that the eval split's values span ("eval_horizons"), not the windows, which overlap. An eval split
    of under two horizons cannot tell a correction that learnt the series from one that learnt its past: the
    share is then 0. Forecasts are linear in the shares, so a pass at each corner (all 0, each 1) gives every
    mix.
    """
    names = [n for n in SHARES if any(lay.name == n for lay in model.layers)]
    layers = {n: model.get_layer(n) for n in names}
    corners = [{n: 0.0 for n in names}] + [{m: float(m == n) for m in names} for n in names]
    y, origin, *at_one = _forecasts_at(model, layers, corners, batches)  # each share at 1, the others at 0
    if y is None:  # no batch: no share was set
        return {}
    alternatives = [n for n in names if n != "correction_share"]
    train = None
    if alternatives:
        # The eval split's forecasts at these corners are in hand: only the training windows need passes.
        train_y, train_origin, *train_units = _forecasts_at(
            model, layers, [corners[0]] + [corners[1 + names.index(n)] for n in alternatives], alternative_batches)
        if train_y is not None:
            train = (train_y, train_origin, dict(zip(alternatives, train_units, strict=True)))
    chosen = shares_from_forecasts(y, origin, dict(zip(names, at_one, strict=True)), train, steps)
    for n in names:
        layers[n].share.assign(chosen[n])
    return chosen


def shares_from_forecasts(y: np.ndarray, origin: np.ndarray, units: dict[str, np.ndarray],
                          train: tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]] | None = None,
                          steps: int = 20) -> dict[str, float]:
    """What `choose_correction_share` chooses, from forecasts in hand (``[windows, horizon]`` each): the eval
    windows' targets ``y``, the forecast at all shares 0 (``origin``) and at each share of ``units`` alone at 1;
    ``train``, the same three for the training windows (its ``units`` need only the alternatives), joins the
    weights of the alternatives."""
    chosen = dict.fromkeys(units, 0.0)

    def error(shares: dict[str, float]) -> float:
        return float(window_errors(y, origin, units, shares).mean())

    alternatives = [n for n in units if n != "correction_share"]
    if alternatives:
        wide_y, wide_origin, wide_units = y, origin, units
        if train is not None:
            wide_y, wide_origin = np.concatenate([train[0], y]), np.concatenate([train[1], origin])
            wide_units = {n: np.concatenate([train[2][n], units[n]]) for n in alternatives}
        among = inverse_error_weights([np.abs(wide_units[n] - wide_y).mean() for n in alternatives])
        mix = {n: float(w) for n, w in zip(alternatives, among, strict=True)}

        def against_base(*forecasts: Any) -> float:  # the mix's weight against the base on these windows
            return float(inverse_error_weights([window_errors(*forecasts, {}).mean(),
                                                window_errors(*forecasts, mix).mean()])[1])

        share = 0.5 * (against_base(y, origin, units) + against_base(wide_y, wide_origin, wide_units))
        chosen.update({n: share * w for n, w in mix.items()})

    windows, horizon = y.shape
    spans = (windows + horizon - 1) / horizon  # the eval split's values, in horizons
    per_window = {i / steps: window_errors(y, origin, units, {**chosen, "correction_share": i / steps})
                  for i in range(steps + 1)}
    chosen["correction_share"] = one_standard_error_share(per_window, spans) if spans >= 2 else 0.0
    return {**chosen, "eval_horizons": spans,
            "eval_mae_trained": error({n: float(n == "correction_share") for n in units}),
            "eval_mae_base": error(dict.fromkeys(units, 0.0)), "eval_mae_chosen": error(chosen)}


def window_errors(y: np.ndarray, origin: np.ndarray, units: dict[str, np.ndarray], shares: dict[str, float]
                  ) -> np.ndarray:
    """Each window's mean absolute error of the forecast at ``shares`` (linear in them: ``origin`` plus each
    share of its unit's difference from it)."""
    forecast = origin + sum(shares[n] * (units[n] - origin) for n in shares)
    return np.abs(forecast - y).mean(axis=-1)


def one_standard_error_share(window_errors: dict[float, np.ndarray], samples: float) -> float:
    """The smallest share whose mean error exceeds the lowest by at most the standard error of the windows'
    differences, with ``samples`` independent samples among them.

    >>> one_standard_error_share({0.0: np.array([1.0, 1.2]), 1.0: np.array([0.9, 1.1])}, 2)
    1.0
    >>> one_standard_error_share({0.0: np.array([1.0, 1.2]), 1.0: np.array([0.7, 1.25])}, 2)
    0.0
    """
    best = min(window_errors, key=lambda s: window_errors[s].mean())
    for share in sorted(window_errors):
        excess = window_errors[share] - window_errors[best]
        if excess.mean() <= excess.std(ddof=1) / np.sqrt(samples):
            return share
    return best


def inverse_error_weights(errors: Any, power: float = 8.0) -> np.ndarray:
    """Combination weights proportional to ``errors ** -power``, summing to 1. A forecast without error takes
    all the weight (the first such); one whose error is not finite (NaN forecasts) takes none, and if none is
    finite the first takes all.

    >>> inverse_error_weights([1.0, 1.1]).round(4).tolist()
    [0.6819, 0.3181]
    """
    powers = np.asarray(errors, dtype="float64") ** power
    powers = np.where(np.isfinite(powers), powers, np.inf)
    if powers.min() == 0 or not np.isfinite(powers).any():
        return np.eye(len(powers))[np.argmin(powers)]
    return 1 / powers / np.sum(1 / powers)


def _forecasts_at(model: keras.Model, layers: dict, corners: list[dict[str, float]], batches: Any) -> list[Any]:
    """``[targets, forecasts at each corner]`` over ``batches``, ``[windows, horizon]`` each (``[None, ...]``
    without batches)."""
    outputs: list[list] = [[] for _ in corners]
    truth = []
    for inputs, targets in batches:
        truth.append(keras.ops.convert_to_numpy(targets))
        for corner, out in zip(corners, outputs, strict=True):
            for n, share in corner.items():
                layers[n].share.assign(share)
            out.append(keras.ops.convert_to_numpy(model(inputs, training=False)))
    if not truth:
        return [None] * (len(corners) + 1)
    return [np.concatenate(parts) for parts in (truth, *outputs)]


@keras.saving.register_keras_serializable(package="rnnpipe")
class AutoregressiveRNN(keras.layers.Layer):
    """Stacked recurrent encoder whose cells keep running on their own predictions.

    The encoder runs rnnpipe's fast layers over the history; a `Dense(1)` on
    the top layer's last output predicts the next value, which becomes the
    input of one more step of every cell (states carried over), and so on
    until `horizon` values are predicted. Dropout applies to the encoder
    only. The input must have one feature: future values of extra features
    are unknown when decoding.

    Args:
        horizon: number of future steps to predict (>= 1).
        cell: `"gru"`, `"lstm"` or `"simple_rnn"`.
        units: units of each recurrent layer.
        num_layers: number of stacked recurrent layers.
        dropout: input dropout of each recurrent layer during training, in [0, 1).
        recurrent_dropout: recurrent dropout of each layer during training, in [0, 1).
        **kwargs: base `keras.layers.Layer` arguments (`name`, `dtype`, ...).

    Call arguments:
        history: `[batch, time, 1]` float tensor.
        training: whether dropout is active.

    Returns:
        `[batch, horizon]` predictions.

    Example:

    >>> import numpy as np
    >>> from rnnpipe.models import AutoregressiveRNN
    >>> layer = AutoregressiveRNN(horizon=3, units=4)
    >>> tuple(layer(np.zeros((2, 10, 1), "float32")).shape)
    (2, 3)
    """

    def __init__(
        self,
        horizon: int,
        cell: str = "gru",
        units: int = 32,
        num_layers: int = 1,
        dropout: float = 0.0,
        recurrent_dropout: float = 0.0,
        **kwargs: Any,
    ) -> None:
        horizon = check_positive_int("horizon", horizon)
        cell, units, num_layers, _, dropout, recurrent_dropout = check_stack_arguments(
            cell, units, num_layers, dropout=dropout, recurrent_dropout=recurrent_dropout)
        super().__init__(**kwargs)
        self.horizon, self.cell, self.units, self.num_layers = horizon, cell, units, num_layers
        self.dropout, self.recurrent_dropout = dropout, recurrent_dropout
        self.encoders = recurrent_stack(cell, units, num_layers, dropout=dropout,
                                        recurrent_dropout=recurrent_dropout, return_state=True)
        self.head = keras.layers.Dense(1, name="next_value")

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        if len(input_shape) != 3 or input_shape[-1] != 1:
            raise ValueError(
                "AutoregressiveRNN feeds its predictions back as inputs, so the history must be "
                f"[batch, time, 1]. Received: input_shape={tuple(input_shape)}"
            )
        shape = tuple(input_shape)
        for encoder in self.encoders:
            encoder.build(shape)
            shape = (shape[0], shape[1], self.units)
        self.head.build((input_shape[0], self.units))

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return (input_shape[0], self.horizon)

    def call(self, history: Any, training: bool = False) -> Any:
        x, states = history, []
        for encoder in self.encoders:
            x, *layer_states = encoder(x, training=training)
            states.append(layer_states)
        prediction = self.head(x[:, -1])
        predictions = [prediction]
        # A Python loop: `horizon` is static, so the steps unroll into plain graph ops
        # (no AutoGraph needed when the serving signature is traced).
        for _ in range(self.horizon - 1):
            step = prediction
            for i, encoder in enumerate(self.encoders):
                cell = encoder.cell
                step, states[i] = cell.recurrent_step(cell.project_inputs(step), list(states[i]))
            prediction = self.head(step)
            predictions.append(prediction)
        return tf.concat(predictions, axis=-1)

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "horizon": self.horizon,
            "cell": self.cell,
            "units": self.units,
            "num_layers": self.num_layers,
            "dropout": self.dropout,
            "recurrent_dropout": self.recurrent_dropout,
        }


def build_forecaster(
    history_length: int,
    horizon: int,
    *,
    num_features: int = 1,
    cell: str = "gru",
    units: int = 32,
    num_layers: int = 1,
    dropout: float = 0.0,
    recurrent_dropout: float = 0.0,
    strategy: str = "direct",
    recurrent_length: int | None = None,
    highway_length: int = 0,
    seasonal_skip: int = 0,
    holt_winters_skip: int = 0,
    base_forecast: bool = False,
    base_alternative: int = 0,
    series_theta: bool = False,
    season: int = 0,
    seasonal_difference: bool = False,
    highway_l2: float = 0.0,
) -> keras.Model:
    """History window -> stacked GRU/LSTM/SimpleRNN -> the next `horizon` values.

    Args:
        history_length: number of past steps the model reads (>= 1).
        horizon: number of future steps it predicts (>= 1).
        num_features: values per step (>= 1); the first is the one forecast.
            `"autoregressive"` needs exactly 1.
        cell: `"gru"`, `"lstm"` or `"simple_rnn"` (rnnpipe's fast layers).
        units: units of each recurrent layer.
        num_layers: number of stacked recurrent layers.
        dropout: input dropout of each recurrent layer and, for `"direct"`,
            dropout before the output layer, in [0, 1).
        recurrent_dropout: recurrent dropout of each recurrent layer, in [0, 1).
        strategy: `"direct"` (one output per horizon step) or
            `"autoregressive"` (one-step predictions fed back).
        recurrent_length: the RNN reads only the last this many steps
            (None = all of them); the highway may still read further back.
        highway_length: the linear skip from the last this many steps to the
            horizon (0 = none), at most `history_length`.
        seasonal_skip: add the seasonal-naive forecast of this season length
            (`SeasonalNaive`; 0 = none), at most `history_length`: the
            network then predicts the correction to it.
        holt_winters_skip: add the additive Holt-Winters forecast of the
            window with this season length (`HoltWinters`, damped; 1 = no
            season, 0 = none); the window must hold two seasons. The
            network's output layer starts at zero, so the untrained model
            is the smoothing forecast. Not with `seasonal_skip`.
        base_forecast: a second input, `base` (`[batch, horizon]`), is a
            forecast made outside the window (a statistical model of the
            whole series) that the network corrects; its output layer starts
            at zero, so the untrained model is that forecast. The
            correction passes through a `CorrectionShare` that
            `choose_correction_share` sets on held-out windows. Not with the
            skips.
        base_alternative: with `base_forecast`, the season length of two
            statistical forecasts of the window that held-out windows may
            mix into the base: `Theta` and Holt-Winters (its initial
            smoothing weights: it is not trained). Each passes through a
            `CorrectionShare` on its difference from the base
            ("theta_share", "alternative_share"; 0 in training); 0 = none.
            The window must hold two seasons.
        series_theta: with `base_forecast`, a third input, `series_theta`
            (`[batch, horizon]`): the Theta forecast of the whole series
            (`theta_forecast`), made outside the window like the base and
            mixed into it like the window's alternatives
            ("series_theta_share", 0 in training).
        season: the season length for `seasonal_difference` when no skip
            gives one (0 = the skip's).
        seasonal_difference: also feed the RNN, as a second channel, each
            step's difference from the same step a season (`seasonal_skip`,
            `holt_winters_skip` or `season`) earlier (`SeasonalDifference`): how this
            week runs against last week, which is what corrects the seasonal
            forecast. The RNN then reads at most `history_length - season`
            steps. `"direct"` only.
        highway_l2: L2 penalty on the highway's weights (>= 0): keeps a
            long highway from fitting noise.

    Returns:
        An uncompiled `keras.Model` mapping `[batch, history_length,
        num_features]` to `[batch, horizon]`.

    Example:

    >>> import numpy as np
    >>> from rnnpipe.models import build_forecaster
    >>> model = build_forecaster(24, 6, units=8, highway_length=12)
    >>> tuple(model(np.zeros((2, 24, 1), "float32")).shape)
    (2, 6)
    """
    history_length = check_positive_int("history_length", history_length)
    horizon = check_positive_int("horizon", horizon)
    num_features = check_positive_int("num_features", num_features)
    cell, units, num_layers, _, dropout, recurrent_dropout = check_stack_arguments(
        cell, units, num_layers, dropout=dropout, recurrent_dropout=recurrent_dropout)
    check_choice("strategy", strategy, FORECAST_STRATEGIES)
    if recurrent_length is not None:
        recurrent_length = check_positive_int("recurrent_length", recurrent_length)
        if recurrent_length > history_length:
            raise ValueError(f"Argument `recurrent_length` must be at most history_length={history_length}. "
                             f"Received: recurrent_length={recurrent_length}")
    if not isinstance(highway_length, int) or isinstance(highway_length, bool) \
            or not 0 <= highway_length <= history_length:
        raise ValueError(f"Argument `highway_length` must be an integer in [0, history_length={history_length}]. "
                         f"Received: highway_length={highway_length!r}")
    if not isinstance(seasonal_skip, int) or isinstance(seasonal_skip, bool) \
            or not 0 <= seasonal_skip <= history_length:
        raise ValueError(f"Argument `seasonal_skip` must be an integer in [0, history_length={history_length}]. "
                         f"Received: seasonal_skip={seasonal_skip!r}")
    if not isinstance(holt_winters_skip, int) or isinstance(holt_winters_skip, bool) \
            or not 0 <= 2 * holt_winters_skip <= history_length:
        raise ValueError(f"Argument `holt_winters_skip` must be an integer in [0, history_length / 2 = "
                         f"{history_length // 2}]: the window must hold two seasons. Received: "
                         f"holt_winters_skip={holt_winters_skip!r}")
    if seasonal_skip and holt_winters_skip:
        raise ValueError("Arguments `seasonal_skip` and `holt_winters_skip` are two forecasts for the network to "
                         f"correct: pass one. Received: seasonal_skip={seasonal_skip}, "
                         f"holt_winters_skip={holt_winters_skip}")
    check_bool("base_forecast", base_forecast)
    if base_forecast and (seasonal_skip or holt_winters_skip):
        raise ValueError("Argument `base_forecast` is the forecast for the network to correct: pass no skip beside "
                         f"it. Received: seasonal_skip={seasonal_skip}, holt_winters_skip={holt_winters_skip}")
    if not isinstance(base_alternative, int) or isinstance(base_alternative, bool) \
            or not 0 <= 2 * base_alternative <= history_length or (base_alternative and not base_forecast):
        raise ValueError(f"Argument `base_alternative` must be an integer in [0, history_length / 2 = "
                         f"{history_length // 2}], and 0 without base_forecast. Received: "
                         f"base_alternative={base_alternative!r}, base_forecast={base_forecast}")
    check_bool("series_theta", series_theta)
    if series_theta and not base_forecast:
        raise ValueError("Argument `series_theta` is a forecast to mix into the base forecast: it needs "
                         "base_forecast=True. Received: series_theta=True, base_forecast=False")
    if not isinstance(season, int) or isinstance(season, bool) or season < 0:
        raise ValueError(f"Argument `season` must be an integer >= 0. Received: season={season!r}")
    check_bool("seasonal_difference", seasonal_difference)
    season = seasonal_skip or holt_winters_skip or season
    if seasonal_difference:
        if not 1 <= season < history_length or strategy != "direct":
            raise ValueError("seasonal_difference=True needs strategy='direct' and 0 < seasonal_skip (or "
                             f"holt_winters_skip or season) < history_length={history_length}. Received: "
                             f"seasonal_skip={seasonal_skip}, holt_winters_skip={holt_winters_skip}, "
                             f"season={season}, strategy={strategy!r}")
        if (recurrent_length or 0) > history_length - season:
            raise ValueError(f"With seasonal_difference, `recurrent_length` must be at most history_length - "
                             f"seasonal_skip = {history_length - season}. Received: "
                             f"recurrent_length={recurrent_length}")
    if isinstance(highway_l2, bool) or not isinstance(highway_l2, int | float) or not highway_l2 >= 0:
        raise ValueError(f"Argument `highway_l2` must be a number >= 0. Received: highway_l2={highway_l2!r}")
    if base_forecast and strategy != "direct":
        raise ValueError(f"Argument `base_forecast` needs strategy='direct'. Received: strategy={strategy!r}")
    if strategy == "autoregressive" and num_features != 1:
        raise ValueError("strategy='autoregressive' feeds predictions back as inputs and needs num_features=1. "
                         f"Received: num_features={num_features}")

    history = keras.Input(shape=(history_length, num_features), name="history")
    x = history
    if seasonal_difference:
        length = recurrent_length or history_length - season
        diff = SeasonalDifference(season, name="seasonal_difference")(history)
        x = keras.layers.Concatenate(name="values_and_differences")([
            keras.layers.Cropping1D((history_length - length, 0), name="recurrent_window")(history),
            keras.layers.Cropping1D((history_length - season - length, 0), name="difference_window")(diff)])
    elif recurrent_length is not None and recurrent_length < history_length:
        x = keras.layers.Cropping1D((history_length - recurrent_length, 0), name="recurrent_window")(x)
    if strategy == "autoregressive":
        forecast = AutoregressiveRNN(horizon, cell=cell, units=units, num_layers=num_layers, dropout=dropout,
                                     recurrent_dropout=recurrent_dropout, name="autoregressive")(x)
    else:
        for rnn in recurrent_stack(cell, units, num_layers, dropout=dropout, recurrent_dropout=recurrent_dropout,
                                   return_sequences=False):
            x = rnn(x)
        if dropout > 0.0:
            x = keras.layers.Dropout(dropout, name="dropout")(x)
        # Over Holt-Winters or a base forecast the correction starts at zero: training moves off that forecast
        # only where the windows show it can do better (early stopping keeps the best epoch).
        forecast = keras.layers.Dense(horizon, name="direct", kernel_initializer="zeros"
                                      if holt_winters_skip or base_forecast else "glorot_uniform")(x)
    parts = [forecast]
    if highway_length:
        recent = keras.layers.Cropping1D((history_length - highway_length, 0), name="highway_window")(history)
        # Starts at zero: the highway begins as "no correction" and learns what linear autoregression explains.
        parts.append(keras.layers.Dense(horizon, kernel_initializer="zeros", name="highway",
                                        kernel_regularizer=keras.regularizers.L2(highway_l2) if highway_l2 else None)(
            keras.layers.Flatten(name="highway_flat")(recent)))
    if seasonal_skip:
        parts.append(SeasonalNaive(seasonal_skip, horizon, name="seasonal_naive")(history))
    if holt_winters_skip:
        parts.append(HoltWinters(horizon, holt_winters_skip, name="holt_winters")(history))
    inputs = history
    if base_forecast:
        correction = keras.layers.Add(name="correction")(parts) if len(parts) > 1 else parts[0]
        base = keras.Input(shape=(horizon,), name="base")
        parts = [base, CorrectionShare(name="correction_share")(correction)]
        if base_alternative:
            theta = Theta(horizon, base_alternative, name="theta")(history)
            parts.append(CorrectionShare(0.0, name="theta_share")(
                keras.layers.Subtract(name="theta_minus_base")([theta, base])))
            alternative = HoltWinters(horizon, base_alternative, name="alternative")(history)
            parts.append(CorrectionShare(0.0, name="alternative_share")(
                keras.layers.Subtract(name="alternative_minus_base")([alternative, base])))
        inputs = {"history": history, "base": base}
        if series_theta:
            inputs["series_theta"] = keras.Input(shape=(horizon,), name="series_theta")
            parts.append(CorrectionShare(0.0, name="series_theta_share")(
                keras.layers.Subtract(name="series_theta_minus_base")([inputs["series_theta"], base])))
    if len(parts) > 1:
        forecast = keras.layers.Add(name="forecast")(parts)
    return keras.Model(inputs, forecast, name=f"{cell}_{strategy}_forecaster")
