"""standard_pipeline: the stages after an application's ExampleGen, set by the config and the app's parts."""

from __future__ import annotations

from pathlib import Path

import pytest

from rnnpipe.app import load_application
from rnnpipe.components import ExampleGen, standard_pipeline
from rnnpipe.components.example_validator import read_features
from rnnpipe.config import load_config
from rnnpipe.errors import ConfigError
from rnnpipe.pipelines.sentiment import APPLICATION

STAGES = ["ExampleGen", "StatisticsGen", "SchemaGen", "ExampleValidator", "Transform", "EmbeddingPretrainer",
          "Trainer", "Evaluator", "InfraValidator", "Pusher"]


def build(tmp_path: Path, *sets: str, **parts):
    cfg = load_config(APPLICATION.config_file, sets=[f"serving_dir={tmp_path / 'serving'}", *sets])
    examples = ExampleGen(source=str(tmp_path / "data.jsonl"), **cfg.example_gen)
    return cfg, standard_pipeline("demo", cfg, examples, preprocessing_fn="demo.features:preprocessing_fn",
                                  task="rnnpipe.pipelines.sentiment.model:TASK", **parts)


def test_the_stages_take_their_config_sections_and_push_under_the_name(tmp_path: Path) -> None:
    cfg, pipeline = build(tmp_path, "schema_gen.curated_schema=null")
    assert pipeline.name == "demo" and [s.id for s in pipeline.steps] == STAGES
    step = pipeline.step
    assert step("SchemaGen").params["curated_schema"] is None
    assert step("Transform").params["config"] == cfg.transform.to_dict()
    assert step("Trainer").params["hparams"] == cfg.model.to_dict()
    assert step("Trainer").params["epochs"] == cfg.trainer.epochs
    # The vectors are the model's embedding width, trained on the configured corpus; the Trainer reads them.
    pretrainer = step("EmbeddingPretrainer")
    assert (pretrainer.params["corpus"], pretrainer.params["dim"]) == ("wordnet", cfg.model.embedding_dim)
    assert step("Trainer").inputs["embeddings"].node is pretrainer
    assert step("Evaluator").params["champion_dir"] == str((tmp_path / "serving" / "demo").resolve())
    assert step("Evaluator").params["thresholds"] == cfg.evaluator.thresholds
    # evaluator.metrics is what the metrics function reads: its metrics_config, as configured.
    assert step("Evaluator").params["metrics_config"] == cfg.evaluator.metrics.to_dict()
    assert step("InfraValidator").params["model_name"] == step("Pusher").params["model_name"] == "demo"
    assert step("Pusher").inputs["blessing"].node is step("Evaluator")
    assert step("Pusher").params["serving_dir"] == str((tmp_path / "serving").resolve())
    # Skew blocks on what the model reads (the task's raw serving features and its label), warns elsewhere.
    # The task is resolved when the validator runs (importing it imports Keras), not when the pipeline is built.
    validator = step("ExampleValidator")
    assert validator.params["task"] == step("Trainer").params["task"] and validator.params["model_features"] is None
    assert read_features(validator.params) == {"text", "label"}


def test_pretrained_embeddings_need_a_model_with_an_embedding_dim_and_follow_the_corpus_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="the model section has no embedding_dim"):
        build(tmp_path, hparams={"units": 8})
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("one sentence\n")
    first = build(tmp_path, f"embedding_pretrainer.corpus={corpus}")[1].step("EmbeddingPretrainer").params
    corpus.write_text("another sentence\n")
    second = build(tmp_path, f"embedding_pretrainer.corpus={corpus}")[1].step("EmbeddingPretrainer").params
    assert first["corpus_sha256"] and first["corpus_sha256"] != second["corpus_sha256"]  # the key follows content
    assert "EmbeddingPretrainer" not in [s.id for s in build(tmp_path, "embedding_pretrainer.corpus=null")[1].steps]
    # A tuning trial starts from the vectors as the Trainer does.
    tuned = build(tmp_path, "tuner.enabled=true")[1]
    assert tuned.step("Tuner").inputs["embeddings"].node is tuned.step("EmbeddingPretrainer")


def test_the_application_parts_replace_or_extend_the_sections(tmp_path: Path) -> None:
    schema = tmp_path / "schema.pbtxt"
    cfg, pipeline = build(tmp_path, "schema_gen.curated_schema=builtin", "trainer.bucket_boundaries=[]",
                          "embedding_pretrainer.corpus=null", builtin_schema=schema, hparams={"units": 8},
                          transform_config={"max_tokens": 5}, trainer={"bucket_boundaries": []},
                          evaluator={"signature": "score", "champion_dir": None, "metrics_config": {"label_key": "y"}})
    step = pipeline.step
    assert step("SchemaGen").params["curated_schema"] == str(schema)
    assert step("Transform").params["config"] == {"max_tokens": 5}
    assert step("Trainer").params["hparams"] == {"units": 8} and step("Trainer").params["bucket_boundaries"] == []
    evaluator = step("Evaluator").params
    assert (evaluator["signature"], evaluator["champion_dir"]) == ("score", None)
    # The application's fixed parameters join the section: the configured ones stay.
    assert evaluator["thresholds"] == cfg.evaluator.thresholds and evaluator["primary_metric"] == "accuracy"
    assert evaluator["metrics_config"] == {**cfg.evaluator.metrics, "label_key": "y"}


@pytest.mark.parametrize(("sets", "parts", "key"), [
    ((), {"trainer": {"bucket_boundaries": []}}, "trainer.bucket_boundaries"),
    (("evaluator.metrics={slice_keys: [source]}",), {"evaluator": {"metrics_config": {"slice_keys": []}}},
     "evaluator.metrics.slice_keys"),
])
def test_a_configured_value_the_application_also_sets_is_an_error_not_replaced(
        tmp_path: Path, sets: tuple[str, ...], parts: dict, key: str) -> None:
    with pytest.raises(ConfigError, match=rf"config key '{key}' is .*but the application sets it to"):
        build(tmp_path, *sets, **parts)


@pytest.mark.parametrize(("app", "sets", "primary", "higher", "settings"), [
    ("sentiment", ("data.path=mine.jsonl",), "accuracy", True, {"slice_keys", "length_edges", "label_key",
                                                                "class_names"}),
    ("tagging", ("data.path=mine.conllu",), "accuracy", True, {"slice_keys", "length_edges"}),
    ("textgen", ("data.path=mine", "trainer.bucket_boundaries=[400]"), "bpc", False, {"baseline", "sample_length"}),
    ("forecasting", ("data.series=co2", "model.decoding=autoregressive"), "mase", False,
     {"ets", "horizon_slices", "history", "season"}),
])
def test_each_application_takes_its_metric_settings_from_evaluator_metrics(
        tmp_path: Path, app: str, sets: tuple[str, ...], primary: str, higher: bool, settings: set[str]) -> None:
    application = load_application(app)
    cfg = load_config(application.config_file, sets=[f"serving_dir={tmp_path}", *sets])
    params = {s.id: s.params for s in application.build_pipeline(cfg).steps}
    evaluator = params["Evaluator"]
    assert (evaluator["primary_metric"], evaluator["higher_is_better"]) == (primary, higher)
    assert settings <= set(evaluator["metrics_config"])
    assert {k: evaluator["metrics_config"][k] for k in cfg.evaluator.metrics} == cfg.evaluator.metrics.to_dict()
    assert params["Trainer"]["bucket_boundaries"] == cfg.trainer.bucket_boundaries  # honoured, never replaced
    if app == "forecasting":
        assert params["Trainer"]["hparams"]["decoding"] == "autoregressive"


def test_pusher_model_name_names_the_served_model_the_champion_and_the_warmup_requests(tmp_path: Path) -> None:
    _, pipeline = build(tmp_path, "pusher.model_name=reviews_v2")
    step = pipeline.step
    assert step("Pusher").params["model_name"] == step("InfraValidator").params["model_name"] == "reviews_v2"
    assert step("Evaluator").params["champion_dir"] == str((tmp_path / "serving" / "reviews_v2").resolve())
    assert pipeline.name == "demo"  # the pipeline (its artifacts, runs and MLflow experiment) keeps its name


def test_applications_load_without_tensorflow_and_build_their_pipelines_in_a_fresh_process() -> None:
    import subprocess
    import sys

    script = """
import sys
from rnnpipe.app import applications, load_application
from rnnpipe.config import load_config
apps = {name: load_application(name) for name in applications()}
heavy = [m for m in ("tensorflow", "apache_beam", "mlflow", "keras") if m in sys.modules]
assert not heavy, heavy  # rnnpipe list, runs and config stay fast
app = apps["sentiment"]
print([s.id for s in app.build_pipeline(load_config(app.config_file)).steps])
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == str(STAGES)
