"""Machine translation, English -> Spanish: an encoder-decoder with attention over WordPiece pieces, on
King James / Reina-Valera 1909 Bible verse pairs by default (whole chapters held out).

The served model takes raw English sentences and returns Spanish ones, with greedy or beam-search
decoding inside the SavedModel; a second signature returns the attention weights with the translation.
"""

from __future__ import annotations

from pathlib import Path

from rnnpipe.app import Application
from rnnpipe.config import Config
from rnnpipe.data_cache import cache_dir
from rnnpipe.dsl import Pipeline

from . import data

NAME = "translation"


def default_path(cfg: Config) -> Path:
    return data.default_path(cache_dir(NAME, cfg.data.cache_dir))


def data_path(cfg: Config) -> Path:
    """A TSV or JSONL file of sentence pairs: the user's, else the exported Bible verse pairs."""
    return Path(cfg.data.path).expanduser() if cfg.data.path else default_path(cfg)


def fetch_data(cfg: Config) -> Path:
    if cfg.data.path:  # the user's own data: nothing to export
        return data_path(cfg)
    return data.fetch(default_path(cfg))


def build_pipeline(cfg: Config) -> Pipeline:
    # The stages import TensorFlow and Beam: `rnnpipe list`, `runs` and `config` load this package without them.
    from rnnpipe.components import ExampleGen, standard_pipeline

    d = cfg.data
    splits = d.splits.to_dict() if hasattr(d.splits, "to_dict") else dict(d.splits)
    examples = ExampleGen(source=str(data_path(cfg)), reader=f"{__name__}.data:read_pairs",
                          reader_config={"max_words": d.max_words, "split_long": d.split_long, "splits": splits},
                          partition_feature=data.SPLIT_KEY, splits=splits, **cfg.example_gen)
    t = cfg.transform.to_dict()
    return standard_pipeline(
        NAME, cfg, examples, preprocessing_fn=f"{__name__}.features:preprocessing_fn", task=f"{__name__}.model:TASK",
        hparams={**cfg.model.to_dict(), "max_target_tokens": t.get("max_target_tokens", 48)},
        evaluator={"metrics": f"{__name__}.metrics:evaluate_translation"})


APPLICATION = Application(
    name=NAME,
    description=__doc__.strip(),
    default_data="King James Bible / Reina-Valera 1909 verse pairs (Debian sword-text-kjv, sword-text-sparv, "
                 "exported with mod2imp from libsword-utils), up to 50 words a side",
    config_file=Path(__file__).with_name("config.yaml"),
    build_pipeline=build_pipeline,
    fetch_data=fetch_data,
)
