"""model.skip=ets: the ETS peer's model in TensorFlow (the same forecasts from left-padded whole series), the
records that hold the whole series, and the start check of the served filter."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from rnnpipe.errors import DataError
from rnnpipe.pipelines.forecasting import ets
from rnnpipe.pipelines.forecasting.baselines import ETS
from rnnpipe.pipelines.forecasting.data import read_windows


def _series(n: int, season: int, seed: int = 0) -> np.ndarray:
    t = np.arange(n)
    rng = np.random.default_rng(seed)
    return 50 + 0.3 * t + (8 * np.sin(2 * np.pi * t / season) if season > 1 else 0) + rng.normal(0, 2, n)


@pytest.mark.parametrize(("season", "options"), [
    (12, {}), (12, {"damped": True}), (4, {"damped": False}), (12, {"trend": False}), (1, {})])
def test_the_graph_filter_forecasts_what_the_ets_peer_forecasts(season: int, options: dict) -> None:
    y = _series(150, season)
    model = ETS(**options)
    origins = np.arange(110, 139)
    expected, _ = model.forecasts(y, 100, origins, 12, season)
    params = ets.params_vector(y[:100], season, model)
    assert params.shape == (ets.SEASONS0 + season,) and params[ets.FIRST] == np.float32(y[0])
    # Rows of one batch, each the whole series before its origin, left-padded with NaN.
    rows = np.stack([np.concatenate([np.full(138 - o, np.nan), y[:o]]) for o in origins]).astype("float32")
    got = ets.forecast(tf.constant(rows), params, 12, season).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-3)


def test_a_row_that_does_not_start_with_the_series_first_value_is_refused() -> None:
    y = _series(60, 4)
    params = ets.params_vector(y[:40], 4, ETS())
    padded = np.concatenate([[np.nan, np.nan], y[:50]]).astype("float32")
    tf.debugging.assert_equal(ets.first_values(tf.constant(np.stack([padded, y[2:54].astype("float32")]))),
                              tf.constant([y[0], y[2]], tf.float32))
    ets.check_start(tf.constant(padded[None]), params)  # passes: NaN before the first value is padding
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"must hold the whole series from its first value"):
        ets.check_start(tf.constant(y[None, 4:50].astype("float32")), params)
    gap = padded.copy()
    gap[20] = np.nan
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"'history' has NaN after its first value"):
        ets.check_start(tf.constant(gap[None]), params)


def test_the_graph_filter_holds_its_precision_over_thousands_of_values() -> None:
    y = _series(3000, 12, seed=5)
    model = ETS(damped=False)
    origins = np.array([2400, 2700, 2988])
    expected, _ = model.forecasts(y, 2000, origins, 12, 12)
    params = ets.params_vector(y[:2000], 12, model)
    rows = np.stack([np.concatenate([np.full(2988 - o, np.nan), y[:o]]) for o in origins]).astype("float32")
    got = ets.forecast(tf.constant(rows), params, 12, 12).numpy()
    np.testing.assert_allclose(got, expected, rtol=5e-5)  # float32 over 3,000 values near 950: within 0.05


def test_whole_series_records_hold_every_value_before_the_origin(tmp_path: Path) -> None:
    y = _series(100, 4)
    path = tmp_path / "s.csv"
    path.write_text("timestamp,value\n" + "".join(f"2000-01-{1 + i // 24:02d} {i % 24:02d}:00,{v!r}\n"
                                                  for i, v in enumerate(y.tolist())))
    windows = [r for _, r in read_windows(path, history=8, horizon=3, whole_series=True)]
    plain = [r for _, r in read_windows(path, history=8, horizon=3)]
    assert len(windows) == len(plain)
    for whole, window in zip(windows, plain, strict=True):
        assert len(whole["history"]) == 97  # the longest history: n - horizon
        assert whole["history"][-8:] == window["history"] and whole["target"] == window["target"]
        values = [v for v in whole["history"] if not math.isnan(v)]
        assert values == y[:len(values)].tolist()  # from the series' first value
    two = tmp_path / "two.csv"
    two.write_text("timestamp,a,b\n" + "".join(f"2000-01-{1 + i:02d},{i},{2 * i}\n" for i in range(30)))
    with pytest.raises(DataError, match=r"two\.csv: model\.skip=ets fits one series, and this file has 2 value "
                                        r"columns \(a, b\); pick one with data\.value_columns"):
        list(read_windows(two, history=4, horizon=2, whole_series=True))


SERVE_SERIES = """
import json, sys
import numpy as np
import tensorflow as tf
fn = tf.saved_model.load(sys.argv[1]).signatures["serving_default"]
y = np.array(json.load(open(sys.argv[2])), np.float32)
whole = fn(history=tf.constant(y[None]))["forecast"].numpy()
earlier = fn(history=tf.constant(y[None, :100]))["forecast"].numpy()
padded = np.concatenate([np.full(len(y) - 100, np.nan, np.float32), y[:100]])
batch = fn(history=tf.constant(np.stack([y, padded])))["forecast"].numpy()
try:
    fn(history=tf.constant(y[None, 12:]))
    cut = "answered"
except tf.errors.InvalidArgumentError as e:
    cut = e.message
assert not [m for m in sys.modules if m.split(".")[0] in ("rnnpipe", "keras", "tensorflow_transform", "statsmodels")]
print(json.dumps({"whole": whole.tolist(), "earlier": earlier.tolist(), "batch": batch.tolist(), "cut": cut}))
"""


@pytest.mark.slow  # a second forecasting run end to end (test_forecasting_e2e.py is the fast suite's); 45 s
def test_a_short_series_of_your_own_serves_the_whole_series(workdir: Path,
                                                            capsys: pytest.CaptureFixture) -> None:
    """End to end on 10 years of monthly values, one series of your own (model.skip=ets by default): the records
    hold the whole series, the network corrects the ETS peer's forecast, and the pushed model, in a fresh process
    with TensorFlow alone, forecasts a series longer than any it was trained on, a left-padded batch row as that
    row alone, and refuses a series cut at its start."""
    import json
    import subprocess
    import sys

    import executions

    from rnnpipe.cli import main

    y = _series(120, 12, seed=3)
    path = workdir / "monthly.csv"
    path.write_text("timestamp,value\n" + "".join(f"{2000 + i // 12}-{i % 12 + 1:02d},{v!r}\n"
                                                  for i, v in enumerate(y.tolist())))
    assert main(["run", "forecasting", "--set", f"data.path={path}", "--set", "data.horizon=12", "--set",
                 "data.season=12", "--set", "model.units=8", "--set", "trainer.epochs=3",
                 "--set", "trainer.gradient_diagnostics=false"]) == 0
    evaluation = executions.latest(workdir, "Evaluator", app="forecasting") / "evaluation" / "evaluation.json"
    overall = json.loads(evaluation.read_text())["overall"]
    assert overall["model"]["mase"] < overall["baseline"]["mase"]
    # Three epochs from a zero correction, shares chosen on held-out windows: close to the ETS forecast it corrects.
    assert abs(overall["model"]["mase"] - overall["peer/ets"]["mase"]) < 0.2 * overall["peer/ets"]["mase"]
    (workdir / "y.json").write_text(json.dumps(y.tolist()))
    proc = subprocess.run([sys.executable, "-c", SERVE_SERIES, str(workdir / "serving" / "forecasting" / "1"),
                           str(workdir / "y.json")], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    whole, earlier, batch = (np.array(out[k]) for k in ("whole", "earlier", "batch"))
    assert whole.shape == (1, 12) and np.isfinite(whole).all()
    np.testing.assert_allclose(batch, np.concatenate([whole, earlier]), rtol=1e-5)
    assert np.abs(whole - earlier).max() > 1.0  # 20 more months moved the forecast: it read them all
    assert "must hold the whole series from its first value" in out["cut"], out["cut"]
    # `rnnpipe predict` sends the numbers it is given as one row: the series, some comma-separated.
    capsys.readouterr()
    values = [repr(v) for v in y.tolist()]
    assert main(["predict", "forecasting", ",".join(values[:60]), *values[60:]]) == 0
    printed = capsys.readouterr().out.strip()
    assert printed.startswith("120 values: forecast=[")
    np.testing.assert_allclose(np.array(printed.split("[", 1)[1].rstrip("]").split(), float), whole[0], rtol=1e-4)
    assert main(["predict", "forecasting", "1.5", "twelve"]) != 0
    assert "the model takes a row of numbers; 'twelve' is not a number" in capsys.readouterr().err
