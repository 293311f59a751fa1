"""Theta: statsmodels' Theta method on each window, its seasonality test, shift and scale, serialization, checks."""

from __future__ import annotations

import warnings

import keras
import numpy as np
import pytest

from rnnpipe.models import Theta
from rnnpipe.models.theta import theta_forecast


def _statsmodels(y: np.ndarray, horizon: int, season: int) -> tuple[np.ndarray, bool]:
    from statsmodels.tsa.forecasting.theta import ThetaModel

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = ThetaModel(y, period=season, deseasonalize=season > 1, method="additive")
        forecast = np.asarray(model.fit().forecast(horizon))
    return forecast, bool(season > 1 and model._has_seasonality)


def _series(n: int, season: int, rng: np.random.Generator, amplitude: float) -> np.ndarray:
    t = np.arange(n)
    return (10 + 0.2 * t + amplitude * np.sin(2 * np.pi * t / max(season, 2)) + np.cumsum(rng.normal(0, 0.5, n))
            + rng.normal(0, 1, n))


@pytest.mark.parametrize(("season", "length", "horizon", "amplitude"),
                         [(12, 48, 12, 5.0), (12, 120, 12, 3.0), (4, 40, 8, 2.0), (7, 56, 7, 4.0), (1, 30, 6, 0.0),
                          (12, 60, 6, 0.0)])
def test_forecasts_as_statsmodels_theta_model_with_an_additive_decomposition(
        season: int, length: int, horizon: int, amplitude: float) -> None:
    rng = np.random.default_rng(season * length)
    rows = np.stack([_series(length, season, rng, amplitude) for _ in range(4)])
    got = Theta(horizon, season)(rows[..., None].astype("float32")).numpy()
    tested = set()
    for row, forecast in zip(rows, got, strict=True):
        expected, seasonal = _statsmodels(row, horizon, season)
        tested.add(seasonal)
        # The smoothing weight comes from a grid refined by a parabola (statsmodels optimizes it).
        assert np.abs(forecast - expected).max() < 0.002 * row.std()
    if season > 1:  # rows that pass the seasonality test and rows that fail it are both compared
        assert (amplitude > 0) in tested


@pytest.mark.parametrize(("season", "horizon"), [(12, 12), (4, 8), (1, 6)])
def test_whole_series_of_different_lengths_as_statsmodels_default_theta_model(season: int, horizon: int) -> None:
    """Rows left-padded with NaN to one batch, forecast as statsmodels forecasts each row alone with its default
    decomposition ("auto": multiplicative for a positive series), deseasonalized where it holds two seasons."""
    from statsmodels.tsa.forecasting.theta import ThetaModel

    rng = np.random.default_rng(season)
    lengths = [2 * season + 1, 40, 75, 130, 2 * season - 1 if season > 1 else 3]
    rows = [60 + _series(n, season, rng, 4.0) for n in lengths]
    rows[1] -= 100.0  # negative values: an additive decomposition
    width = max(lengths)
    padded = np.stack([np.r_[np.full(width - len(r), np.nan), r] for r in rows])
    got = theta_forecast(padded, horizon, season, decomposition="auto").numpy()
    for row, forecast in zip(rows, got, strict=True):
        seasonal = season > 1 and len(row) >= 2 * season
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            expected = ThetaModel(row, period=season if seasonal else 1, deseasonalize=seasonal).fit().forecast(horizon)
        # Over a few values the error is flat in the smoothing weight, and the grid's weight differs more.
        assert np.abs(forecast - np.asarray(expected)).max() < (0.005 if len(row) >= 20 else 0.02) * row.std()
    with pytest.raises(ValueError, match=r"`decomposition` must be one of 'additive', 'auto'.*Received: "
                                         r"decomposition='multiplicative'"):
        theta_forecast(padded, horizon, season, decomposition="multiplicative")


def test_commutes_with_shift_and_scale() -> None:
    rng = np.random.default_rng(0)
    rows = np.stack([_series(48, 12, rng, 4.0) for _ in range(3)])[..., None]
    layer = Theta(6, 12)
    np.testing.assert_allclose(layer((3.0 * rows - 7.0).astype("float32")).numpy(),
                               3.0 * layer(rows.astype("float32")).numpy() - 7.0, rtol=1e-4, atol=1e-3)


def test_a_constant_window_forecasts_itself() -> None:
    np.testing.assert_allclose(Theta(4, 4)(np.full((2, 16, 1), 2.5, "float32")).numpy(), 2.5, atol=1e-6)


def test_serialization_and_argument_checks() -> None:
    layer = Theta(5, 3, name="theta")
    assert layer.get_config()["horizon"] == 5 and layer.get_config()["season"] == 3
    clone = Theta.from_config(layer.get_config())
    window = np.random.default_rng(1).normal(size=(2, 9, 1)).astype("float32")
    np.testing.assert_allclose(clone(window).numpy(), layer(window).numpy())
    assert keras.saving.get_registered_name(Theta) == "rnnpipe>Theta"
    assert not layer.trainable
    with pytest.raises(ValueError, match=r"`horizon` must be a positive integer"):
        Theta(0)
    with pytest.raises(ValueError, match=r"at least two seasons \(2 \* season = 8 steps\). Received: "
                                         r"input_shape=\(None, 6, 1\)"):
        Theta(3, 4).build((None, 6, 1))
