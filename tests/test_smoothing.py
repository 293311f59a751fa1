"""HoltWinters: the textbook recursion, linearity, learning its smoothing weights, serialization, argument checks."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from rnnpipe.models import HoltWinters, build_forecaster


def _reference(y: np.ndarray, horizon: int, m: int, alpha: float, beta: float, gamma: float, phi: float) -> np.ndarray:
    """Additive damped Holt-Winters written out step by step (Hyndman & Athanasopoulos, 8.3), one window, states
    started as the layer documents: a line through the means of the whole seasons and the mean deviation per step."""
    k = len(y) // m
    means = y[:k * m].reshape(k, m).mean(axis=1)
    slope, intercept = np.polyfit(np.arange(k) * m + (m - 1) / 2, means, 1)
    seasons = (y[:k * m] - (intercept + slope * np.arange(k * m))).reshape(k, m).mean(axis=0)
    seasons -= seasons.mean()
    level, trend = intercept + slope * (m - 1), slope
    for t in range(m, len(y)):
        previous, s = level, seasons[t % m]
        level = alpha * (y[t] - s) + (1 - alpha) * (previous + phi * trend)
        trend = beta * (level - previous) + (1 - beta) * phi * trend
        seasons[t % m] = gamma * (y[t] - level) + (1 - gamma) * s
    damping = np.cumsum(phi ** np.arange(1, horizon + 1))
    return np.array([level + damping[h] * trend + seasons[(len(y) + h) % m] for h in range(horizon)])


def _seasonal_windows(n: int, length: int, horizon: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    t = np.arange(length + horizon)
    level = np.cumsum(rng.normal(0, 0.3, size=(n, length + horizon)), axis=1)  # a wandering level
    series = level + 0.05 * t + np.sin(2 * np.pi * t / 6 + rng.uniform(0, 6, size=(n, 1)))
    return series[:, :length, None].astype("float32"), series[:, length:].astype("float32")


@pytest.mark.parametrize(("season", "length"), [(4, 14), (6, 18), (12, 24)])
def test_forecast_is_the_textbook_recursion(season: int, length: int) -> None:
    y = np.random.default_rng(season).normal(size=(3, length)).cumsum(axis=1)
    layer = HoltWinters(horizon=2 * season + 1, season=season, alpha=0.3, beta=0.1, gamma=0.2, phi=0.9, dtype="float64")
    out = layer(y[..., None]).numpy()
    for row, window in zip(out, y, strict=True):
        np.testing.assert_allclose(row, _reference(window, 2 * season + 1, season, 0.3, 0.1, 0.2, 0.9), rtol=1e-6)
    p = {k: float(v) for k, v in layer.smoothing().items()}
    np.testing.assert_allclose([p["alpha"], p["beta"], p["gamma"], p["phi"]], [0.3, 0.1, 0.2, 0.9], rtol=1e-6)


def test_forecast_is_linear_in_the_window_so_it_works_on_normalized_values() -> None:
    y = np.random.default_rng(1).normal(size=(4, 16, 1)).astype("float32")
    layer = HoltWinters(horizon=5, season=4)
    np.testing.assert_allclose(layer(3.0 * y + 7.0).numpy(), 3.0 * layer(y).numpy() + 7.0, rtol=1e-4, atol=1e-4)
    # Holt's linear method (no season) continues a straight line exactly.
    line = np.linspace(2.0, 9.0, 10, dtype="float32")[None, :, None]
    holt = HoltWinters(horizon=3, damped=False)
    np.testing.assert_allclose(holt(line).numpy()[0], [9 + 7 / 9 * h for h in (1, 2, 3)], rtol=1e-5)


def test_smoothing_weights_learn_from_the_forecast_error() -> None:
    rng = np.random.default_rng(0)
    x, y = _seasonal_windows(512, 24, 6, rng)
    x_test, y_test = _seasonal_windows(256, 24, 6, rng)
    layer = HoltWinters(horizon=6, season=6, alpha=0.02, beta=0.02, gamma=0.02, phi=0.85)
    model = keras.Sequential([keras.Input((24, 1)), layer])
    model.compile(keras.optimizers.Adam(0.1), loss="mae")
    before = float(model.evaluate(x_test, y_test, verbose=0))
    model.fit(x, y, epochs=15, batch_size=64, verbose=0)
    after = float(model.evaluate(x_test, y_test, verbose=0))
    # The level wanders, so a level weight of 0.02 lags behind it: training raises alpha and the error falls.
    assert after < 0.8 * before, (before, after)
    assert float(layer.smoothing()["alpha"]) > 0.1
    assert all(0 < float(v) < 1 for k, v in layer.smoothing().items() if k != "phi")


def test_config_round_trip_and_saved_model(tmp_path: object) -> None:
    layer = HoltWinters(horizon=3, season=2, damped=False, alpha=0.4, beta=0.2, gamma=0.3, name="hw")
    config = layer.get_config()
    assert {k: config[k] for k in ("horizon", "season", "damped", "alpha", "beta", "gamma", "phi")} == {
        "horizon": 3, "season": 2, "damped": False, "alpha": 0.4, "beta": 0.2, "gamma": 0.3, "phi": 0.95}
    assert HoltWinters.from_config(config).get_config() == config
    assert keras.saving.get_registered_name(HoltWinters) == "rnnpipe>HoltWinters"
    model = build_forecaster(12, 3, units=4, holt_winters_skip=4)
    x = np.random.default_rng(2).normal(size=(2, 12, 1)).astype("float32")
    # Untrained, the forecaster is the smoothing forecast: the network's output layer starts at zero.
    np.testing.assert_allclose(model(x).numpy(), model.get_layer("holt_winters")(x).numpy(), atol=1e-6)
    path = f"{tmp_path}/hybrid.keras"
    model.save(path)
    np.testing.assert_allclose(keras.saving.load_model(path)(x).numpy(), model(x).numpy(), atol=1e-6)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"horizon": 0}, r"`horizon` must be a positive integer.*Received: horizon=0"),
    ({"season": 1.5}, r"`season` must be a positive integer.*Received: season=1.5"),
    ({"alpha": 1.0}, r"`alpha` must be a float in \(0, 1\).*Received: alpha=1.0"),
    ({"gamma": True}, r"`gamma` must be a float in \(0, 1\).*Received: gamma=True"),
    ({"phi": 0.5}, r"`phi` must be a float in \(0.8, 1\).*Received: phi=0.5"),
    ({"damped": "yes"}, r"`damped` must be a bool.*Received: damped='yes'"),
])
def test_bad_arguments_raise_value_errors(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        HoltWinters(**{"horizon": 2, **kwargs})


def test_a_window_shorter_than_two_seasons_is_refused() -> None:
    with pytest.raises(ValueError, match=r"at least two seasons \(2 \* season = 8 steps\).*input_shape=\(1, 7, 1\)"):
        HoltWinters(horizon=2, season=4)(np.zeros((1, 7, 1), "float32"))
