"""The forecasting metrics function of the Evaluator: MAE, RMSE, sMAPE and MASE of the model's forecasts
beside seasonal-naive (the baseline of the gate) and a statsmodels ETS fitted in the same step on the
same training range; overall, per series and per part of the horizon; a forecast-vs-truth plot.

The series are read again from the source file ExampleGen read (recorded in the Examples artifact),
with the same settings, so the peers see exactly the values the model saw (imputed ones included); a
window whose target no longer matches the file stops the evaluation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from rnnpipe.artifacts import Examples
from rnnpipe.components.metrics import PredictionsWriter
from rnnpipe.errors import DataError

from .baselines import ETS, Theta, mase_scale, point_metrics, seasonal_naive
from .data import Ranges, read_series

CARD_METRICS = ["count", "mae", "rmse", "smape", "mase"]
PLOT_FILE = "forecast_vs_truth.png"


def _rows(records: list[dict], key: str, width: int) -> np.ndarray:
    # example_to_dict turns a one-value list into a scalar: reshape keeps [n, width] either way.
    return np.array([np.atleast_1d(r[key]) for r in records], dtype="float64").reshape(len(records), width)


def horizon_parts(horizon: int, parts: int) -> list[tuple[int, int]]:
    """Up to ``parts`` contiguous ranges of horizon steps (0-based, end exclusive)."""
    edges = sorted({round(horizon * i / parts) for i in range(parts + 1)})
    return [(a, b) for a, b in zip(edges, edges[1:], strict=False) if b > a]


def evaluate_forecasts(ev: Any) -> dict:
    """The Evaluator's ``metrics`` for forecasts; ``ev.config``: the reader settings (``history``,
    ``horizon``, ``timestamp_column``, ``value_columns``, ``missing``, ``eval_fraction``,
    ``test_fraction``), ``season``, ``ets`` (ETS options) and ``horizon_slices``."""
    cfg = ev.config
    horizon, season = int(cfg["horizon"]), int(cfg["season"])
    source = Path(Examples.read_info(ev.examples_uri).source)
    data = read_series(source, timestamp_column=cfg["timestamp_column"], value_columns=cfg["value_columns"],
                       missing=cfg["missing"])
    ranges = Ranges.of(len(data.timestamps), cfg["eval_fraction"], cfg["test_fraction"])
    position = {t: i for i, t in enumerate(data.timestamps)}
    records = ev.records
    truth = _rows(records, "target", horizon)
    forecast = np.asarray(ev.predictions["forecast"], dtype="float64").reshape(len(records), horizon)
    names = np.array([r["series"] for r in records])
    origins = np.array([position.get(r["origin"], -1) for r in records])
    for i, r in enumerate(records):
        y = data.values.get(r["series"])
        if y is None or origins[i] < 0 or not np.allclose(y[origins[i]:origins[i] + horizon], truth[i], rtol=1e-5,
                                                           atol=1e-4 * (1 + abs(truth[i]).max())):
            raise DataError(f"{source}: the window of series '{r['series']}' at {r['origin']} differs from the file "
                            "ExampleGen read; the file changed since: re-run from ExampleGen")
    scales = {name: mase_scale(y[:ranges.train_end], season) for name, y in data.values.items()}
    scale = np.array([scales[n] for n in names])
    if ev.out_dir is None:  # scoring the champion: only the model's overall metrics are read
        return {"overall": {"model": point_metrics(truth, forecast, scale)}}

    naive = np.zeros_like(truth)
    ets = np.zeros_like(truth)
    ets_models, theta_models = {}, {}
    theta = np.full_like(truth, np.nan)
    for name in sorted(set(names)):
        rows = np.flatnonzero(names == name)
        y = data.values[name]
        naive[rows] = seasonal_naive(y, origins[rows], horizon, season)
        ets[rows], ets_models[name] = ETS(**cfg.get("ets", {})).forecasts(y, ranges.train_end, origins[rows],
                                                                           horizon, season)
        ev.log(f"ETS peer for '{name}': {ets_models[name]}")
        if cfg.get("theta") is not None:
            theta[rows], theta_models[name] = Theta(**cfg["theta"]).forecasts(y, origins[rows], horizon, season)
            ev.log(f"Theta peer for '{name}': {theta_models[name]}")

    def peers(rows: np.ndarray, steps: slice = slice(None)) -> dict:
        return {"model": point_metrics(truth[rows, steps], forecast[rows, steps], scale[rows]),
                "baseline": point_metrics(truth[rows, steps], naive[rows, steps], scale[rows]),
                "peer/ets": point_metrics(truth[rows, steps], ets[rows, steps], scale[rows]),
                **({"peer/theta": point_metrics(truth[done, steps], theta[done, steps], scale[done])}
                   if theta_models and len(done := rows[~np.isnan(theta[rows, 0])]) else {})}

    everything = np.arange(len(records))
    slices = {}
    if len(set(names)) > 1:
        for name in sorted(set(names)):
            slices[f"series:{name}"] = peers(np.flatnonzero(names == name))
    for a, b in horizon_parts(horizon, int(cfg.get("horizon_slices", 3))):
        slices[f"steps:{a + 1}-{b}"] = peers(everything, slice(a, b))
    baseline = "naive (the last value)" if season == 1 else f"seasonal naive (m={season}: the value one season earlier)"
    evaluation = {"overall": peers(everything), "slices": slices, "baseline": baseline, "card_metrics": CARD_METRICS,
                  "ets": ets_models, "theta": theta_models, "windows": {"test_origins": len(set(origins.tolist())),
                                                 "first_origin": data.timestamps[int(origins.min())],
                                                 "train_range_end": data.timestamps[ranges.train_end - 1]}}
    o = evaluation["overall"]
    ev.log(f"MASE model {o['model']['mase']:.3f}, {baseline.split(' (')[0]} {o['baseline']['mase']:.3f}, "
           f"ETS {o['peer/ets']['mase']:.3f} over {len(records)} test windows")

    out = ev.out_dir
    with PredictionsWriter(out) as writer:
        writer.write({"series": r["series"], "origin": r["origin"], "target": truth[i].tolist(),
                      "forecast": forecast[i].tolist(), "baseline": naive[i].tolist(), "ets": ets[i].tolist()}
                     for i, r in enumerate(records))
    plot = plot_forecasts(out / PLOT_FILE, data, names, origins, forecast, naive, ets, truth, horizon, ranges, baseline)
    evaluation["artifacts"] = [(plot, "plots"), (writer.sample_path, "evaluation")]
    return evaluation


def plot_forecasts(path: Path, data: Any, names: np.ndarray, origins: np.ndarray, forecast: np.ndarray,
                   naive: np.ndarray, ets: np.ndarray, truth: np.ndarray, horizon: int, ranges: Ranges,
                   baseline: str) -> Path:
    """Per series (up to 4): the truth over the test range and the forecasts from every H-th origin (so
    they tile the range without overlap); below, the MAE per horizon step of the three forecasters."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = sorted(set(names))[:4]
    fig, axes = plt.subplots(len(shown) + 1, 1, figsize=(12, 3.2 * (len(shown) + 1)), squeeze=False)
    for ax, name in zip(axes[:-1, 0], shown, strict=True):
        rows = np.flatnonzero(names == name)
        rows = rows[np.argsort(origins[rows])]
        first = int(origins[rows[0]])
        tiles = [i for i in rows if (origins[i] - first) % horizon == 0]
        y = data.values[name]
        start = max(0, first - 2 * horizon)
        ax.plot(np.arange(start, ranges.n), y[start:], color="black", lw=1, label="truth")
        for k, i in enumerate(tiles):
            steps = np.arange(origins[i], origins[i] + horizon)
            ax.plot(steps, forecast[i], color="tab:red", lw=1.2, label="model" if k == 0 else None)
            ax.plot(steps, ets[i], color="tab:blue", lw=0.8, ls="--", label="ETS" if k == 0 else None)
            ax.plot(steps, naive[i], color="tab:green", lw=0.8, ls=":", label=baseline.split(" (")[0] if k == 0
                    else None)
        ax.axvline(first, color="grey", lw=0.8)
        ticks = np.linspace(start, ranges.n - 1, 6).astype(int)
        ax.set_xticks(ticks, [data.timestamps[t] for t in ticks], fontsize=8)
        ax.set_title(f"{name}: forecasts from every {horizon}th test origin")
        ax.legend(loc="upper left", fontsize=8)
    ax = axes[-1, 0]
    steps = np.arange(1, horizon + 1)
    for label, f, style, color in (("model", forecast, "-o", "tab:red"), ("ETS", ets, "--s", "tab:blue"),
                                   (baseline.split(" (")[0], naive, ":^", "tab:green")):
        ax.plot(steps, np.abs(truth - f).mean(axis=0), style, color=color, ms=3, label=label)
    ax.set_xlabel("horizon step")
    ax.set_ylabel("MAE")
    ax.set_title("error by horizon step, all test windows")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
