"""Slow: the default forecasting runs on the full series, fetched the way a user fetches them, and on a short
series of your own.

Each run trains the default model on the whole series and must beat seasonal-naive (the gate pushes it)
and the ETS fitted in the same run, as the issue asks (measured: README / the forecasting report)."""

from __future__ import annotations

import json
from pathlib import Path

import executions
import numpy as np
import pytest

from rnnpipe.cli import main


@pytest.mark.slow
@pytest.mark.parametrize("series", ["sunspots", "co2", "taylor"])
def test_default_run_beats_seasonal_naive_and_ets(workdir: Path, monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture, series: str) -> None:
    monkeypatch.setenv("RNNPIPE_CACHE", str(workdir / "cache"))
    assert main(["data", "fetch", "forecasting", "--set", f"data.series={series}"]) == 0
    assert f"data ready at {workdir / 'cache' / 'forecasting' / series}.csv" in capsys.readouterr().out
    assert main(["run", "forecasting", "--set", f"data.series={series}"]) == 0
    assert "pushed: version 1" in capsys.readouterr().out
    evaluation_dir = executions.latest(workdir, "Evaluator", app="forecasting")
    overall = json.loads((evaluation_dir / "evaluation" / "evaluation.json").read_text())["overall"]
    assert overall["model"]["mase"] < overall["baseline"]["mase"]
    assert overall["model"]["mase"] < overall["peer/ets"]["mase"]


def _short_monthly_series(path: Path) -> Path:
    """15 years of a monthly series with a trend, two harmonics of a yearly season, noise and a level shift."""
    rng = np.random.default_rng(7)
    t = np.arange(180)
    y = 100 + 0.3 * t + 8 * np.sin(2 * np.pi * t / 12) + 4 * np.cos(4 * np.pi * t / 12) + rng.normal(0, 2.5, 180)
    y[120:] += 15
    path.write_text("timestamp,value\n" + "".join(f"{2000 + i // 12}-{i % 12 + 1:02d},{v:.4f}\n"
                                                   for i, v in enumerate(y)))
    return path


@pytest.mark.slow
def test_a_short_series_of_your_own_gets_the_ets_hybrid(workdir: Path, capsys: pytest.CaptureFixture) -> None:
    """The default for your own CSV of one series (the network over the ETS model of the whole series, shares
    chosen on held-out windows) against the network over seasonal-naive on the usual 3 seasons of history, on
    180 monthly values (measured: README, Short series)."""
    own = ["--set", f"data.path={_short_monthly_series(workdir / 'monthly.csv')}", "--set", "data.horizon=12",
           "--set", "data.season=12"]
    overall = {}
    for name, extra in (("hybrid", []), ("plain", ["--set", "data.history=36", "--set", "model.skip=seasonal_naive",
                                                    "--set", "pusher.model_name=plain"])):
        assert main(["run", "forecasting", *own, *extra]) == 0
        capsys.readouterr()
        evaluation_dir = executions.latest(workdir, "Evaluator", app="forecasting")
        overall[name] = json.loads((evaluation_dir / "evaluation" / "evaluation.json").read_text())["overall"]
    hybrid, plain = overall["hybrid"], overall["plain"]
    assert hybrid["model"]["mase"] < plain["model"]["mase"]
    assert hybrid["model"]["mase"] < hybrid["baseline"]["mase"]
    assert hybrid["model"]["mase"] < hybrid["peer/ets"]["mase"]
