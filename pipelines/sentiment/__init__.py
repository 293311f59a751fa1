"""Sentiment analysis: sentences -> negative / positive (or negative / neutral / positive), on VADER's
human-rated sentences by default."""

from __future__ import annotations

from pathlib import Path

from rnnpipe.app import Application
from rnnpipe.config import Config
from rnnpipe.data_cache import cache_dir
from rnnpipe.dsl import Pipeline
from rnnpipe.errors import ConfigError
from rnnpipe.fingerprint import fingerprint_dir

from . import data

NAME = "sentiment"


# data.neutral_band's default: two classes drop only exact zeros; three call a mean rating within half a point
# of 0 on VADER's -4..4 scale neutral (4,567 of the 23,703 sentences; 19%).
DEFAULT_BAND = {2: 0.0, 3: 0.5}


def classes(cfg: Config) -> int:
    value = cfg.data.get("classes", 2)
    if value not in DEFAULT_BAND:
        raise ConfigError(f"data.classes: expected 2 (negative, positive) or 3 (negative, neutral, positive), "
                          f"got {value!r}")
    return value


def neutral_band(cfg: Config) -> float:
    band = cfg.data.neutral_band
    if band is None:
        return DEFAULT_BAND[classes(cfg)]
    if not isinstance(band, int | float) or band < 0:
        raise ConfigError(f"data.neutral_band: expected a number >= 0 (a distance from 0 on VADER's -4..4 scale), "
                          f"got {band!r}")
    return float(band)


def data_path(cfg: Config) -> Path:
    if cfg.data.path:
        return Path(cfg.data.path).expanduser()
    return default_data_path(cfg)


def default_data_path(cfg: Config) -> Path:
    n, band = classes(cfg), neutral_band(cfg)
    name = "vader_sentences.jsonl" if (n, band) == (2, 0.0) else f"vader_sentences-{n}class-band{band:g}.jsonl"
    return cache_dir(NAME, cfg.data.cache_dir) / name


def lexicon_path(cfg: Config) -> Path:
    return cache_dir(NAME, cfg.data.cache_dir) / "vader_lexicon.txt"


def fetch_data(cfg: Config) -> Path:
    """The default sentences and the word lexicon (a model prior, also used with the user's own data)."""
    data.fetch(default_data_path(cfg), lexicon_path(cfg), neutral_band(cfg), classes(cfg))
    return data_path(cfg)


def model_hparams(cfg: Config) -> dict:
    hparams = cfg.model.to_dict()
    if hparams.pop("lexicon_prior"):
        path = lexicon_path(cfg)
        hparams["lexicon_path"] = str(path)
        # The Trainer's cache key holds its parameters: with the lexicon's content among them, a changed file
        # trains again instead of reusing a model built on the old one.
        hparams["lexicon_sha256"] = fingerprint_dir(path) if path.is_file() else None
    return hparams


def build_pipeline(cfg: Config) -> Pipeline:
    # The stages import TensorFlow and Beam: `rnnpipe list`, `runs` and `config` load this package without them.
    from rnnpipe.components import ExampleGen, standard_pipeline

    three = classes(cfg) == 3
    examples = ExampleGen(source=str(data_path(cfg)), **cfg.example_gen)
    return standard_pipeline(
        NAME, cfg, examples, preprocessing_fn=f"{__name__}.features:preprocessing_fn",
        task=f"{__name__}.model:{'THREE_CLASS_TASK' if three else 'TASK'}", hparams=model_hparams(cfg),
        builtin_schema=Path(__file__).with_name("schema_three_class.pbtxt" if three else "schema.pbtxt"),
        evaluator={"metrics_config": {"label_key": "label", "class_names": data.class_names(classes(cfg))}})


APPLICATION = Application(
    name=NAME,
    description=__doc__.strip(),
    default_data="VADER ground-truth sentences (23,320 with polarity) from the vaderSentiment 3.3.2 sdist",
    config_file=Path(__file__).with_name("config.yaml"),
    build_pipeline=build_pipeline,
    fetch_data=fetch_data,
)
