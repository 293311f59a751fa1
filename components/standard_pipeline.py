"""The stages every application runs after its ExampleGen, wired once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rnnpipe.config import Config
from rnnpipe.dsl import Pipeline, Ref

from .evaluator import Evaluator
from .example_gen import ExampleGen
from .example_validator import ExampleValidator
from .infra_validator import InfraValidator
from .pusher import Pusher
from .schema_gen import SchemaGen
from .statistics_gen import StatisticsGen
from .trainer import Trainer
from .transform import Transform


def standard_pipeline(name: str, cfg: Config, examples: ExampleGen, *, preprocessing_fn: str, task: str,
                      hparams: dict[str, Any] | None = None, evaluator: dict[str, Any] | None = None,
                      transform_config: dict[str, Any] | None = None, builtin_schema: Path | None = None,
                      trainer: dict[str, Any] | None = None) -> Pipeline:
    """``examples`` -> StatisticsGen -> SchemaGen -> ExampleValidator -> Transform -> Trainer -> Evaluator
    -> InfraValidator -> Pusher to ``<serving_dir>/<name>/``, each stage set by its section of ``cfg``.

    The application brings what differs: ``preprocessing_fn`` and ``task`` ('module:name' references);
    ``hparams`` (default: the model section); the ``evaluator``'s parameters (default: the evaluator
    section; typically it with its metrics keys moved into ``metrics_config``, plus ``metrics``,
    ``signature``, ``primary_metric``, ``higher_is_better``; ``champion_dir`` defaults to the served
    model); ``transform_config`` (default: the transform section); ``builtin_schema``, the curated schema
    that ``schema_gen.curated_schema: builtin`` names; and ``trainer`` parameters beside its section.
    """
    stats = StatisticsGen(examples=examples)
    schema_cfg = cfg.schema_gen.to_dict()
    if builtin_schema is not None and schema_cfg.get("curated_schema") == "builtin":
        schema_cfg["curated_schema"] = str(builtin_schema)
    schema = SchemaGen(statistics=stats, **schema_cfg)
    reads = Ref.of(task).resolve()  # what the model reads: skew there blocks, elsewhere it warns
    anomalies = ExampleValidator(statistics=stats, schema=schema, examples=examples,
                                 model_features=[*reads.serving_features, reads.label_key], **cfg.example_validator)
    transform = Transform(examples=examples, schema=schema, preprocessing_fn=preprocessing_fn,
                          config=cfg.transform.to_dict() if transform_config is None else transform_config)
    model = Trainer(transformed_examples=transform["transformed_examples"],
                    transform_graph=transform["transform_graph"], task=task,
                    hparams=cfg.model.to_dict() if hparams is None else hparams, **{**cfg.trainer, **(trainer or {})})
    gate = Evaluator(model=model["model"], examples=examples,
                     **{"champion_dir": str(Path(cfg.serving_dir).resolve() / name),
                        **(cfg.evaluator.to_dict() if evaluator is None else evaluator)})
    infra = InfraValidator(model=model["model"], examples=examples, model_name=name, **cfg.infra_validator)
    pusher = Pusher(model=model["model"], blessing=gate["blessing"], infra_blessing=infra, model_name=name,
                    serving_dir=str(Path(cfg.serving_dir).resolve()), **cfg.pusher)
    return Pipeline(name, [examples, stats, schema, anomalies, transform, model, gate, infra, pusher])
