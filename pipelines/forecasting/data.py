"""Forecasting data: the default series, reading a CSV of series, and the windows ExampleGen writes.

Default series (they ship inside two locked packages, so fetching needs no network):

- ``sunspots``: monthly mean sunspot numbers, Jan 1749 - Dec 1983 (2,820 months), ``pmdarima.datasets``;
- ``taylor``: half-hourly electricity demand of England and Wales in MW, Mon 5 Jun - Sun 27 Aug 2000
  (4,032 half-hours), ``pmdarima.datasets``;
- ``co2``: weekly Mauna Loa CO2 in ppm, Mar 1958 - Dec 2001 (2,284 weeks, 59 of them missing),
  ``statsmodels.datasets.co2``.

Each is written as a CSV with a ``timestamp`` and a ``value`` column (missing weeks as empty cells).
The user's own CSV may have any timestamp column and one or more value columns; every value column is
one series, and one model learns them all.

The windows: a window at origin ``o`` holds ``history`` = the values at positions ``o-L .. o-1`` and
``target`` = the values at ``o .. o+H-1``. The split is chronological: the last ``test_fraction`` of
the positions are the test range, the ``eval_fraction`` before them the eval range, the rest the
training range. A window belongs to the range its whole target lies in, so every eval or test target
comes strictly after every training target; a test window's history may reach back into earlier
ranges (it is the known past at that origin: rolling-origin evaluation).
"""

from __future__ import annotations

import csv
import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rnnpipe.components.example_gen import DECIMAL, require_file, text_lines
from rnnpipe.data_cache import atomic_write_text
from rnnpipe.errors import ConfigError, DataError

log = logging.getLogger("rnnpipe")

SERIES = ("sunspots", "taylor", "co2")
MISSING = ("reject", "interpolate")
SPLITS = ("train", "eval", "test")
# The longest series whose records hold the whole series before their origin (``whole_series``, model.skip=ets,
# the default for one series of your own): a record per origin of up to n values grows the examples with n
# squared. Monthly, with the automatic window: 0.03 M values in all at 300, 0.7 M at 1,000, 8 M at 3,000 and
# 394 M at 20,000.
WHOLE_SERIES_MAX_VALUES = 1000


def default_series(name: str) -> tuple[list[str], list[float]]:
    """Timestamps (ISO strings) and values (NaN where missing) of one of the default series."""
    if name == "sunspots":
        from pmdarima.datasets import load_sunspots

        s = load_sunspots(as_series=True)
        return [f"{1749 + i // 12}-{i % 12 + 1:02d}" for i in range(len(s))], [float(v) for v in s.to_numpy()]
    if name == "taylor":
        import pandas as pd
        from pmdarima.datasets import load_taylor

        values = load_taylor()
        # pmdarima ships the values only; the R forecast package dates them Mon 5 Jun 2000 00:00, half-hourly.
        stamps = pd.date_range("2000-06-05 00:00", periods=len(values), freq="30min")
        return [t.strftime("%Y-%m-%d %H:%M") for t in stamps], [float(v) for v in values]
    if name == "co2":
        from statsmodels.datasets import co2

        df = co2.load_pandas().data
        return [t.strftime("%Y-%m-%d") for t in df.index], [float(v) for v in df["co2"].to_numpy()]
    raise ConfigError(f"data.series must be one of {', '.join(SERIES)}, got '{name}'")


def series_csv(timestamps: list[str], values: list[float]) -> str:
    lines = ["timestamp,value"]
    lines += [f"{t},{'' if math.isnan(v) else repr(v)}" for t, v in zip(timestamps, values, strict=True)]
    return "\n".join(lines) + "\n"


def fetch(name: str, dest: Path) -> Path:
    """Writes the default series ``name`` to ``dest`` as CSV once (whole or not at all)."""
    if not dest.exists():
        atomic_write_text(dest, series_csv(*default_series(name)))
    return dest


@dataclass
class Series:
    """Columns read from a CSV: ``values[name]`` float arrays (NaN = missing before imputation),
    ``lines[i]`` the file line of row ``i``."""

    path: Path
    timestamps: list[str]
    lines: list[int]
    values: dict[str, np.ndarray]
    imputed: dict[str, int]

    def where(self, i: int) -> str:
        return f"{self.path}:{self.lines[i]}"


MISSING_CELLS = ("", "na", "n/a", "null", "none", "nan", "+nan", "-nan")


def _number(text: str) -> float:
    """The cell as a float; NaN for a missing cell (empty, NA, NaN). Raises ValueError for anything else that is
    not a finite decimal number: inf is a measurement gone wrong, not a gap to interpolate over; an
    underscore (float() reads 1_000 as 1000) is a typo, not a digit separator."""
    text = text.strip()
    if text.lower() in MISSING_CELLS:
        return math.nan
    if not DECIMAL.fullmatch(text):
        raise ValueError(text)
    value = float(text)
    if not math.isfinite(value):  # 1e999
        raise ValueError(text)
    return value


def _float_or_nan(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return math.nan


def _check_timestamps(path: Path, stamps: list[str], lines: list[int]) -> None:
    import pandas as pd

    try:
        parsed = pd.to_datetime(stamps, format="mixed")
    except (ValueError, TypeError, OverflowError):
        for stamp, line in zip(stamps, lines, strict=True):
            try:
                pd.to_datetime(stamp, format="mixed")
            except (ValueError, TypeError, OverflowError):
                raise DataError(f"{path}:{line}: timestamp {stamp!r} is not a date or time; "
                                "use ISO 8601, e.g. 2000-06-05 or 2000-06-05 13:30") from None
        raise
    steps = np.diff(parsed.asi8)
    bad = np.flatnonzero(steps <= 0)
    if len(bad):
        i = int(bad[0]) + 1
        raise DataError(f"{path}:{lines[i]}: timestamp {stamps[i]!r} does not come after {stamps[i - 1]!r} "
                        f"(line {lines[i - 1]}); sort the rows by time and drop duplicates")


def read_series(path: Path, *, timestamp_column: str = "timestamp", value_columns: list[str] | None = None,
                missing: str = "interpolate") -> Series:
    """Reads a CSV of one timestamp column and value columns; checks it and handles missing values.

    ``missing='reject'`` stops at the first empty or NaN value, naming its file and line; ``'interpolate'``
    fills gaps linearly between their neighbours (at either end of a series: the nearest value). A cell that
    is not a finite number (text, inf, 1e999) stops the read either way.
    """
    if missing not in MISSING:
        raise ConfigError(f"data.missing must be one of {', '.join(MISSING)}, got '{missing}'")
    if not path.exists():
        raise DataError(f"data file not found: {path}; fetch the default data with `rnnpipe data fetch "
                        "forecasting` or point data.path at your own CSV")
    require_file(path, "a CSV file of a timestamp column and value columns")
    reader = csv.reader(line for _, line in text_lines(path, newline=""))  # a BOM dropped, bad bytes named
    header = [h.strip() for h in next(reader, [])]
    if not header:
        raise DataError(f"{path}: empty file; expected a header line such as 'timestamp,value'")
    if timestamp_column not in header:
        raise DataError(f"{path}:1: no timestamp column '{timestamp_column}' in the header {header}; "
                        "set data.timestamp_column")
    columns = list(value_columns) if value_columns else [h for h in header if h != timestamp_column]
    unknown = [c for c in columns if c not in header]
    if unknown or not columns:
        raise DataError(f"{path}:1: value column(s) {unknown or '(none)'} not in the header {header}; "
                        "set data.value_columns")
    t_index, indices = header.index(timestamp_column), [header.index(c) for c in columns]
    stamps, lines, rows = [], [], []
    for row in reader:
        if not row or not any(cell.strip() for cell in row):
            continue
        where = f"{path}:{reader.line_num}"
        if len(row) != len(header):
            raise DataError(f"{where}: expected {len(header)} columns ({', '.join(header)}), got {len(row)}")
        values = []
        for column, index in zip(columns, indices, strict=True):
            try:
                value = _number(row[index])
            except ValueError:
                if math.isinf(_float_or_nan(row[index])):
                    raise DataError(f"{where}: column '{column}' is {row[index].strip()!r}, not a finite number; "
                                    "only empty or NaN cells count as missing (data.missing): fix the value "
                                    "or leave the cell empty") from None
                hint = "" if value_columns else "; set data.value_columns to the numeric columns"
                raise DataError(f"{where}: column '{column}' is {row[index]!r}, not a number{hint}") from None
            if math.isnan(value) and missing == "reject":
                shown = repr(row[index].strip()) if row[index].strip() else "empty"
                raise DataError(f"{where}: column '{column}' is {shown}, a missing value; data.missing is "
                                "'reject': fix the file, or set data.missing=interpolate to fill gaps linearly")
            values.append(value)
        stamps.append(row[t_index].strip())
        lines.append(reader.line_num)
        rows.append(values)
    if not rows:
        raise DataError(f"{path}: no rows below the header; the series is empty")
    _check_timestamps(path, stamps, lines)
    matrix = np.array(rows, dtype="float64")
    series, imputed = {}, {}
    for j, column in enumerate(columns):
        y = matrix[:, j]
        gaps = np.isnan(y)
        if gaps.all():
            raise DataError(f"{path}: column '{column}' has no values at all")
        if gaps.any():
            known = np.flatnonzero(~gaps)
            y = y.copy()
            y[gaps] = np.interp(np.flatnonzero(gaps), known, y[known])
            log.info("%s: column '%s': %d missing value(s) interpolated (first at line %d)", path, column,
                     int(gaps.sum()), lines[int(np.flatnonzero(gaps)[0])])
        series[column], imputed[column] = y, int(gaps.sum())
    return Series(path, stamps, lines, series, imputed)


@dataclass(frozen=True)
class Ranges:
    """Chronological ranges of positions: train ``[0, train_end)``, eval ``[train_end, test_start)``,
    test ``[test_start, n)``."""

    n: int
    train_end: int
    test_start: int

    @classmethod
    def of(cls, n: int, eval_fraction: float, test_fraction: float) -> Ranges:
        check_fractions(eval_fraction, test_fraction)
        n_test, n_eval = math.ceil(test_fraction * n), math.ceil(eval_fraction * n)
        return cls(n, n - n_test - n_eval, n - n_test)

    def longest_history(self, horizon: int, season: int, train_windows: int, max_steps: int | None = None) -> int:
        """The longest history in whole seasons (at least two) that leaves ``train_windows`` windows in the
        training range and spans at most ``max_steps``."""
        room = self.train_end - horizon + 1 - train_windows
        if max_steps is not None:
            room = min(room, max_steps)
        return max(2 * season, room // season * season)

    def origins(self, split: str, history: int, horizon: int, stride: int) -> range:
        """Window origins whose whole target lies in ``split``'s range (and whose history in the series)."""
        low, high = {"train": (0, self.train_end), "eval": (self.train_end, self.test_start),
                     "test": (self.test_start, self.n)}[split]
        return range(max(low, history), high - horizon + 1, stride)


def check_fractions(eval_fraction: float, test_fraction: float) -> None:
    for name, f in (("eval_fraction", eval_fraction), ("test_fraction", test_fraction)):
        if not 0.0 < f < 1.0:
            raise ConfigError(f"data.{name} must lie strictly between 0 and 1, got {f}")


def check_window_config(history: int, horizon: int, stride: int) -> None:
    for name, value in (("history", history), ("horizon", horizon), ("stride", stride)):
        if not isinstance(value, int) or isinstance(value, bool) or value < (2 if name == "history" else 1):
            raise ConfigError(f"data.{name} must be an integer >= {2 if name == 'history' else 1}, got {value!r}")


def read_windows(path: Path, *, history: int, horizon: int, timestamp_column: str = "timestamp",
                 value_columns: list[str] | None = None, missing: str = "interpolate", eval_fraction: float = 0.1,
                 test_fraction: float = 0.2, stride: int = 1, whole_series: bool = False) -> Iterator[tuple[str, dict]]:
    """ExampleGen's reader: ``(where, record)`` per window; ``record['split']`` is its chronological split.

    A record: ``series`` (the value column), ``origin`` (timestamp of the first target value), ``history``
    (``history`` floats), ``target`` (``horizon`` floats), ``split``. ``where`` is the file and line of the
    window's origin. With ``whole_series``, ``history`` is every value before the origin, left-padded with
    NaN to the longest such history (``n - horizon``), for a model that filters the whole series (one
    series only: its fitted states are that series').
    """
    check_window_config(history, horizon, stride)
    data = read_series(Path(path), timestamp_column=timestamp_column, value_columns=value_columns, missing=missing)
    ranges = Ranges.of(len(data.timestamps), eval_fraction, test_fraction)
    for split in SPLITS:
        if not ranges.origins(split, history, horizon, stride):
            raise DataError(f"{path}: {len(data.timestamps)} rows leave no {split} window of history {history} + "
                            f"horizon {horizon} (train range {ranges.train_end} rows, eval "
                            f"{ranges.test_start - ranges.train_end}, test {ranges.n - ranges.test_start}); "
                            "use a longer series, a shorter data.history or data.horizon, or other fractions")
    if whole_series and len(data.values) > 1:
        raise DataError(f"{path}: model.skip=ets fits one series, and this file has {len(data.values)} value columns "
                        f"({', '.join(data.values)}); pick one with data.value_columns, or use model.skip=holt_winters")
    width = len(data.timestamps) - horizon
    if whole_series and len(data.timestamps) > WHOLE_SERIES_MAX_VALUES:
        records = sum(len(ranges.origins(split, history, horizon, stride)) for split in SPLITS)
        log.warning("%s: model.skip=ets writes every value before a window's origin into its record: %d records of "
                    "%d values (%.1f M) from a series of %d; above %d values, leaving model.skip out picks "
                    "holt_winters, whose records hold data.history values", path, records, width,
                    records * width / 1e6, len(data.timestamps), WHOLE_SERIES_MAX_VALUES)
    for column, y in data.values.items():
        for split in SPLITS:
            for o in ranges.origins(split, history, horizon, stride):
                past = ([math.nan] * (width - o) + y[:o].tolist()) if whole_series else y[o - history:o].tolist()
                yield data.where(o), {"series": column, "origin": data.timestamps[o], "history": past,
                                      "target": y[o:o + horizon].tolist(), "split": split}
