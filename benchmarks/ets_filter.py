"""The cost of forecasting with the ETS model of the whole series inside the served graph (model.skip=ets):
``pipelines/forecasting/ets.forecast`` traced as the signature runs it, against statsmodels filtering the same
series with the same fitted parameters (the ETS peer's way), measured in the same run, by series length.

Batch 1 is one request; batch 32 is 32 series of that length in one request (statsmodels filters them one by
one). The outputs are checked to agree before anything is timed.

    .venv/bin/python benchmarks/ets_filter.py [--repeats 20]
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

    from rnnpipe.pipelines.forecasting import ets
    from rnnpipe.pipelines.forecasting.baselines import ETS

    season, horizon = 12, 12
    model = ETS(damped=True)
    print(f"{'length':>7} {'batch':>5} {'graph ms':>9} {'statsmodels ms':>15} {'ratio':>7}")
    for length in (120, 300, 1000, 3000):
        t = np.arange(length)
        rng = np.random.default_rng(length)
        ys = [100 + 0.2 * t + 8 * np.sin(2 * np.pi * t / season) + rng.normal(0, 2, length) for _ in range(32)]
        fit = model.fit(ys[0][: int(0.7 * length)], season)
        params = ets.params_vector(ys[0][: int(0.7 * length)], season, model)
        graph = tf.function(lambda s, p=params: ets.forecast(s, p, horizon, season), autograph=False)

        def statsmodels_forecasts(rows: list[np.ndarray], fit: object = fit) -> np.ndarray:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return np.stack([model._model(y, season, fit.damped, **fit.initial).fit(
                    optimized=False, **fit.smoothing).forecast(horizon) for y in rows])

        for batch in (1, 32):
            rows = ys[:batch]
            series = tf.constant(np.stack(rows), tf.float32)
            np.testing.assert_allclose(graph(series).numpy(), statsmodels_forecasts(rows), rtol=1e-3)
            ours = best_of(lambda s=series, g=graph: g(s).numpy(), args.repeats)
            theirs = best_of(lambda r=rows: statsmodels_forecasts(r), max(3, args.repeats // 4))
            print(f"{length:>7} {batch:>5} {1e3 * ours:>9.2f} {1e3 * theirs:>15.2f} {theirs / ours:>6.2f}x")


if __name__ == "__main__":
    main()
