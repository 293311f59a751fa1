"""Part-of-speech tagging: CoNLL-U sentences -> a tag per token, on the Turkish UD treebanks by default."""

from __future__ import annotations

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
    examples = ExampleGen(source=str(data_path(cfg)), reader=f"{__name__}.data:read_conllu",
                          reader_config={"tag_column": cfg.data.tag_column}, **cfg.example_gen)
    stats = StatisticsGen(examples=examples)
    schema = SchemaGen(statistics=stats, **cfg.schema_gen)
    anomalies = ExampleValidator(statistics=stats, schema=schema, examples=examples, **cfg.example_validator)
    transform = Transform(examples=examples, schema=schema, preprocessing_fn=f"{__name__}.features:preprocessing_fn",
                          config=cfg.transform.to_dict())
    trainer = Trainer(transformed_examples=transform["transformed_examples"],
                      transform_graph=transform["transform_graph"], task=f"{__name__}.model:TASK",
                      hparams=cfg.model.to_dict(), **cfg.trainer)
    gate = cfg.evaluator.to_dict()
    metrics_config = {key: gate.pop(key) for key in ("slice_keys", "length_edges")}
    evaluator = Evaluator(model=trainer["model"], examples=examples, metrics=f"{__name__}.metrics:evaluate_tagging",
                          metrics_config=metrics_config, champion_dir=str(Path(cfg.serving_dir).resolve() / NAME),
                          **gate)
    infra = InfraValidator(model=trainer["model"], examples=examples, model_name=NAME, **cfg.infra_validator)
    pusher = Pusher(model=trainer["model"], blessing=evaluator["blessing"], infra_blessing=infra, model_name=NAME,
                    **cfg.pusher)
    return Pipeline(NAME, [examples, stats, schema, anomalies, transform, trainer, evaluator, infra, pusher])


APPLICATION = Application(
    name=NAME,
    description=__doc__.strip(),
    default_data="Turkish UD treebanks (web + wiki, 4,851 sentences, UPOS) from the turkish-treebanks 1.0.0 wheel",
    config_file=Path(__file__).with_name("config.yaml"),
    build_pipeline=build_pipeline,
    fetch_data=fetch_data,
)
