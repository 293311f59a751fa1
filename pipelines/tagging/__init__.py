"""Part-of-speech tagging: CoNLL-U sentences -> a tag per token, on the Turkish UD treebanks by default."""

from __future__ import annotations

from pathlib import Path

from rnnpipe.app import Application
from rnnpipe.config import Config
from rnnpipe.data_cache import cache_dir
from rnnpipe.dsl import Pipeline

from . import data

NAME = "tagging"


def default_path(cfg: Config) -> Path:
    return cache_dir(NAME, cfg.data.cache_dir) / data.DEFAULT_FOLDER


def data_path(cfg: Config) -> Path:
    """A CoNLL-U file, or a folder of them: the user's, else the fetched Turkish treebanks."""
    return Path(cfg.data.path).expanduser() if cfg.data.path else default_path(cfg)


def fetch_data(cfg: Config) -> Path:
    if cfg.data.path:  # the user's own data: nothing to download
        return data_path(cfg)
    return data.fetch(default_path(cfg))


def build_pipeline(cfg: Config) -> Pipeline:
    # The stages import TensorFlow and Beam: `rnnpipe list`, `runs` and `config` load this package without them.
    from rnnpipe.components import ExampleGen, standard_pipeline

    examples = ExampleGen(source=str(data_path(cfg)), reader=f"{__name__}.data:read_conllu",
                          reader_config={"tag_column": cfg.data.tag_column}, **cfg.example_gen)
    return standard_pipeline(
        NAME, cfg, examples, preprocessing_fn=f"{__name__}.features:preprocessing_fn", task=f"{__name__}.model:TASK",
        evaluator={"metrics": f"{__name__}.metrics:evaluate_tagging"})


APPLICATION = Application(
    name=NAME,
    description=__doc__.strip(),
    default_data="Turkish UD treebanks (web + wiki, 4,851 sentences, UPOS) from the turkish-treebanks 1.0.0 wheel",
    config_file=Path(__file__).with_name("config.yaml"),
    build_pipeline=build_pipeline,
    fetch_data=fetch_data,
)
