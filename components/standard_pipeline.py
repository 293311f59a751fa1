"""The stages every application runs after its ExampleGen, wired once."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from rnnpipe import corpora, storage
from rnnpipe.config import Config
from rnnpipe.dsl import Pipeline
from rnnpipe.errors import ConfigError

from .distribute import resolve_strategy
from .embedding_pretrainer import EmbeddingPretrainer
from .evaluator import Evaluator
from .example_gen import ExampleGen
from .example_validator import ExampleValidator
from .infra_validator import InfraValidator
from .pusher import Pusher
from .schema_gen import SchemaGen
from .statistics_gen import StatisticsGen
from .trainer import Trainer
from .transform import Transform
from .tuner import Tuner, check_search_space

METRICS_KEY = "metrics"  # evaluator.metrics: the metrics function's settings, the Evaluator's metrics_config


def stage_params(section: str, configured: Mapping[str, Any], fixed: Mapping[str, Any] | None = None,
                 defaults: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A stage's parameters: ``defaults``, then the config ``section``'s keys, then what the application or the
    wiring ``fixed``. A key both configured and fixed must agree (mappings are compared key by key): the
    user's value is never replaced silently."""
    params = {**(defaults or {}), **configured}
    for key, value in (fixed or {}).items():
        if key not in configured:
            params[key] = value
        elif isinstance(value, Mapping) and isinstance(configured[key], Mapping):
            params[key] = stage_params(f"{section}.{key}", configured[key], value)
        elif configured[key] != value:
            raise ConfigError(f"config key '{section}.{key}' is {configured[key]!r}, but the application sets it to "
                              f"{value!r}; remove it from your --config file or --set")
    return params


def evaluator_params(configured: Mapping[str, Any], fixed: Mapping[str, Any] | None,
                     champion_dir: str) -> dict[str, Any]:
    """The Evaluator's parameters: the evaluator section, whose ``metrics`` mapping is the metrics function's
    ``metrics_config``, and the application's fixed arguments (its ``metrics`` function, ``signature``, the
    ``metrics_config`` keys it derives from other sections)."""
    section, fixed = dict(configured), dict(fixed or {})
    settings = stage_params(f"evaluator.{METRICS_KEY}", section.pop(METRICS_KEY, {}), fixed.pop("metrics_config", {}))
    return {**stage_params("evaluator", section, fixed, defaults={"champion_dir": champion_dir}),
            "metrics_config": settings}


def served_model_name(name: str, cfg: Config) -> str:
    """The name a pipeline pushes under: ``pusher.model_name``, or the application's name."""
    return cfg.get("pusher", {}).get("model_name") or name


def standard_pipeline(name: str, cfg: Config, examples: ExampleGen, *, preprocessing_fn: str, task: str,
                      hparams: dict[str, Any] | None = None, evaluator: dict[str, Any] | None = None,
                      transform_config: dict[str, Any] | None = None, builtin_schema: Path | None = None,
                      trainer: dict[str, Any] | None = None, checks: list[Callable[[], None]] | None = None
                      ) -> Pipeline:
    """``examples`` -> StatisticsGen -> SchemaGen -> ExampleValidator -> Transform -> (EmbeddingPretrainer, with
    ``embedding_pretrainer.corpus``) -> (Tuner, with ``tuner.enabled``) -> Trainer -> Evaluator -> InfraValidator ->
    Pusher to ``<serving_dir>/<name>/``, each stage set by its section of ``cfg``.

    The application brings what differs: ``preprocessing_fn`` and ``task`` ('module:name' references);
    ``hparams`` (default: the model section) and ``transform_config`` (default: the transform section), which
    replace those sections; ``builtin_schema``, the curated schema that ``schema_gen.curated_schema: builtin``
    names; and, beside the trainer and evaluator sections, the parameters it fixes: ``trainer``, and
    ``evaluator`` (its ``metrics`` function, ``signature``, ``metrics_config`` keys derived from other sections;
    ``champion_dir`` defaults to the served model). The evaluator section's ``metrics`` mapping is the
    ``metrics_config``; a configured key the application also fixes must agree with it (else ConfigError).
    ``checks`` go to the Pipeline: they run before the first step executes.
    """
    resolve_strategy(cfg.distribution.strategy, cfg.distribution.workers)  # a bad pair fails before any step
    stats = StatisticsGen(examples=examples)
    schema_cfg = cfg.schema_gen.to_dict()
    if builtin_schema is not None and schema_cfg.get("curated_schema") == "builtin":
        schema_cfg["curated_schema"] = str(builtin_schema)
    schema = SchemaGen(statistics=stats, **schema_cfg)
    # What the task's model reads: skew there blocks, elsewhere it warns.
    anomalies = ExampleValidator(statistics=stats, schema=schema, examples=examples, **stage_params(
        "example_validator", cfg.example_validator.to_dict(), {"task": task}))
    transform = Transform(examples=examples, schema=schema, preprocessing_fn=preprocessing_fn,
                          config=cfg.transform.to_dict() if transform_config is None else transform_config)
    serving_dir = storage.resolve(cfg.serving_dir)  # a path or a URI (s3://, gs://): rnnpipe/storage.py
    served = served_model_name(name, cfg)  # one TF Serving model and MLflow registered model per name
    hparams = cfg.model.to_dict() if hparams is None else hparams
    pretrainer = embedding_step(cfg, transform, task, hparams)
    tuner = tuner_step(cfg, transform, task, hparams, trainer, pretrainer)
    model = Trainer(transformed_examples=transform["transformed_examples"],
                    transform_graph=transform["transform_graph"], task=task, hparams=hparams,
                    best_hyperparameters=tuner["best_hyperparameters"] if tuner else None,
                    embeddings=pretrainer["embeddings"] if pretrainer else None,
                    **stage_params("trainer", cfg.trainer.to_dict(), trainer,
                                   defaults={"warm_start_dir": storage.join(serving_dir, served)}))
    pusher_cfg = cfg.pusher.to_dict()
    pusher_cfg.pop("model_name", None)
    gate = Evaluator(model=model["model"], examples=examples,
                     **evaluator_params(cfg.evaluator.to_dict(), {"task": task, **(evaluator or {})},
                                        storage.join(serving_dir, served)))
    infra_cfg = cfg.infra_validator.to_dict()
    infra = InfraValidator(model=model["model"], examples=examples,
                           **stage_params("infra_validator", infra_cfg, {"model_name": served, "task": task}))
    # The registered MLflow model answers requests like the validated one: the same request defaults.
    pusher = Pusher(model=model["model"], blessing=gate["blessing"], infra_blessing=infra, **stage_params(
        "pusher", pusher_cfg, {"model_name": served, "serving_dir": serving_dir},
        defaults={"request_defaults": infra_cfg.get("request_defaults", {})}))
    steps = [examples, stats, schema, anomalies, transform, *([pretrainer] if pretrainer else []),
             *([tuner] if tuner else []), model, gate, infra, pusher]
    return Pipeline(name, steps, checks)


# What a tuning trial trains with, from the trainer section (the search space may replace some of them).
TUNER_TRAINER_KEYS = ("batch_size", "learning_rate", "lr_schedule", "ema_momentum", "label_smoothing", "optimizer",
                      "weight_decay", "weight_decay_exclude", "global_clipnorm", "clipnorm", "clipvalue",
                      "bucket_boundaries", "shuffle_buffer", "steps_per_epoch", "seed")


def tuner_step(cfg: Config, transform: Transform, task: str, hparams: dict[str, Any],
               trainer: dict[str, Any] | None, pretrainer: EmbeddingPretrainer | None = None) -> Tuner | None:
    """The Tuner between Transform and Trainer when ``tuner.enabled``; its trials train as the trainer section
    (and what the application fixes there) says, from the pre-trained vectors as the Trainer does."""
    section = cfg.get("tuner", {})
    if not section or not section.get("enabled"):
        return None
    trained = {**cfg.trainer.to_dict(), **(trainer or {})}
    tuner_cfg = {k: v for k, v in section.items() if k != "enabled"}
    check_search_space(tuner_cfg.get("search_space") or {}, hparams,  # before any step runs
                       tuner_cfg.get("objective", "val_loss"))
    return Tuner(transformed_examples=transform["transformed_examples"], transform_graph=transform["transform_graph"],
                 embeddings=pretrainer["embeddings"] if pretrainer else None,
                 **stage_params("tuner", tuner_cfg, {"task": task, "hparams": hparams},
                                defaults={k: trained[k] for k in TUNER_TRAINER_KEYS if k in trained}))


def embedding_step(cfg: Config, transform: Transform, task: str, hparams: dict[str, Any]
                   ) -> EmbeddingPretrainer | None:
    """The EmbeddingPretrainer between Transform and Trainer when ``embedding_pretrainer.corpus`` names a corpus;
    its vectors have the size of the model's ``embedding_dim``."""
    section = dict(cfg.get("embedding_pretrainer", {}))
    if not section.get("corpus"):
        return None
    if "embedding_dim" not in hparams:
        raise ConfigError("embedding_pretrainer.corpus is set, but the model section has no embedding_dim to size "
                          "the vectors; set embedding_pretrainer.corpus: null")
    return EmbeddingPretrainer(transform_graph=transform["transform_graph"],
                               transformed_examples=transform["transformed_examples"], **stage_params(
                                   "embedding_pretrainer", section, {
                                       "task": task, "dim": hparams["embedding_dim"],
                                       "cache_dir": cfg.get("data", {}).get("cache_dir"),
                                       "corpus_sha256": corpora.corpus_fingerprint(str(section["corpus"]))}))
