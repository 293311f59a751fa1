"""How the statistical part of the ETS hybrid (model.skip=ets) forecasts short series, without the network:
the ETS peer's forecast alone, the combination the Trainer serves now (``models.shares_from_forecasts``: Theta and
Holt-Winters of the window and Theta of the whole series weighted among themselves by the inverse eighth power of
their errors on the training and eval windows, then against ETS by the mean of the weights on the eval windows
and on all of them), the rule before (Theta and Holt-Winters of the window and ETS weighted together on the
training and eval windows), beside the Evaluator's peers (Theta refitted at each origin, seasonal-naive).

Test MASE on development series only, never on pmdarima's examples (kept aside to judge the pipeline):

- generated: trend + season + noise, a level shift, a random-walk level, a growing season, a season that
  drifts, a damped trend; monthly (100-300 values) and quarterly (80-160);
- cut from series statsmodels ships (US housing starts and electrical equipment orders, monthly; El Nino sea
  temperatures, monthly; Victoria's electricity demand, daily; US macro series, quarterly) and from the
  default series when `make run` has fetched them (co2 as 4-week months, taylor as days, sunspots as quarters).

Windows, splits and histories are the pipeline's (``data.Ranges``, ``AUTO_TRAIN_WINDOWS``).

    .venv/bin/python benchmarks/short_series.py [--generated 8] [--seed 19]
"""

from __future__ import annotations

import argparse
import csv
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

Series = tuple[str, np.ndarray, int, int]  # name, values, season, horizon


def generated(count: int, rng: np.random.Generator) -> Iterator[Series]:
    for k in range(count):
        for m, h in ((12, 12), (4, 8)):
            n = int(rng.integers(100, 300)) if m == 12 else int(rng.integers(80, 160))
            t = np.arange(n)
            s = np.sin(2 * np.pi * t / m) + 0.4 * np.cos(4 * np.pi * t / m + rng.uniform(0, 6))
            noise = rng.uniform(0.5, 3)
            yield (f"trend_season{k}", 100 + rng.uniform(-.3, .6) * t + rng.uniform(3, 12) * s
                   + rng.normal(0, noise, n), m, h)
            y = 50 + rng.uniform(0, .3) * t + rng.uniform(3, 8) * s + rng.normal(0, noise, n)
            y[int(n * rng.uniform(.4, .75)):] += rng.uniform(-15, 15)
            yield f"level_shift{k}", y, m, h
            noisy = rng.normal(0, 1, n)
            yield f"random_walk{k}", 80 + np.cumsum(rng.normal(0, 1, n)) + rng.uniform(2, 8) * s + noisy, m, h
            yield (f"growing_season{k}", 30 + rng.uniform(.1, .5) * t + (1 + t / rng.uniform(30, 80))
                   * rng.uniform(3, 6) * s + rng.normal(0, 1, n), m, h)
            drift = np.cumsum(rng.normal(0, .15, (n // m + 2, m)), axis=0).reshape(-1)[:n]
            level = np.cumsum(rng.normal(.1, .3, n))
            yield f"drifting_season{k}", 60 + level + drift + 5 * s + rng.normal(0, 1, n), m, h
            trend = np.cumsum(.5 * .97 ** t) * rng.uniform(.5, 3)
            yield f"damped_trend{k}", 40 + trend + 4 * s + rng.normal(0, 1, n), m, h


def cuts(name: str, y: np.ndarray, season: int, horizon: int, count: int, rng: np.random.Generator,
         shortest: int = 100, longest: int = 300) -> Iterator[Series]:
    for i in range(count):
        n = int(rng.integers(shortest, min(longest, len(y)) + 1))
        start = int(rng.integers(0, len(y) - n + 1))
        yield f"{name}{i}", y[start:start + n], season, horizon


def real(rng: np.random.Generator) -> Iterator[Series]:
    import pandas as pd
    import statsmodels

    root = Path(statsmodels.__file__).parent
    house = pd.read_csv(root / "tsa/holtwinters/tests/results/housing-data.csv").iloc[:, 1].to_numpy(float)
    yield from cuts("housing_starts", house, 12, 12, 10, rng)
    equipment = pd.read_csv(root / "datasets/elec_equip/elec_equip.csv").iloc[:, 1].to_numpy(float)
    yield from cuts("electrical_equipment", equipment, 12, 12, 4, rng)
    nino = pd.read_csv(root / "datasets/elnino/elnino.csv").iloc[:, 1:].to_numpy(float).reshape(-1)
    yield from cuts("el_nino", nino, 12, 12, 6, rng)
    hourly = pd.read_csv(root / "tsa/stl/tests/results/mstl_elec_vic.csv").iloc[:, 1].to_numpy(float)
    yield from cuts("victoria_daily", hourly[: len(hourly) // 24 * 24].reshape(-1, 24).sum(1), 7, 7, 3, rng)
    macro = pd.read_csv(root / "datasets/macrodata/macrodata.csv")
    for column in ("realgdp", "realcons", "realinv", "cpi", "unemp", "tbilrate", "m1", "realgovt"):
        yield from cuts(f"macro_{column}", macro[column].to_numpy(float), 4, 8, 1, rng, longest=160)

    from rnnpipe.data_cache import cache_dir

    def default(name: str, block: int) -> np.ndarray | None:
        path = cache_dir("forecasting") / f"{name}.csv"
        if not path.is_file():
            return None
        with path.open() as f:
            values = pd.Series([float(r[1]) if r[1] else np.nan for r in list(csv.reader(f))[1:]])
        y = values.interpolate().bfill().to_numpy()
        return y[: len(y) // block * block].reshape(-1, block).mean(axis=1)

    for name, block, season, horizon, count in (("co2", 4, 13, 13, 4), ("taylor", 48, 7, 7, 3),
                                                 ("sunspots", 3, 4, 8, 3)):
        y = default(name, block)
        if y is not None:
            yield from cuts(f"{name}_", y, season, horizon, count, rng, shortest=min(80, len(y) - 1))


def scores(series: Series) -> dict[str, float] | None:
    """Test MASE of each forecast for one series; None when the series leaves a split without windows."""
    from share_rules import before as rule_before  # benchmarks/ is the script's folder

    from rnnpipe.models import HoltWinters, Theta
    from rnnpipe.models.forecaster import shares_from_forecasts
    from rnnpipe.models.theta import theta_forecast
    from rnnpipe.pipelines.forecasting import AUTO_TRAIN_WINDOWS
    from rnnpipe.pipelines.forecasting.baselines import ETS, mase_scale, seasonal_naive
    from rnnpipe.pipelines.forecasting.baselines import Theta as ThetaPeer
    from rnnpipe.pipelines.forecasting.data import SPLITS, Ranges

    name, y, m, h = series
    ranges = Ranges.of(len(y), 0.1, 0.2)
    history = ranges.longest_history(h, m, AUTO_TRAIN_WINDOWS)
    origins = {split: np.array(ranges.origins(split, history, h, 1)) for split in SPLITS}
    if any(len(o) == 0 for o in origins.values()):
        return None
    every = np.concatenate([origins[split] for split in SPLITS])
    split_of = np.concatenate([[split] * len(origins[split]) for split in SPLITS])
    truth = np.stack([y[o:o + h] for o in every])
    windows = np.stack([y[o - history:o] for o in every])[..., None].astype("float32")
    whole = np.stack([np.r_[np.full(every.max() - o, np.nan), y[:o]] for o in every])  # left-padded with NaN
    ets, _ = ETS().forecasts(y, ranges.train_end, every, h, m)
    alternatives = {"theta_share": Theta(h, m)(windows).numpy(),
                    "alternative_share": HoltWinters(h, m)(windows).numpy(),
                    "series_theta_share": theta_forecast(whole, h, m, decomposition="auto").numpy()}

    def rows(split: str) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        """As `share_rules.corners` gives a split, the network's correction none (its forecast ETS's)."""
        at = split_of == split
        return truth[at], ets[at], {**{n: f[at] for n, f in alternatives.items()}, "correction_share": ets[at]}

    def served(shares: dict[str, float]) -> np.ndarray:
        return ets + sum(shares[n] * (alternatives[n] - ets) for n in alternatives if n in shares)

    held_out = {split: rows(split) for split in ("train", "eval")}
    now = shares_from_forecasts(*held_out["eval"], held_out["train"])
    before = rule_before(held_out)
    test = split_of == "test"
    scale = mase_scale(y[:ranges.train_end], m)

    def mase(f: np.ndarray) -> float:
        return float(np.abs(f[test] - truth[test]).mean()) / scale

    theta_peer, _ = ThetaPeer(max_seconds=1e9).forecasts(y, origins["test"], h, m)
    return {"ETS": mase(ets), "combination (now)": mase(served(now)), "window only (before)": mase(served(before)),
            "Theta peer": float(np.abs(theta_peer - truth[test]).mean()) / scale,
            "seasonal-naive": mase(seasonal_naive(y, every, h, m))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--generated", type=int, default=8, help="draws of each generated kind and frequency")
    parser.add_argument("--seed", type=int, default=19)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    groups = {"generated": list(generated(args.generated, rng)), "cut from real series": list(real(rng))}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for group, series in groups.items():
            rows = [r for r in map(scores, series) if r is not None]
            table = {k: np.array([r[k] for r in rows]) for k in rows[0]}
            best_peer = min(("ETS", "Theta peer", "seasonal-naive"), key=lambda k: table[k].mean())
            print(f"\n{group}: {len(rows)} series (mean test MASE; 'worse' = series more than 5 % behind ETS)")
            for k, v in table.items():
                print(f"  {k:22s} {v.mean():.3f}  vs {best_peer}: {v.mean() / table[best_peer].mean():.3f}  "
                      f"worse: {int(np.sum(v > 1.05 * table['ETS']))}")


if __name__ == "__main__":
    main()
