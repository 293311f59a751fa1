"""The Tuner stage's checks before anything runs. tests/test_sentiment_e2e.py runs the stage end to end (its
fixture enables it): the better choice is picked, each trial is a nested MLflow run, the Trainer takes the best
values, a re-run is a cache hit."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from rnnpipe.cli import main

SAMPLE = Path(__file__).resolve().parent / "data" / "sentiment_sample.jsonl"


@pytest.mark.parametrize(("space", "message"), [
    ("{unitz: [2, 16]}", r"tuner.search_space.unitz: not a key of the model section \["),
    ("{units: {min: 32, max: 8}}", r"tuner.search_space.units: expected a list of choices or \{min, max"),
    ("{}", r"tuner.search_space is empty"),
])
def test_a_bad_search_space_is_named_before_any_step_runs(tmp_path: Path, monkeypatch, capsys, space: str,
                                                           message: str) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    args = ["--set", f"data.path={SAMPLE}", "--set", "tuner.enabled=true", "--set", f"tuner.search_space={space}"]
    assert main(["run", "sentiment", *args]) != 0
    assert re.search(message, capsys.readouterr().err)
    assert not (tmp_path / "pipeline_root" / "sentiment" / "ExampleGen").exists()
