"""The forecasts the model is measured against: seasonal-naive, an ETS model fitted by statsmodels and statsmodels'
Theta method.

Both forecast from every origin of the rolling evaluation with only the values before the origin, like
the model. The ETS parameters (smoothing weights, damping, initial states) are fitted once on the
training range, as the network's weights are; at each later origin its states have been updated by the
values seen so far (the exponential smoothing filter runs on with the fitted parameters), and the
forecast is read off those states.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np


def seasonal_naive(y: np.ndarray, origins: np.ndarray, horizon: int, season: int) -> np.ndarray:
    """``[len(origins), horizon]``: each step's value one season (or whole seasons) before it, the last
    observed one for ``season=1`` (naive)."""
    h = np.arange(horizon)
    lags = season * (h // season + 1)
    return y[origins[:, None] + h[None, :] - lags[None, :]]


def mase_scale(y_train: np.ndarray, season: int) -> float:
    """Mean absolute error of the in-sample seasonal-naive one-step forecast over the training range."""
    if len(y_train) <= season:
        raise ValueError(f"the training range has {len(y_train)} values; MASE needs more than the season {season}")
    scale = float(np.mean(np.abs(y_train[season:] - y_train[:-season])))
    return scale if scale > 0 else 1.0


def point_metrics(y: np.ndarray, f: np.ndarray, scale: np.ndarray) -> dict[str, float]:
    """MAE, RMSE, sMAPE (percent, 0..200) and MASE over ``[n, horizon]`` arrays; ``scale`` per row."""
    if y.size == 0:
        return {"count": 0, "mae": float("nan"), "rmse": float("nan"), "smape": float("nan"), "mase": float("nan")}
    err = np.abs(y - f)
    denom = np.abs(y) + np.abs(f)
    smape = np.divide(2.0 * err, denom, out=np.zeros_like(err), where=denom > 0)
    return {"count": int(y.shape[0]), "mae": float(err.mean()), "rmse": float(np.sqrt(np.mean(err ** 2))),
            "smape": float(100.0 * smape.mean()), "mase": float((err / scale[:, None]).mean())}


@dataclass
class ETS:
    """Additive exponential smoothing: ETS(A,A,A) or ETS(A,Ad,A) with a season, ETS(A,A(d),N) without.

    ``damped=None`` fits both trends on the training range and keeps the one with the lower AIC (as R's
    ``forecast::ets`` selects a model)."""

    trend: bool = True
    damped: bool | None = None
    seasonal: bool = True
    initialization: str = "auto"  # auto = estimated up to a season of 52, else heuristic (fast for long seasons)

    def _model(self, y: np.ndarray, season: int, damped: bool, **init: object) -> object:
        from statsmodels.tsa.holtwinters import ExponentialSmoothing

        seasonal = self.seasonal and season > 1
        method = self.initialization
        if method == "auto":
            method = "estimated" if season <= 52 else "heuristic"
        return ExponentialSmoothing(
            y, trend="add" if self.trend else None, damped_trend=self.trend and damped,
            seasonal="add" if seasonal else None, seasonal_periods=season if seasonal else None,
            initialization_method="known" if init else method, **init)

    def description(self, season: int, damped: bool) -> str:
        trend = ("Ad" if damped else "A") if self.trend else "N"
        return f"ETS(A,{trend},{'A' if self.seasonal and season > 1 else 'N'})"

    def fit(self, y_train: np.ndarray, season: int) -> EtsFit:
        """The parameters fitted on ``y_train`` (smoothing weights, damping, initial states), its values rounded
        to 32-bit floats as the records hold them: the peer reads the CSV and the Transform's fit
        (``model.skip: ets``) reads the records, and a fit on values a rounding apart can choose another model
        (Dutch TV advertising: a damped trend or not), so the network would correct another ETS than the peer's."""
        y_train = np.asarray(y_train, dtype="float32").astype("float64")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # statsmodels' convergence chatter
            choices = [self.damped] if self.damped is not None or not self.trend else [True, False]
            fits = {damped: self._model(y_train, season, damped).fit() for damped in choices}
        best = min(fits, key=lambda d: fits[d].aic)
        p, damped = fits[best].params, bool(best)
        seasonal = self.seasonal and season > 1
        init = {"initial_level": float(p["initial_level"])}
        if self.trend:
            init["initial_trend"] = float(p["initial_trend"])
        if seasonal:
            init["initial_seasonal"] = np.asarray(p["initial_seasons"], dtype="float64")
        smoothing = {k: float(p[k]) for k in ("smoothing_level", "smoothing_trend", "smoothing_seasonal",
                                               "damping_trend")
                     if k in p and p[k] is not None and np.isfinite(p[k]) and (k != "damping_trend" or damped)}
        return EtsFit(self.description(season, damped), season, damped, init, smoothing)

    def forecasts(self, y: np.ndarray, train_end: int, origins: np.ndarray, horizon: int,
                  season: int) -> tuple[np.ndarray, dict]:
        """``[len(origins), horizon]`` forecasts from a model fitted on ``y[:train_end]``, and a description
        with its parameters."""
        fit = self.fit(y[:train_end], season)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # The same parameters filtered over the whole series: the states at t < train_end are the fitted
            # ones, later states have seen only values up to t (a filter is causal).
            states = self._model(y, season, fit.damped, **fit.initial).fit(optimized=False, **fit.smoothing)
        level = np.asarray(states.level)
        slope = np.asarray(states.trend) if self.trend else np.zeros_like(level)
        seasons = np.asarray(states.season) if "initial_seasonal" in fit.initial else None
        phi = fit.smoothing.get("damping_trend", 1.0)
        h = np.arange(1, horizon + 1)
        damp = np.cumsum(phi ** h)  # phi + phi^2 + ... + phi^h
        last = origins - 1  # forecasts made after observing y[origin - 1]
        out = level[last, None] + damp[None, :] * slope[last, None]
        if seasons is not None:
            out = out + seasons[last[:, None] + h[None, :] - season * ((h[None, :] - 1) // season + 1)]
        return out, fit.describe()


@dataclass(frozen=True)
class EtsFit:
    """An ETS model fitted by statsmodels: ``initial`` and ``smoothing`` as ``ExponentialSmoothing`` takes
    them (``initial_level``, ``initial_trend``, ``initial_seasonal``; ``smoothing_level``, ``smoothing_trend``,
    ``smoothing_seasonal``, ``damping_trend``), each present when the model has that component."""

    model: str
    season: int
    damped: bool
    initial: dict
    smoothing: dict

    def describe(self) -> dict:
        return {"model": self.model, **{k: round(v, 4) for k, v in self.smoothing.items()}}


@dataclass
class Theta:
    """The Theta method (Assimakopoulos & Nikolopoulos, 2000; statsmodels' ``ThetaModel``): simple exponential
    smoothing with half the linear trend as drift, on the series deseasonalized by classical decomposition
    when it has a season. Cheap to fit, so it is refitted at each origin on the values before it, as a
    forecaster in production would be, until ``max_seconds`` have passed; later origins are left out (NaN)."""

    theta: float = 2.0
    max_seconds: float = 120.0

    def forecasts(self, y: np.ndarray, origins: np.ndarray, horizon: int, season: int) -> tuple[np.ndarray, dict]:
        """``[len(origins), horizon]`` forecasts (NaN rows past the time budget) and a description."""
        import time

        from statsmodels.tsa.forecasting.theta import ThetaModel

        out = np.full((len(origins), horizon), np.nan)
        start, done = time.perf_counter(), 0
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for i, origin in enumerate(origins):
                if time.perf_counter() - start > self.max_seconds:
                    break
                history = y[:origin]
                seasonal = season > 1 and len(history) >= 2 * season
                fit = ThetaModel(history, period=season if seasonal else 1, deseasonalize=seasonal).fit()
                out[i] = np.asarray(fit.forecast(horizon, theta=self.theta))
                done += 1
        return out, {"model": f"Theta(theta={self.theta:g}{', deseasonalized' if season > 1 else ''})",
                     "origins": done, "of": len(origins), "seconds": round(time.perf_counter() - start, 1)}
