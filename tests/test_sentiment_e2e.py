"""The sentiment pipeline end to end on 800 real sentences: real Beam, tf.Transform, training, MLflow,
export, a fresh-process reload, caching, gating and bad input through the CLI."""

from __future__ import annotations

import functools
import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import executions
import mlflow_store
import numpy as np
import pytest

from rnnpipe.artifacts import HyperParameters
from rnnpipe.cli import main
from rnnpipe.components.infra_validator import read_warmup

SAMPLE = Path(__file__).resolve().parent / "data" / "sentiment_sample.jsonl"
NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
# With the optional Tuner stage on (the last tests here check what it did): a learning rate of 1e-6 barely moves
# the weights in an epoch, so 0.01 is clearly the better choice. The trials decay it as the Trainer does (cosine).
TUNED = ["--set", "tuner.enabled=true", "--set", "tuner.search_space={learning_rate: [0.000001, 0.01]}",
         "--set", "tuner.algorithm=random", "--set", "tuner.objective=val_loss",
         "--set", "tuner.max_trials=2", "--set", "tuner.epochs=2", "--set", "trainer.lr_schedule=cosine"]
SMALL = ["--set", f"data.path={SAMPLE}", "--set", "trainer.epochs=2", "--set", "transform.min_frequency=1",
         "--set", "model.units=16", "--set", "model.embedding_dim=16",
         "--set", "embedding_pretrainer.corpus=null", "--set", "trainer.ensemble=1", *TUNED]
PUSH_ANYWAY = ["--set", "evaluator.must_beat_baseline=false", "--set", "evaluator.thresholds={}",
               "--set", "evaluator.must_beat_peers=false"]

RELOAD = """
import json, sys
import tensorflow as tf
import tensorflow_text  # noqa: F401
fn = tf.saved_model.load(sys.argv[1]).signatures["serving_default"]
texts = json.load(open(sys.argv[2]))
out = fn(text=tf.constant(texts))
assert not [m for m in sys.modules if m.split(".")[0] in ("rnnpipe", "keras", "tensorflow_transform", "mlflow")]
print(json.dumps({"probabilities": out["probabilities"].numpy().tolist(),
                  "label": [x.decode() for x in out["label"].numpy()]}))
"""


@pytest.fixture(scope="module")
def pushed(tmp_path_factory: pytest.TempPathFactory) -> dict:
    work = tmp_path_factory.mktemp("sentiment")
    mp = pytest.MonkeyPatch()
    mp.chdir(work)
    mlflow_store.seed(work)
    mp.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert main(["run", "sentiment", *SMALL, *PUSH_ANYWAY]) == 0
    yield {"work": work}
    mp.undo()


latest = functools.partial(executions.latest, app="sentiment")


def test_pushed_model_reloads_in_a_fresh_process_with_the_evaluators_probabilities(pushed: dict) -> None:
    work = pushed["work"]
    version_dir = work / "serving" / "sentiment" / "1"
    assert (version_dir / "saved_model.pb").exists()
    warmup = read_warmup(version_dir / "assets.extra" / "tf_serving_warmup_requests")
    assert len(warmup) == 16 and warmup[0].predict_log.request.model_spec.name == "sentiment"
    assert 'name: "sentiment"' in (work / "serving" / "models.config").read_text()
    _assert_served_like_the_evaluator(work, version_dir)


def _assert_served_like_the_evaluator(work: Path, version_dir: Path) -> None:
    """The pushed model, loaded in a process that imports only TensorFlow and TF-Text, gives the test split the
    probabilities and labels the Evaluator recorded."""
    logged = [json.loads(line) for line in (latest(work, "Evaluator") / "evaluation" / "predictions.jsonl").open()]
    texts = work / "texts.json"
    texts.write_text(json.dumps([r["text"] for r in logged]))
    proc = subprocess.run([sys.executable, "-c", RELOAD, str(version_dir), str(texts)], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    served = json.loads(proc.stdout.strip().splitlines()[-1])
    for row, probs, label in zip(logged, served["probabilities"], served["label"], strict=True):
        assert probs == pytest.approx(row["probabilities"], abs=1e-5)
        assert label == ["negative", "positive"][row["predicted"]]


def test_served_probabilities_are_the_keras_models_scaled_by_the_fitted_temperature(pushed: dict) -> None:
    import keras
    import tensorflow as tf

    from rnnpipe.artifacts import TransformGraph
    from rnnpipe.models.calibration import scale
    from rnnpipe.pipelines.sentiment.model import TASK

    work = pushed["work"]
    trainer = recorded_metrics(work, "Trainer")
    t = trainer["calibration_temperature"]
    assert 0.05 < t < 20 and t != pytest.approx(1.0, abs=1e-3)
    assert trainer["eval_nll"] <= trainer["eval_nll_uncalibrated"] + 1e-9  # the fit minimizes it on eval
    served = tf.saved_model.load(str(work / "serving" / "sentiment" / "1"))
    assert float(served.temperature.numpy()) == pytest.approx(t, rel=1e-6)
    logged = [json.loads(line) for line in (latest(work, "Evaluator") / "evaluation" / "predictions.jsonl").open()]
    raw = {"text": tf.constant([r["text"] for r in logged[:20]])}
    features = TransformGraph.load(latest(work, "Transform") / "transform_graph").transform_features_layer()(raw)
    model = keras.saving.load_model(latest(work, "Trainer") / "model_run" / "model.keras")
    uncalibrated = keras.ops.convert_to_numpy(model(TASK.model_inputs(features), training=False))
    np.testing.assert_allclose(scale(uncalibrated, t), [r["probabilities"] for r in logged[:20]], atol=1e-5)


def recorded_metrics(work: Path, component: str) -> dict:
    """The metrics the metadata store recorded for the latest execution of ``component``."""
    import sqlite3

    with sqlite3.connect(work / "pipeline_root" / "metadata.sqlite") as db:
        (metrics,) = db.execute("SELECT metrics FROM executions WHERE component = ? AND status = 'COMPLETE' "
                                "ORDER BY id DESC LIMIT 1", (component,)).fetchone()
    return json.loads(metrics)["final"]


def test_mlflow_run_has_params_epoch_metrics_test_metrics_and_artifacts(pushed: dict) -> None:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{pushed['work'] / 'mlflow.db'}")
    exp = client.get_experiment_by_name("sentiment")
    run = client.search_runs([exp.experiment_id], order_by=["attributes.start_time ASC"])[0]
    assert run.info.status == "FINISHED"
    assert run.data.params["trainer.epochs"] == "2" and run.data.params["model.cell"] == "gru"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "train/loss")] == [0, 1]
    assert 0.0 <= run.data.metrics["Evaluator/test_accuracy"] <= 1.0
    assert 0.0 <= run.data.metrics["Evaluator/test_ece"] <= 1.0  # of the calibrated probabilities
    assert "Evaluator/test_accuracy.source:movie" in run.data.metrics
    assert run.data.tags["rnnpipe.pushed_version"] == "1"
    assert len(run.data.tags["rnnpipe.data_fingerprint.ExampleGen"]) == 64
    assert "serving_model/saved_model.pb" in {f.path for f in client.list_artifacts(run.info.run_id, "serving_model")}
    artifacts = {f.path for d in ("plots", "schema", "evaluation", "statistics")
                 for f in client.list_artifacts(run.info.run_id, d)}
    assert {"plots/confusion_matrix.png", "plots/learning_curves.png", "schema/schema.pbtxt",
            "evaluation/predictions_sample.jsonl", "evaluation/model_card.md", "statistics/summary.txt",
            "statistics/statistics.html"} <= artifacts
    # The gradient-flow probe: before training and after each of the 2 epochs, both directions of the GRU.
    assert {f.path for f in client.list_artifacts(run.info.run_id, "gradient_diagnostics")} == {
        "gradient_diagnostics/epoch_001.png", "gradient_diagnostics/epoch_002.png"}
    assert run.data.tags["gradients.layers"] == "forward_gru_0,backward_gru_0"
    ratios = client.get_metric_history(run.info.run_id, "gradients/first_last_ratio/backward_gru_0")
    assert len(ratios) == 3 and all(m.value > 0 for m in ratios)
    assert run.data.metrics["Trainer/gradients_exploding_unclipped"] == 0
    # The TF-IDF peers, fit on the same train split and scored on the same test examples.
    for peer in ("tfidf_logreg", "tfidf_svm"):
        assert 0.0 <= run.data.metrics[f"Evaluator/peer/{peer}/accuracy"] <= 1.0
        assert f"Evaluator/peer/{peer}/accuracy.source:movie" in run.data.metrics


def test_second_run_is_all_cache_hits_then_predict_and_history(pushed: dict, capsys: pytest.CaptureFixture) -> None:
    capsys.readouterr()
    assert main(["run", "sentiment", *SMALL, *PUSH_ANYWAY]) == 0
    out = capsys.readouterr().out
    assert "executed:   nothing" in out
    assert "cache hits: ExampleGen, StatisticsGen, SchemaGen, ExampleValidator, Transform, Tuner, Trainer, " \
           "Evaluator, InfraValidator, Pusher" in out  # the Tuner's choice too
    assert main(["predict", "sentiment", "a wonderful, moving film", "awful"]) == 0
    out = capsys.readouterr().out
    assert "'a wonderful, moving film': label=" in out and "probabilities=" in out
    assert main(["runs", "sentiment"]) == 0
    assert capsys.readouterr().out.count("COMPLETE") == 2


def test_unblessed_model_is_not_pushed(pushed: dict, capsys: pytest.CaptureFixture) -> None:
    assert main(["run", "sentiment", *SMALL, "--set", "evaluator.thresholds={accuracy: 1.01}"]) == 3  # not blessed
    out = capsys.readouterr().out
    assert "pushed: nothing (the model was not blessed)" in out
    assert "Trainer" in out.split("cache hits:")[1].splitlines()[0]  # only the gate re-ran
    assert sorted(p.name for p in (pushed["work"] / "serving" / "sentiment").iterdir()) == ["1"]


def test_registry_alias_follows_pushes_and_rollback(pushed: dict, capsys: pytest.CaptureFixture) -> None:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{pushed['work'] / 'mlflow.db'}")
    champion = client.get_model_version_by_alias("sentiment", "champion")
    assert champion.tags["rnnpipe.serving_version"] == "1"
    # Re-running the gate and the Pusher on the same model pushes no duplicate: version 1 stays the champion.
    assert main(["run", "sentiment", *SMALL, *PUSH_ANYWAY, "--from", "Evaluator"]) == 0
    serving = pushed["work"] / "serving" / "sentiment"
    assert sorted(p.name for p in serving.iterdir() if p.name.isdigit()) == ["1"]
    assert len(client.search_model_versions("name = 'sentiment'")) == 1
    assert client.get_model_version_by_alias("sentiment", "champion").version == champion.version
    capsys.readouterr()
    assert main(["rollback", "sentiment"]) == 2  # with one version there is nothing to roll back to
    assert "nothing to roll back to (versions: [1])" in capsys.readouterr().err


@pytest.mark.parametrize("name, content, message", [
    ("reviews.csv", 'text,label\n"good",1\n"bad, really",0,oops\n', r"reviews\.csv:3: expected 2 columns"),
    ("empty.jsonl", "", r"empty\.jsonl: no records; the dataset is empty"),
    (None, None, r"data not found: .*missing\.jsonl"),
])
def test_bad_input_fails_clearly_and_leaves_nothing(workdir: Path, capsys: pytest.CaptureFixture,
                                                   name: str | None, content: str | None, message: str) -> None:
    path = workdir / (name or "missing.jsonl")
    if content is not None:
        path.write_text(content)
    assert main(["run", "sentiment", "--set", f"data.path={path}", "--set", "example_gen.split_key=[]"]) == 1
    assert re.search(message, capsys.readouterr().err)
    assert not (workdir / "serving").exists()
    step_dir = workdir / "pipeline_root" / "sentiment" / "ExampleGen"
    assert not step_dir.exists() or not list(step_dir.iterdir())


def test_unknown_config_key_fails_before_anything_runs(workdir: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["run", "sentiment", "--set", "trainer.epoch=1"]) == 2
    assert "did you mean 'trainer.epochs'" in capsys.readouterr().err
    assert not (workdir / "pipeline_root").exists()


def poisoned_sample(workdir: Path, poison, name: str = "poisoned.jsonl") -> Path:
    rows = [json.loads(line) for line in SAMPLE.read_text().splitlines()]
    path = workdir / name
    path.write_text("".join(json.dumps(poison(i, r)) + "\n" for i, r in enumerate(rows)))
    return path


@pytest.mark.parametrize("poison, report", [
    (lambda i, r: {k: v for k, v in r.items() if k != "text" or i % 10 >= 3},
     r"split '\w+', feature 'text': FEATURE_MISSING_TOO_OFTEN: present in 7\d\.\d% of examples"),
    (lambda i, r: {**r, "label": 2 if i % 50 == 0 else r["label"]},
     r"feature 'label': OUT_OF_DOMAIN: values in \[0, 2\], domain \[0, 1\]"),
])
def test_poisoned_data_stops_at_the_example_validator(workdir: Path, capsys: pytest.CaptureFixture,
                                                      poison, report: str) -> None:
    path = poisoned_sample(workdir, poison)
    assert main(["run", "sentiment", "--set", f"data.path={path}"]) == 1
    err = capsys.readouterr().err
    assert "ExampleValidator found" in err and "the run stops before Transform" in err
    assert re.search(report, err), err
    assert re.search(r"e\.g\. record \d+ of '\w+': \{", err)  # the report quotes offending records
    assert not (workdir / "serving").exists()
    assert not (workdir / "pipeline_root" / "sentiment" / "Transform").exists()


def test_drift_between_consecutive_spans_stops_the_run(workdir: Path, capsys: pytest.CaptureFixture) -> None:
    poisoned_sample(workdir, lambda i, r: r, "reviews-1.jsonl")
    poisoned_sample(workdir, lambda i, r: {**r, "label": int(i % 20 != 0)}, "reviews-2.jsonl")  # 95% positive
    assert main(["run", "sentiment", "--set", f"data.path={workdir / 'reviews-{SPAN}.jsonl'}"]) == 1
    err = capsys.readouterr().err
    assert re.search(r"split 'train', feature 'label': DRIFT: L-infinity distance 0\.4\d+ from 'previous span'", err)
    assert "SKEW" not in err  # within the latest span, train/eval/test agree
    assert not (workdir / "serving").exists()


def test_registered_model_loads_with_mlflow_pyfunc_and_answers_like_the_saved_model(pushed: dict) -> None:
    from test_mlflow_model import assert_same, pyfunc_and_saved_model

    logged = [json.loads(line) for line in (latest(pushed["work"], "Evaluator") / "evaluation" /
                                            "predictions.jsonl").open()][:6]
    out = pyfunc_and_saved_model(pushed["work"], "sentiment", {"text": [r["text"] for r in logged]})
    assert_same(out["pyfunc"], out["saved_model"])
    for row, probs in zip(logged, out["pyfunc"]["probabilities"], strict=True):
        assert probs == pytest.approx(row["probabilities"], abs=1e-5)


def test_the_tuner_picks_the_better_choice_and_the_trainer_trains_with_it(pushed: dict) -> None:
    work = pushed["work"]
    best = HyperParameters.read(latest(work, "Tuner") / "best_hyperparameters")
    assert best["trainer"] == {"learning_rate": 0.01} and best["model"] == {}
    scores = {t["values"]["learning_rate"]: t["score"] for t in best["trials"]}
    assert set(scores) == {0.000001, 0.01} and scores[0.01] < scores[0.000001]
    assert best["objective"] == {"name": "val_loss", "direction": "min", "best": scores[0.01]}
    # The Trainer's optimizer ran at the tuned rate, not the config's: its second (last) epoch's cosine from 0.01.
    with zipfile.ZipFile(latest(work, "Trainer") / "model_run" / "model.keras") as saved:
        compiled = json.loads(saved.read("config.json"))["compile_config"]
    assert compiled["optimizer"]["config"]["learning_rate"] == pytest.approx(0.01 * (0.05 + 0.95 * 0.5))


def test_each_tuner_trial_is_an_mlflow_run_nested_under_the_pipelines(pushed: dict) -> None:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{pushed['work'] / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("sentiment").experiment_id
    parent = client.search_runs([experiment], order_by=["attributes.start_time ASC"])[0]
    trials = client.search_runs([experiment], f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
    assert sorted(r.data.params["hp.learning_rate"] for r in trials) == ["0.01", "1e-06"]
    for run in trials:
        assert run.info.status == "FINISHED" and "objective/val_loss" in run.data.metrics
        assert [m.step for m in client.get_metric_history(run.info.run_id, "val/loss")] == [0, 1]
        # Each trial trained with the Trainer's schedule: cosine from its own rate to 5 % of it over 2 epochs.
        rate = float(run.data.params["hp.learning_rate"])
        rates = [m.value for m in sorted(client.get_metric_history(run.info.run_id, "train/learning_rate"),
                                         key=lambda m: m.step)]
        assert rates == pytest.approx([rate, rate * (0.05 + 0.95 * 0.5)], rel=1e-5)
    assert parent.data.tags["rnnpipe.tuned.learning_rate"] == "0.01"


# gradient_flow trains its own toy models (about 20 s): in make test-slow, to keep the fast suite under budget.
@pytest.mark.parametrize("notebook", ["compare_runs", "serve_and_query", "attention_and_errors",
                                      pytest.param("gradient_flow", marks=pytest.mark.slow)])
def test_the_notebooks_run_top_to_bottom_on_this_run(pushed: dict, notebook: str, monkeypatch) -> None:
    sys.path.insert(0, str(NOTEBOOKS))
    try:
        from run import execute
    finally:
        sys.path.remove(str(NOTEBOOKS))
    # gradient_flow's toy task: shorter and fewer sequences, the same lesson.
    monkeypatch.setenv("RNNPIPE_NOTEBOOK_T", "30")
    monkeypatch.setenv("RNNPIPE_NOTEBOOK_SAMPLES", "64")
    monkeypatch.setenv("RNNPIPE_NOTEBOOK_EPOCHS", "1")
    executed = execute(NOTEBOOKS / f"{notebook}.ipynb", pushed["work"], pushed["work"] / "notebooks")
    cells = json.loads(executed.read_text())["cells"]
    outputs = [o for c in cells if c["cell_type"] == "code" for o in c["outputs"]]
    assert not [o for o in outputs if o["output_type"] == "error"] and len(outputs) >= 3


# Last in this module: they add Trainer executions that the tests above would take for the fixture's.
def _trainer_metrics(work: Path) -> list[dict[str, float]]:
    """Trainer/* metrics of the pipeline runs (not the Tuner's trials) that executed a Trainer, oldest first."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{work / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("sentiment").experiment_id
    runs = client.search_runs([experiment], "tags.`rnnpipe.executed` LIKE '%Trainer%'",
                              order_by=["attributes.start_time ASC"])
    return [{**r.data.metrics, "run_id": r.info.run_id} for r in runs]


@pytest.mark.slow  # 20-30 s of two fresh TensorFlow processes: over the fast suite's budget
def test_two_localhost_workers_train_like_one_at_the_same_global_batch(pushed: dict,
                                                                        capfd: pytest.CaptureFixture) -> None:
    work = pushed["work"]
    before = {p.name for p in (work / "pipeline_root" / "sentiment" / "Trainer").glob("[0-9]*")}
    # The probes and the calibration do not change the weights: off, they save each worker their tracing.
    cheaper = ["--set", "trainer.gradient_diagnostics=false", "--set", "trainer.calibration=none"]
    # A time budget that never binds: the workers still agree on each epoch's duration and stop decision.
    budget = ["--set", "trainer.max_minutes=30"]
    assert main(["run", "sentiment", *SMALL, *cheaper, *budget, "--workers", "2", "--only", "Trainer"]) == 0
    assert "CollectiveAllReduceStrategy with 2 replica(s)" in capfd.readouterr().err
    one, two = _trainer_metrics(work)[0], _trainer_metrics(work)[-1]
    # The same global batch: as many optimizer steps, each on a batch split between the two workers.
    assert two["Trainer/steps"] == one["Trainer/steps"] > 0
    new, first = latest(work, "Trainer"), min(before, key=int)
    losses = [json.loads((work / "pipeline_root" / "sentiment" / "Trainer" / execution / "model_run" /
                          "history.json").read_text())["val_loss"] for execution in (first, new.name)]
    assert losses[1] == pytest.approx(losses[0], abs=0.05)  # per epoch, on 83 eval sentences
    # Only the chief's outputs are the execution's; the workers' copies went with the scratch folder.
    assert new.name not in before and (new / "model" / "saved_model.pb").is_file()
    assert not list((work / "pipeline_root" / "sentiment" / ".scratch").rglob("worker-1"))
    from mlflow.tracking import MlflowClient

    history = MlflowClient(f"sqlite:///{work / 'mlflow.db'}").get_metric_history(two["run_id"], "val/loss")
    assert [m.step for m in history] == [0, 1]  # the chief's per-epoch metrics, replayed into the run


@pytest.mark.slow
def test_a_worker_killed_mid_epoch_fails_the_trainer_and_the_rerun_resumes(pushed: dict, monkeypatch,
                                                                          capsys: pytest.CaptureFixture) -> None:
    work = pushed["work"]
    before = {p.name for p in (work / "pipeline_root" / "sentiment" / "Trainer").glob("[0-9]*")}
    monkeypatch.setenv("RNNPIPE_FAULT", "Trainer.worker1.batch#16")  # in the second epoch (12 batches each)
    assert main(["run", "sentiment", *SMALL, "--workers", "2", "--only", "Trainer"]) == 1
    err = capsys.readouterr().err
    assert "worker 1 of 2 was killed by SIGKILL" in err and "nothing was exported" in err
    assert {p.name for p in (work / "pipeline_root" / "sentiment" / "Trainer").glob("[0-9]*")} == before
    monkeypatch.delenv("RNNPIPE_FAULT")
    assert main(["run", "sentiment", *SMALL, "--workers", "2", "--only", "Trainer"]) == 0
    # Both workers restored the chief's backup of epoch 1 and trained epoch 2 only.
    assert len(next(iter(json.loads((latest(work, "Trainer") / "model_run" / "history.json").read_text())
                         .values()))) == 1
    assert _trainer_metrics(work)[-1]["Trainer/epochs"] == 2


@pytest.mark.slow  # another whole pipeline run: over the fast suite's budget
def test_three_classes_train_evaluate_and_serve_neutral(workdir: Path) -> None:
    """The 800 sentences relabelled as the default three-class data is (|score| <= 0.5: neutral), end to end: the
    Evaluator reports each class's F1 beside the peers', and the served model answers with the three names."""
    records = [json.loads(line) for line in SAMPLE.open()]
    for r in records:
        r["label"] = 1 if abs(r["score"]) <= 0.5 else (2 if r["score"] > 0 else 0)
    three = workdir / "three.jsonl"
    three.write_text("".join(json.dumps(r) + "\n" for r in records))
    assert main(["run", "sentiment", *SMALL, *PUSH_ANYWAY, "--set", f"data.path={three}",
                 "--set", "data.classes=3"]) == 0
    evaluation = json.loads((latest(workdir, "Evaluator") / "evaluation" / "evaluation.json").read_text())
    for scorer in ("model", "baseline", "peer/tfidf_logreg"):
        assert {"f1_class_0", "f1_class_1", "f1_class_2", "macro_f1"} <= set(evaluation["overall"][scorer])
    assert evaluation["overall"]["model"]["accuracy"] > evaluation["overall"]["baseline"]["accuracy"]
    proc = subprocess.run([sys.executable, "-m", "rnnpipe.cli", "predict", "sentiment", "--set", "data.classes=3",
                           "an average, unremarkable film", "a wonderful film", "a dreadful film"],
                          capture_output=True, text=True, cwd=workdir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    labels = re.findall(r"label=(\w+)", proc.stdout)
    assert len(labels) == 3 and set(labels) <= {"negative", "neutral", "positive"}
    probabilities = [p.split() for p in re.findall(r"probabilities=\[([^\]]*)\]", proc.stdout)]
    assert [len(p) for p in probabilities] == [3, 3, 3]


@pytest.mark.slow  # another whole pipeline run: over the fast suite's budget
def test_the_character_channel_trains_pretrains_ensembles_and_serves_raw_text(workdir: Path) -> None:
    """transform.max_chars on: the examples carry each token's characters, the word2vec stage still finds the
    token ids among the model's two inputs, two members average, and the pushed model reads raw text."""
    corpus = workdir / "corpus.txt"
    corpus.write_text("".join(json.loads(line)["text"] + "\n" for line in SAMPLE.open()))
    assert main(["run", "sentiment", *SMALL, *PUSH_ANYWAY, "--set", "transform.max_chars=8",
                 "--set", f"embedding_pretrainer.corpus={corpus}", "--set", "trainer.ensemble=2"]) == 0
    schema = latest(workdir, "Transform") / "transform_graph" / "transformed_metadata" / "schema.pbtxt"
    assert 'name: "char_ids$ragged_values"' in schema.read_text()
    metrics = _trainer_metrics(workdir)[-1]
    assert metrics["Trainer/pretrained_embedding_rows"] > 0 and metrics["Trainer/ensemble_members"] == 2
    _assert_served_like_the_evaluator(workdir, workdir / "serving" / "sentiment" / "1")
