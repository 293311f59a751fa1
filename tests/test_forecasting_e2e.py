"""The forecasting pipeline end to end on 15 years of weekly Mauna Loa CO2 (53 missing weeks, interpolated):
real Beam, tf.Transform, training, ETS beside seasonal-naive, MLflow, export, a fresh-process reload of
the pushed model answering raw histories in original units; a NaN with `missing: reject` stops the run."""

from __future__ import annotations

import functools
import json
import re
import subprocess
import sys
from pathlib import Path

import executions
import mlflow_store
import numpy as np
import pytest

from rnnpipe.cli import main
from rnnpipe.components.example_io import example_to_dict, read_examples

SAMPLE = Path(__file__).resolve().parent / "data" / "forecasting_co2_sample.csv"
SMALL = ["--set", f"data.path={SAMPLE}", "--set", "data.history=104", "--set", "data.horizon=26",
         "--set", "data.season=52", "--set", "trainer.epochs=4", "--set", "model.units=8",
         "--set", "model.skip=holt_winters",  # windows (the ETS hybrid of one series: test_forecasting_ets.py)
         "--set", "trainer.gradient_diagnostics=false"]  # tested in the sentiment e2e: saves 5-30 s

RELOAD = """
import json, sys
import tensorflow as tf
fn = tf.saved_model.load(sys.argv[1]).signatures["serving_default"]
histories = json.load(open(sys.argv[2]))
out = fn(history=tf.constant(histories, tf.float32))
assert not [m for m in sys.modules if m.split(".")[0] in ("rnnpipe", "keras", "tensorflow_transform", "mlflow")]
print(json.dumps({"forecast": out["forecast"].numpy().tolist()}))
"""


@pytest.fixture(scope="module")
def pushed(tmp_path_factory: pytest.TempPathFactory) -> dict:
    work = tmp_path_factory.mktemp("forecasting")
    mp = pytest.MonkeyPatch()
    mp.chdir(work)
    mlflow_store.seed(work)
    mp.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert main(["run", "forecasting", *SMALL]) == 0  # blessed only if it beats seasonal-naive
    yield {"work": work}
    mp.undo()


latest = functools.partial(executions.latest, app="forecasting")


def test_the_model_beats_seasonal_naive_and_is_scored_beside_ets(pushed: dict) -> None:
    evaluation = json.loads((latest(pushed["work"], "Evaluator") / "evaluation" / "evaluation.json").read_text())
    overall = evaluation["overall"]
    assert set(overall) == {"model", "baseline", "peer/ets", "peer/theta"}
    assert overall["model"]["count"] == 131  # every test origin: 156 test weeks - 26 + 1
    assert overall["model"]["mase"] < overall["baseline"]["mase"]
    assert all(0 < overall[p]["mase"] < 3 and 0 < overall[p]["smape"] < 5 for p in overall)
    assert evaluation["ets"]["value"]["model"].startswith("ETS(A,")
    assert evaluation["baseline"].startswith("seasonal naive (m=52")
    assert sorted(evaluation["slices"]) == ["steps:1-9", "steps:10-17", "steps:18-26"]
    # The test range starts after the training range ends (chronological split).
    assert evaluation["windows"]["train_range_end"] < evaluation["windows"]["first_origin"]


def test_pushed_model_reloads_in_a_fresh_process_and_answers_in_original_units(pushed: dict) -> None:
    work = pushed["work"]
    version_dir = work / "serving" / "forecasting" / "1"
    assert (version_dir / "saved_model.pb").exists()
    assert (version_dir / "assets.extra" / "tf_serving_warmup_requests").exists()
    logged = {r["origin"]: r for r in map(json.loads, (latest(work, "Evaluator") / "evaluation" /
                                                       "predictions.jsonl").open())}
    test = sorted((example_to_dict(e) for e in read_examples(latest(work, "ExampleGen") / "examples", "test")),
                  key=lambda r: r["origin"])[:20]
    histories = [r["history"] for r in test]
    # The model centres each window on its last value: a history 100 ppm higher gets a forecast 100 ppm higher.
    histories += [[v + 100.0 for v in test[0]["history"]]]
    (work / "histories.json").write_text(json.dumps(histories))
    proc = subprocess.run([sys.executable, "-c", RELOAD, str(version_dir), str(work / "histories.json")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    served = np.array(json.loads(proc.stdout.strip().splitlines()[-1])["forecast"])
    assert served.shape == (21, 26)
    for row, r in zip(served, test, strict=False):
        np.testing.assert_allclose(row, logged[r["origin"]]["forecast"], rtol=1e-5)
        assert np.abs(row - np.array(r["target"])).mean() < 3.0  # ppm, around 320: original units
    np.testing.assert_allclose(served[-1] - served[0], 100.0, atol=1e-3)


def test_rnnpipe_predict_sends_its_numbers_as_one_history_and_names_a_bad_one(
        pushed: dict, capsys: pytest.CaptureFixture) -> None:
    work = pushed["work"]
    logged = {r["origin"]: r for r in map(json.loads, (latest(work, "Evaluator") / "evaluation" /
                                                       "predictions.jsonl").open())}
    first = min((example_to_dict(e) for e in read_examples(latest(work, "ExampleGen") / "examples", "test")),
                key=lambda r: r["origin"])
    values = [repr(float(v)) for v in first["history"]]
    capsys.readouterr()
    assert main(["predict", "forecasting", ",".join(values[:50]), *values[50:]]) == 0  # commas or arguments
    printed = capsys.readouterr().out.strip()
    assert printed.startswith("104 values: forecast=[")
    np.testing.assert_allclose(np.array(printed.split("[", 1)[1].rstrip("]").split(), float),
                               logged[first["origin"]]["forecast"], rtol=1e-4)
    assert main(["predict", "forecasting", *values[1:]]) != 0
    assert "the model's 'history' takes 104 values per row; got 103" in capsys.readouterr().err
    assert main(["predict", "forecasting", "1.5", "twelve"]) != 0
    assert "the model takes a row of numbers; 'twelve' is not a number" in capsys.readouterr().err


def test_mlflow_run_has_forecast_metrics_and_the_plot(pushed: dict) -> None:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{pushed['work'] / 'mlflow.db'}")
    run = client.search_runs([client.get_experiment_by_name("forecasting").experiment_id])[0]
    assert run.info.status == "FINISHED" and run.data.tags["rnnpipe.pushed_version"] == "1"
    metrics = run.data.metrics
    assert {"Evaluator/test_mase", "Evaluator/baseline_mase", "Evaluator/peer/ets/mase", "Evaluator/test_smape",
            "Evaluator/test_rmse", "Evaluator/test_mae", "Evaluator/test_mase.steps:1-9"} <= set(metrics)
    assert metrics["Evaluator/test_mase"] < metrics["Evaluator/baseline_mase"]
    assert run.data.params["data.missing"] == "interpolate" and run.data.params["model.cell"] == "gru"
    artifacts = {f.path for d in ("plots", "evaluation") for f in client.list_artifacts(run.info.run_id, d)}
    assert {"plots/forecast_vs_truth.png", "plots/learning_curves.png", "evaluation/model_card.md",
            "evaluation/predictions_sample.jsonl"} <= artifacts


def test_a_nan_with_missing_reject_stops_at_its_file_and_line_and_nothing_is_pushed(
        workdir: Path, capsys: pytest.CaptureFixture) -> None:
    path = workdir / "load.csv"
    lines = SAMPLE.read_text().splitlines()
    path.write_text("\n".join(line for line in lines if not line.endswith(",")).replace("317.6", "NaN") + "\n")
    assert main(["run", "forecasting", *SMALL, "--set", f"data.path={path}", "--set", "data.missing=reject"]) == 1
    err = capsys.readouterr().err
    assert re.search(r"load\.csv:4: column 'value' is 'NaN', a missing value; data\.missing is 'reject': fix the file, "
                     r"or set data\.missing=interpolate", err), err
    assert not (workdir / "serving").exists()
    step_dir = workdir / "pipeline_root" / "forecasting" / "ExampleGen"
    assert not step_dir.exists() or not list(step_dir.iterdir())


@pytest.mark.slow  # sentiment and tests/test_mlflow_model.py cover the pyfunc in the fast suite
def test_registered_model_loads_with_mlflow_pyfunc_and_answers_like_the_saved_model(pushed: dict) -> None:
    from test_mlflow_model import assert_same, pyfunc_and_saved_model

    test = [example_to_dict(e) for e in read_examples(latest(pushed["work"], "ExampleGen") / "examples", "test")][:5]
    out = pyfunc_and_saved_model(pushed["work"], "forecasting", {"history": [r["history"] for r in test]})
    assert_same(out["pyfunc"], out["saved_model"])
    assert np.array(out["pyfunc"]["forecast"]).shape == (5, 26)  # a column of lists: one forecast per row
