"""Sentiment analysis: sentences -> negative / positive, on VADER's human-rated sentences by default."""

from __future__ import annotations

from pathlib import Path

from rnnpipe.app import Application
from rnnpipe.config import Config
from rnnpipe.data_cache import cache_dir
from rnnpipe.dsl import Pipeline

from . import data

NAME = "sentiment"


def data_path(cfg: Config) -> Path:
    if cfg.data.path:
        return Path(cfg.data.path).expanduser()
    return cache_dir(NAME, cfg.data.cache_dir) / "vader_sentences.jsonl"


def lexicon_path(cfg: Config) -> Path:
    return cache_dir(NAME, cfg.data.cache_dir) / "vader_lexicon.txt"


def fetch_data(cfg: Config) -> Path:
    """The default sentences and the word lexicon (a model prior, also used with the user's own data)."""
    default = cache_dir(NAME, cfg.data.cache_dir) / "vader_sentences.jsonl"
    data.fetch(default, lexicon_path(cfg), cfg.data.neutral_band)
    return data_path(cfg)


def model_hparams(cfg: Config) -> dict:
    hparams = cfg.model.to_dict()
    if hparams.pop("lexicon_prior"):
        hparams["lexicon_path"] = str(lexicon_path(cfg))
    return hparams


def build_pipeline(cfg: Config) -> Pipeline:
    # The stages import TensorFlow and Beam: `rnnpipe list`, `runs` and `config` load this package without them.
    from rnnpipe.components import ExampleGen, standard_pipeline

    examples = ExampleGen(source=str(data_path(cfg)), **cfg.example_gen)
    return standard_pipeline(
        NAME, cfg, examples, preprocessing_fn=f"{__name__}.features:preprocessing_fn", task=f"{__name__}.model:TASK",
        hparams=model_hparams(cfg), builtin_schema=Path(__file__).with_name("schema.pbtxt"),
        evaluator={"metrics_config": {"label_key": "label", "class_names": data.CLASS_NAMES}})


APPLICATION = Application(
    name=NAME,
    description=__doc__.strip(),
    default_data="VADER ground-truth sentences (23,320 with polarity) from the vaderSentiment 3.3.2 sdist",
    config_file=Path(__file__).with_name("config.yaml"),
    build_pipeline=build_pipeline,
    fetch_data=fetch_data,
)
