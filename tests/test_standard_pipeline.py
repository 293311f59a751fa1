"""standard_pipeline: the stages after an application's ExampleGen, set by the config and the app's parts."""

from __future__ import annotations

from pathlib import Path

from rnnpipe.components import ExampleGen, standard_pipeline
from rnnpipe.config import load_config
from rnnpipe.pipelines.sentiment import APPLICATION

STAGES = ["ExampleGen", "StatisticsGen", "SchemaGen", "ExampleValidator", "Transform", "Trainer", "Evaluator",
          "InfraValidator", "Pusher"]


def build(tmp_path: Path, *sets: str, **parts):
    cfg = load_config(APPLICATION.config_file, sets=[f"serving_dir={tmp_path / 'serving'}", *sets])
    examples = ExampleGen(source=str(tmp_path / "data.jsonl"), **cfg.example_gen)
    gate = cfg.evaluator.to_dict()
    slicing = {key: gate.pop(key) for key in ("slice_keys", "length_feature", "length_edges")}
    parts.setdefault("evaluator", {**gate, "metrics_config": slicing})
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
    assert step("Evaluator").params["champion_dir"] == str((tmp_path / "serving" / "demo").resolve())
    assert step("Evaluator").params["thresholds"] == cfg.evaluator.thresholds
    assert step("Evaluator").params["metrics_config"]["slice_keys"] == cfg.evaluator.slice_keys
    assert step("InfraValidator").params["model_name"] == step("Pusher").params["model_name"] == "demo"
    assert step("Pusher").inputs["blessing"].node is step("Evaluator")
    assert step("Pusher").params["serving_dir"] == str((tmp_path / "serving").resolve())
    # Skew blocks on what the model reads (the task's raw serving features and its label), warns elsewhere.
    assert step("ExampleValidator").params["model_features"] == ["text", "label"]


def test_the_application_parts_replace_or_extend_the_sections(tmp_path: Path) -> None:
    schema = tmp_path / "schema.pbtxt"
    _, pipeline = build(tmp_path, "schema_gen.curated_schema=builtin", builtin_schema=schema,
                        hparams={"units": 8}, transform_config={"max_tokens": 5}, trainer={"bucket_boundaries": []},
                        evaluator={"primary_metric": "bpc", "higher_is_better": False, "champion_dir": None})
    step = pipeline.step
    assert step("SchemaGen").params["curated_schema"] == str(schema)
    assert step("Transform").params["config"] == {"max_tokens": 5}
    assert step("Trainer").params["hparams"] == {"units": 8} and step("Trainer").params["bucket_boundaries"] == []
    evaluator = step("Evaluator").params
    assert (evaluator["primary_metric"], evaluator["higher_is_better"], evaluator["champion_dir"]) == \
        ("bpc", False, None)
    assert evaluator["thresholds"] == {}  # the evaluator parameters replace the section whole
