"""The Tuner stage's checks before anything runs. tests/test_sentiment_e2e.py runs the stage end to end (its
fixture enables it): the better choice is picked, each trial is a nested MLflow run, the Trainer takes the best
values, a re-run is a cache hit."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from executions import latest

from rnnpipe.artifacts import HyperParameters
from rnnpipe.cli import main

SAMPLE = Path(__file__).resolve().parent / "data" / "sentiment_sample.jsonl"


@pytest.mark.parametrize(("space", "objective", "message"), [
    ("{unitz: [2, 16]}", "val_accuracy", r"tuner.search_space.unitz: not a key of the model section \["),
    ("{units: {min: 32, max: 8}}", "val_accuracy",
     r"tuner.search_space.units: expected a list of choices or \{min, max"),
    ("{}", "val_accuracy", r"tuner.search_space is empty"),
    ("{label_smoothing: [0.0, 0.1]}", "val_loss",
     r"tuner.search_space.label_smoothing: trials with more smoothing have a higher val_loss by construction"),
])
def test_a_bad_search_space_is_named_before_any_step_runs(tmp_path: Path, monkeypatch, capsys, space: str,
                                                           objective: str, message: str) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    args = ["--set", f"data.path={SAMPLE}", "--set", "tuner.enabled=true", "--set", f"tuner.search_space={space}",
            "--set", f"tuner.objective={objective}"]
    assert main(["run", "sentiment", *args]) != 0
    assert re.search(message, capsys.readouterr().err)
    assert not (tmp_path / "pipeline_root" / "sentiment" / "ExampleGen").exists()


@pytest.mark.slow
def test_a_search_killed_between_trials_resumes_from_the_finished_ones(tmp_path: Path) -> None:
    args = [sys.executable, "-m", "rnnpipe.cli", "run", "sentiment", "--set", f"data.path={SAMPLE}",
            "--set", "transform.min_frequency=1", "--set", "model.units=8", "--set", "model.embedding_dim=8",
            "--set", "trainer.epochs=1", "--set", "evaluator.must_beat_baseline=false",
            "--set", "evaluator.must_beat_peers=false",
            "--set", "embedding_pretrainer.corpus=null", "--set", "trainer.ensemble=1",
            "--set", "evaluator.thresholds={}", "--set", "tuner.enabled=true", "--set", "tuner.algorithm=random",
            "--set", "tuner.search_space={learning_rate: [0.000001, 0.001, 0.01]}", "--set", "tuner.max_trials=3",
            "--set", "tuner.epochs=1"]
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    killed = subprocess.run(args, cwd=tmp_path, env={**env, "RNNPIPE_FAULT": "Tuner.trial#2"}, capture_output=True,
                            text=True, timeout=900)
    assert killed.returncode == -9, killed.stderr[-3000:]  # SIGKILL after the first trial ended
    resumed = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    best = HyperParameters.read(latest(tmp_path, "Tuner", app="sentiment") / "best_hyperparameters")
    assert len(best["trials"]) == 3 and {t["status"] for t in best["trials"]} == {"COMPLETED"}

    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("sentiment").experiment_id
    trials = client.search_runs([experiment], "tags.`rnnpipe.tuner_trial` != ''")
    # Trial 0 ran (and was logged) once, under the killed run; the resumed run ran trials 1 and 2 only.
    assert sorted(r.data.tags["rnnpipe.tuner_trial"] for r in trials) == ["0", "1", "2"]
    assert len({r.data.tags["mlflow.parentRunId"] for r in trials}) == 2
