"""Time-series forecasting: a window of past values -> the next H values, beside seasonal-naive and ETS."""

from __future__ import annotations

import functools
import logging
import math
from pathlib import Path

from rnnpipe.app import Application
from rnnpipe.config import Config
from rnnpipe.data_cache import cache_dir
from rnnpipe.dsl import Pipeline
from rnnpipe.errors import ConfigError

from . import data

NAME = "forecasting"
WINDOW_KEYS = ("history", "horizon", "season")
SKIPS = ("seasonal_naive", "holt_winters", "ets", "none")
AUTO_TRAIN_WINDOWS = 30
# ... and at most this many steps (or two seasons): a long series has the windows to learn from, and a longer
# window only adds recurrent steps to each of them.
AUTO_MAX_HISTORY = 256
log = logging.getLogger("rnnpipe")


def data_path(cfg: Config) -> Path:
    if cfg.data.path:
        return Path(cfg.data.path).expanduser()
    if cfg.data.series not in data.SERIES:
        raise ConfigError(f"data.series must be one of {', '.join(data.SERIES)}, got '{cfg.data.series}'; "
                          "or point data.path at your own CSV")
    return cache_dir(NAME, cfg.data.cache_dir) / f"{cfg.data.series}.csv"


def fetch_data(cfg: Config) -> Path:
    """Writes the chosen default series to the cache as CSV (once); the user's own CSV is used as is."""
    path = data_path(cfg)
    return path if cfg.data.path else data.fetch(cfg.data.series, path)


def window(cfg: Config) -> dict[str, int]:
    """History, horizon and season: the configured values, else the default series' preset; for your own
    series without ``data.history``, the longest whole number of seasons that leaves ``AUTO_TRAIN_WINDOWS``
    training windows, at most ``AUTO_MAX_HISTORY`` steps (``auto_history``)."""
    preset = {} if cfg.data.path else cfg.data.presets.get(cfg.data.series, {})
    resolved = {key: cfg.data[key] if cfg.data[key] is not None else preset.get(key) for key in WINDOW_KEYS}
    missing = [key for key, value in resolved.items() if value is None and key != "history"]
    if missing or (resolved["history"] is None and not cfg.data.path):
        raise ConfigError(f"set {', '.join('data.' + k for k in missing or ['history'])} for your own series "
                          f"(e.g. --set data.horizon=12 --set data.season=12)")
    if not isinstance(resolved["season"], int) or resolved["season"] < 1:
        raise ConfigError(f"data.season must be a positive integer (1 = no season), got {resolved['season']!r}")
    if resolved["history"] is None:
        resolved["history"] = auto_history(cfg, resolved["horizon"], resolved["season"])
    if resolved["history"] < resolved["season"]:
        raise ConfigError(f"data.history ({resolved['history']}) must cover at least one season "
                          f"(data.season={resolved['season']}): seasonal-naive reads it from the window")
    return resolved


def auto_history(cfg: Config, horizon: int, season: int) -> int:
    """The longest history, in whole seasons (at least two), that leaves ``AUTO_TRAIN_WINDOWS`` windows in the
    training range of the series at ``data.path``, and spans at most ``AUTO_MAX_HISTORY`` steps unless two
    seasons do: on a short series a longer window lets the model see the level, trend and season the way a
    statistical model fitted on the whole series does, while enough windows remain to learn from."""
    length, _ = own_series_shape(cfg)
    return data.Ranges.of(length, *split_fractions(cfg, horizon)).longest_history(
        horizon, season, AUTO_TRAIN_WINDOWS, max_steps=AUTO_MAX_HISTORY)


def split_fractions(cfg: Config, horizon: int) -> tuple[float, float]:
    """``data.eval_fraction`` and ``data.test_fraction``; for your own series, each raised where its range would
    hold less than one horizon of values, so that it holds one window: 10 % of 100 months is under a year."""
    d = cfg.data
    fractions = (d.eval_fraction, d.test_fraction)
    if not d.path:
        return fractions
    data.check_fractions(*fractions)
    length, _ = own_series_shape(cfg)
    # ceil((horizon - 0.5) / length * length) is horizon, where horizon / length might round up past it. A
    # series too short for that keeps the fractions, and the reader says what no range holds.
    raised = (horizon - 0.5) / length
    return tuple(f if math.ceil(f * length) >= horizon or raised >= 0.5 else raised for f in fractions)


def own_series_shape(cfg: Config) -> tuple[int, int]:
    """The number of values and of series (value columns) in the CSV at ``data.path``."""
    d, path = cfg.data, data_path(cfg)
    version = (path.stat().st_mtime_ns, path.stat().st_size) if path.is_file() else None
    return _series_shape(path, version, timestamp_column=d.timestamp_column, value_columns=tuple(d.value_columns),
                         missing=d.missing)


@functools.lru_cache(maxsize=8)
def _series_shape(path: Path, version: tuple | None, **reading: object) -> tuple[int, int]:
    # window() runs several times while a pipeline is built: the CSV is read once (again when it changes).
    series = data.read_series(path, **reading)
    return len(series.timestamps), len(series.values)


def model_hparams(cfg: Config) -> dict:
    """The forecaster's arguments: the model section, the preset's model keys where it says null, and the
    season for the seasonal skip and differences (``check_model`` builds the model with them once)."""
    hparams = cfg.model.to_dict()
    preset = {} if cfg.data.path else cfg.data.presets.get(cfg.data.series, {})
    for key, fallback in (("recurrent_length", None), ("highway_length", 0)):
        if hparams[key] is None:
            hparams[key] = preset.get(key, fallback)
    w = window(cfg)
    season, direct = w["season"], hparams["decoding"] == "direct"
    # In a direct forecast the network corrects seasonal-naive, Holt-Winters or ETS; an autoregressive decoder
    # feeds its own outputs back as values, so it does without a skip and the seasonal differences.
    hparams.pop("skip")
    skip = skip_of(cfg)
    if direct and skip == "holt_winters" and w["history"] < 2 * season:
        raise ConfigError(f"model.skip=holt_winters starts its states from two seasons of the window: data.history "
                          f"({w['history']}) must be at least 2 * data.season = {2 * season}; set a longer "
                          "data.history (or leave it out) or model.skip=seasonal_naive")
    if direct and skip == "none" and hparams["seasonal_difference"]:
        raise ConfigError("model.seasonal_difference feeds the network the differences a skip corrects: with "
                          "model.skip=none set model.seasonal_difference=false")
    if skip == "ets" and not direct:
        raise ConfigError("model.skip=ets adds the ETS forecast to a direct forecast: set model.decoding=direct")
    hparams["seasonal_skip"] = season if skip == "seasonal_naive" and direct else 0
    hparams["holt_winters_skip"] = season if skip == "holt_winters" and direct else 0
    if skip == "ets":  # the base forecast comes from the transform; the differences need the season named
        hparams["base_forecast"] = True
        hparams["season"] = season if season < w["history"] else 0
        # Held-out windows may mix Theta and Holt-Winters of the window into it: ETS's parameters are fitted once
        # and can go astray (a growing season) or fall behind a series that changed.
        hparams["base_alternative"] = season if w["history"] >= 2 * season else 0
        hparams["series_theta"] = True  # and Theta of the whole series, refitted at each origin like the peer
    hparams["seasonal_difference"] = bool(hparams["seasonal_difference"] and direct and hparams.get("season", 1))
    return hparams


def skip_of(cfg: Config) -> str:
    """The forecast the network corrects: ``model.skip``, else the preset's; for your own CSV, ETS when it holds
    one series (its fitted states are that series') of at most ``data.WHOLE_SERIES_MAX_VALUES`` values (its
    records hold the whole series), else Holt-Winters of each window."""
    if cfg.model.skip:
        skip = cfg.model.skip
    elif cfg.data.path:
        length, columns = own_series_shape(cfg)
        skip = "ets" if columns == 1 and length <= data.WHOLE_SERIES_MAX_VALUES else "holt_winters"
    else:
        skip = cfg.data.presets.get(cfg.data.series, {}).get("skip", "holt_winters")
    if skip not in SKIPS:
        raise ConfigError(f"model.skip must be one of {', '.join(SKIPS)}, got {skip!r}")
    return skip


def check_model(hparams: dict, history: int, horizon: int) -> None:
    """Builds the forecaster once with the configured arguments, so a bad combination stops the run before
    any step executes (the runner calls this only then: building imports Keras)."""
    from rnnpipe.models import build_forecaster
    from rnnpipe.models.forecaster import FORECAST_STRATEGIES

    from .model import forecaster_args

    if hparams["decoding"] not in FORECAST_STRATEGIES:
        raise ConfigError(f"model.decoding must be one of {', '.join(FORECAST_STRATEGIES)}, "
                          f"got {hparams['decoding']!r}")
    try:
        build_forecaster(history, horizon, **forecaster_args(hparams))
    except (TypeError, ValueError) as e:
        raise ConfigError(f"model: {e}") from None


def reader_config(cfg: Config) -> dict:
    w = window(cfg)
    d = cfg.data
    eval_fraction, test_fraction = split_fractions(cfg, w["horizon"])
    for name, set_to, raised in (("eval", d.eval_fraction, eval_fraction), ("test", d.test_fraction, test_fraction)):
        if raised != set_to:
            _say_raised(data_path(cfg), name, set_to, w["horizon"])
    # model.skip=ets: each record holds the whole series before its origin (the ETS filter's input)
    whole = {"whole_series": True} if skip_of(cfg) == "ets" else {}
    return {"history": w["history"], "horizon": w["horizon"], "timestamp_column": d.timestamp_column,
            "value_columns": list(d.value_columns), "missing": d.missing, "eval_fraction": eval_fraction,
            "test_fraction": test_fraction, "stride": d.stride, **whole}


@functools.lru_cache(maxsize=8)
def _say_raised(path: Path, split: str, fraction: float, horizon: int) -> None:
    # Once: the CLI builds the pipeline twice (checking the config before any download, then running).
    log.info("data.%s_fraction=%g leaves the %s range of %s under one horizon (%d values): it holds %d",
             split, fraction, split, path.name, horizon, horizon)


def build_pipeline(cfg: Config) -> Pipeline:
    # The stages import TensorFlow and Beam: `rnnpipe list`, `runs` and `config` load this package without them.
    from rnnpipe.components import ExampleGen, standard_pipeline

    reading, hparams, w = reader_config(cfg), model_hparams(cfg), window(cfg)
    transform, task = cfg.transform.to_dict(), f"{__name__}.model:TASK"
    if reading.get("whole_series"):
        ets_options = cfg.evaluator.metrics.get("ets", {})
        transform.update(window=w["history"], horizon=w["horizon"], season=w["season"], ets=ets_options)
        task = f"{__name__}.model:SERIES_TASK"
        # NaN pads each history to one length: the model reads the window at its end, the filter skips it.
        validator = cfg.example_validator
        cfg = Config({**cfg, "example_validator": Config({
            **validator, "allow_non_finite": sorted({*validator.allow_non_finite, "history"})})})
    examples = ExampleGen(source=str(data_path(cfg)), reader=f"{__name__}.data:read_windows", reader_config=reading,
                          partition_feature="split", splits={s: 1 for s in data.SPLITS}, **cfg.example_gen)
    # The metrics re-read the series (seasonal-naive and ETS see the whole history): the reader's settings
    # join evaluator.metrics. A served model for another series (another window length) is no champion.
    return standard_pipeline(
        NAME, cfg, examples, preprocessing_fn=f"{__name__}.features:preprocessing_fn", task=task,
        hparams=hparams, transform_config=transform,
        checks=[functools.partial(check_model, hparams, w["history"], w["horizon"])],
        evaluator={"metrics": f"{__name__}.metrics:evaluate_forecasts",
                   "metrics_config": {**reading, "season": w["season"]}})


APPLICATION = Application(
    name=NAME,
    description=__doc__.strip(),
    default_data="monthly sunspots 1749-1983 (pmdarima); also data.series=co2 (weekly Mauna Loa CO2, statsmodels) "
                 "or taylor (half-hourly electricity demand, pmdarima)",
    config_file=Path(__file__).with_name("config.yaml"),
    build_pipeline=build_pipeline,
    fetch_data=fetch_data,
)
