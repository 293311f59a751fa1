"""The cost of the Theta method inside the forecaster (``models.Theta``, the window alternative of
model.skip=ets): the layer traced as a model runs it, against statsmodels' ``ThetaModel`` (additive
decomposition) fitting the same windows one by one, measured in the same run, by window length. Then Theta of
the whole series (``models.theta_forecast``, statsmodels' default decomposition) on 64 series of different
lengths left-padded into one batch, as the Transform and the serving signature run it, against ``ThetaModel``
on each series.

Batch 1 is one request; batch 32 a training batch. The outputs are checked to agree before anything is timed.

    .venv/bin/python benchmarks/theta_layer.py [--repeats 20]
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _timing import best_of  # noqa: E402  (benchmarks/ is the script's folder)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()

    import tensorflow as tf
    from statsmodels.tsa.forecasting.theta import ThetaModel

    from rnnpipe.models import Theta

    season, horizon = 12, 12
    print(f"{'window':>7} {'batch':>5} {'layer ms':>9} {'statsmodels ms':>15} {'ratio':>7}")
    for length in (36, 96, 156, 300):
        t = np.arange(length)
        rng = np.random.default_rng(length)
        rows = np.stack([100 + 0.2 * t + 8 * np.sin(2 * np.pi * t / season) + np.cumsum(rng.normal(0, 1, length))
                         for _ in range(32)])
        layer = Theta(horizon, season)
        graph = tf.function(lambda w, layer=layer: layer(w), autograph=False)

        def statsmodels_forecasts(rows: np.ndarray) -> np.ndarray:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return np.stack([np.asarray(ThetaModel(y, period=season, method="additive").fit().forecast(horizon))
                                 for y in rows])

        for batch in (1, 32):
            windows = tf.constant(rows[:batch, :, None], tf.float32)
            np.testing.assert_allclose(graph(windows).numpy(), statsmodels_forecasts(rows[:batch]),
                                       atol=2e-3 * rows.std())
            ours = best_of(lambda w=windows, g=graph: g(w).numpy(), args.repeats)
            theirs = best_of(lambda r=rows[:batch]: statsmodels_forecasts(r), max(3, args.repeats // 4))
            print(f"{length:>7} {batch:>5} {1e3 * ours:>9.2f} {1e3 * theirs:>15.2f} {theirs / ours:>6.2f}x")

    from rnnpipe.models.theta import theta_forecast

    print(f"\n{'longest':>7} {'rows':>5} {'graph ms':>9} {'statsmodels ms':>15} {'ratio':>7}")
    for width in (120, 240, 1000):
        rng = np.random.default_rng(width)
        series = []
        for _ in range(64):
            t = np.arange(int(rng.integers(width // 2, width + 1)))
            series.append(100 + 0.2 * t + 8 * np.sin(2 * np.pi * t / season) + np.cumsum(rng.normal(0, 1, len(t))))
        padded = tf.constant([np.r_[np.full(width - len(y), np.nan), y] for y in series], tf.float32)
        whole = tf.function(lambda rows: theta_forecast(rows, horizon, season, "auto"), autograph=False)

        def statsmodels_series(series: list = series) -> np.ndarray:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return np.stack([np.asarray(ThetaModel(y.astype("float32"), period=season).fit().forecast(horizon))
                                 for y in series])

        np.testing.assert_allclose(whole(padded).numpy(), statsmodels_series(), atol=5e-3 * np.std(series[0]))
        ours = best_of(lambda p=padded, g=whole: g(p).numpy(), args.repeats)
        theirs = best_of(statsmodels_series, max(3, args.repeats // 4))
        print(f"{width:>7} {len(series):>5} {1e3 * ours:>9.2f} {1e3 * theirs:>15.2f} {theirs / ours:>6.2f}x")


if __name__ == "__main__":
    main()
