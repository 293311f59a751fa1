"""Time-series forecasting: a window of past values -> the next H values, beside seasonal-naive and ETS."""

from __future__ import annotations

import logging
from pathlib import Path

from rnnpipe.app import Application
from rnnpipe.components import (
    Evaluator,
    ExampleGen,
    ExampleValidator,
    InfraValidator,
    Pusher,
    SchemaGen,
    StatisticsGen,
    Trainer,
    Transform,
)
from rnnpipe.config import Config
from rnnpipe.data_cache import cache_dir
from rnnpipe.dsl import Pipeline
from rnnpipe.errors import ConfigError
from rnnpipe.serving import latest_version

from . import data

NAME = "forecasting"
log = logging.getLogger("rnnpipe")
WINDOW_KEYS = ("history", "horizon", "season")


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
    """History, horizon and season: the configured values, else the default series' preset."""
    preset = {} if cfg.data.path else cfg.data.presets.get(cfg.data.series, {})
    resolved = {key: cfg.data[key] if cfg.data[key] is not None else preset.get(key) for key in WINDOW_KEYS}
    missing = [key for key, value in resolved.items() if value is None]
    if missing:
        raise ConfigError(f"set {', '.join('data.' + k for k in missing)} for your own series "
                          f"(e.g. --set data.history=48 --set data.horizon=12 --set data.season=12)")
    if not isinstance(resolved["season"], int) or resolved["season"] < 1:
        raise ConfigError(f"data.season must be a positive integer (1 = no season), got {resolved['season']!r}")
    if resolved["history"] < resolved["season"]:
        raise ConfigError(f"data.history ({resolved['history']}) must cover at least one season "
                          f"(data.season={resolved['season']}): seasonal-naive reads it from the window")
    return resolved


def model_hparams(cfg: Config) -> dict:
    """The forecaster's arguments: the model section, the preset's model keys where it says null, and the
    season for the seasonal skip and differences; checked by building the model once, so a bad combination
    stops the run before any data is read."""
    hparams = cfg.model.to_dict()
    preset = {} if cfg.data.path else cfg.data.presets.get(cfg.data.series, {})
    for key, fallback in (("recurrent_length", None), ("highway_length", 0)):
        if hparams[key] is None:
            hparams[key] = preset.get(key, fallback)
    season, direct = window(cfg)["season"], hparams["strategy"] == "direct"
    # The seasonal parts correct seasonal-naive in a direct forecast; an autoregressive decoder feeds its
    # own outputs back as values, so it does without them.
    hparams["seasonal_skip"] = season if hparams["seasonal_skip"] and direct else 0
    hparams["seasonal_difference"] = bool(hparams["seasonal_difference"] and direct)
    from rnnpipe.models import build_forecaster

    w = window(cfg)
    try:
        build_forecaster(w["history"], w["horizon"], **hparams)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"model: {e}") from None
    return hparams


def reader_config(cfg: Config) -> dict:
    w = window(cfg)
    d = cfg.data
    return {"history": w["history"], "horizon": w["horizon"], "timestamp_column": d.timestamp_column,
            "value_columns": list(d.value_columns), "missing": d.missing, "eval_fraction": d.eval_fraction,
            "test_fraction": d.test_fraction, "stride": d.stride}


def champion_dir(cfg: Config) -> str | None:
    """Where the Evaluator finds the served model to match, or None when the served model reads another
    window length: it was trained for another series (``--set data.series=co2`` after a sunspots run), so
    it is no champion for this one, and calling it with these windows would fail."""
    base = Path(cfg.serving_dir).resolve() / NAME
    version = latest_version(base)
    if version is None:
        return str(base)
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel.FromString((base / str(version) / "saved_model.pb").read_bytes())
    inputs = proto.meta_graphs[0].signature_def["serving_default"].inputs
    served = [d.size for d in inputs["history"].tensor_shape.dim] if "history" in inputs else None
    if served == [-1, window(cfg)["history"]]:
        return str(base)
    log.info("the served %s version %s reads histories of shape %s, this run %d values: not its champion",
             NAME, version, served, window(cfg)["history"])
    return None


def build_pipeline(cfg: Config) -> Pipeline:
    reading = reader_config(cfg)
    examples = ExampleGen(source=str(data_path(cfg)), reader=f"{__name__}.data:read_windows", reader_config=reading,
                          partition_feature="split", splits={s: 1 for s in data.SPLITS}, **cfg.example_gen)
    stats = StatisticsGen(examples=examples)
    schema = SchemaGen(statistics=stats, **cfg.schema_gen)
    anomalies = ExampleValidator(statistics=stats, schema=schema, examples=examples, **cfg.example_validator)
    transform = Transform(examples=examples, schema=schema, preprocessing_fn=f"{__name__}.features:preprocessing_fn",
                          config=cfg.transform.to_dict())
    trainer = Trainer(transformed_examples=transform["transformed_examples"],
                      transform_graph=transform["transform_graph"], task=f"{__name__}.model:TASK",
                      hparams=model_hparams(cfg), **cfg.trainer)
    gate = cfg.evaluator.to_dict()
    metrics_config = {**reading, "season": window(cfg)["season"], "ets": gate.pop("ets"),
                      "horizon_slices": gate.pop("horizon_slices")}
    evaluator = Evaluator(model=trainer["model"], examples=examples, metrics=f"{__name__}.metrics:evaluate_forecasts",
                          metrics_config=metrics_config, primary_metric="mase", higher_is_better=False,
                          champion_dir=champion_dir(cfg), **gate)
    infra = InfraValidator(model=trainer["model"], examples=examples, model_name=NAME, **cfg.infra_validator)
    pusher = Pusher(model=trainer["model"], blessing=evaluator["blessing"], infra_blessing=infra, model_name=NAME,
                    **cfg.pusher)
    return Pipeline(NAME, [examples, stats, schema, anomalies, transform, trainer, evaluator, infra, pusher])


APPLICATION = Application(
    name=NAME,
    description=__doc__.strip(),
    default_data="monthly sunspots 1749-1983 (pmdarima); also data.series=co2 (weekly Mauna Loa CO2, statsmodels) "
                 "or taylor (half-hourly electricity demand, pmdarima)",
    config_file=Path(__file__).with_name("config.yaml"),
    build_pipeline=build_pipeline,
    fetch_data=fetch_data,
)
