"""Slow: the default forecasting runs on the full series, fetched the way a user fetches them.

Each run trains the default model on the whole series and must beat seasonal-naive (the gate pushes it)
and the ETS fitted in the same run, as the issue asks (measured: README / the forecasting report)."""

from __future__ import annotations

import json
from pathlib import Path

import executions
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
