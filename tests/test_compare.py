"""`rnnpipe compare`: runs recorded in a real metadata store and a real MLflow SQLite store, side by side."""

from __future__ import annotations

import json

import pytest

from rnnpipe.cli import main
from rnnpipe.metadata import MetadataStore
from rnnpipe.tracking import Tracker


def gate(value: float, champion: float | None) -> dict:
    return {"primary_metric": "accuracy", "primary_value": value, "higher_is_better": True,
            "primary_baseline": 0.5, "primary_champion": champion}


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Three runs of sentiment: one pushed (units 32), one held back by the gate (units 64), one failed."""
    tmp_path = tmp_path_factory.mktemp("compare")
    metadata, mlflow = f"sqlite:///{tmp_path / 'metadata.sqlite'}", f"sqlite:///{tmp_path / 'mlflow.db'}"
    store = MetadataStore(metadata)
    ids = []
    for units, metrics, status in (
            (32, {"Evaluator": gate(0.81, None), "Pusher": {"pushed": 1, "version": 1}}, "COMPLETE"),
            (64, {"Evaluator": gate(0.78, 0.81), "Pusher": {"pushed": 0}}, "COMPLETE"),
            (64, {"ExampleGen": {"examples": 10}}, "FAILED")):
        run_id = store.start_run("sentiment")
        tracker = Tracker.start(mlflow, "sentiment", f"sentiment-{run_id[:8]}", {})
        tracker.log_params({"model": {"units": units, "cell": "gru"}, "trainer": {"epochs": 3}})
        store.finish_run(run_id, status, cache_hits=[], metrics=metrics, mlflow_run_id=tracker.run_id)
        ids.append((run_id, tracker.run_id))
    return {"args": ["--set", f"metadata_url={metadata}", "--set", f"mlflow.tracking_uri={mlflow}"], "ids": ids,
            "tmp": tmp_path}


def test_compare_shows_outcomes_metrics_and_the_config_keys_that_differ(recorded: dict,
                                                                       capsys: pytest.CaptureFixture) -> None:
    assert main(["compare", "sentiment", *recorded["args"]]) == 0
    out = capsys.readouterr().out
    rows = out.splitlines()
    assert rows[0].split() == ["run", "started", "status", "outcome", "accuracy", "baseline", "champion"]
    (first, first_ml), (second, second_ml), (failed, _) = recorded["ids"]
    by_run = {line.split()[0]: line.split() for line in rows[1:4]}
    assert by_run[first[:8]][4:] == ["pushed", "0.8100", "0.5000", "-"]
    assert by_run[second[:8]][4:] == ["not_blessed", "0.7800", "0.5000", "0.8100"]
    assert by_run[failed[:8]][3:] == ["FAILED", "failed", "-", "-", "-"]
    assert "(accuracy: higher is better)" in out
    # Newest first: the failed run (64), the held-back one (64), the pushed one (32); epochs and cell agree.
    assert "  model.units  64 | 64 | 32" in rows and "trainer.epochs" not in out and "model.cell" not in out
    link = next(line for line in rows if "compare-runs" in line)
    assert first_ml in link and second_ml in link and link.startswith("MLflow comparison")


def test_compare_named_runs_as_json_and_a_plot(recorded: dict, capsys: pytest.CaptureFixture) -> None:
    (first, _), (second, _), _ = recorded["ids"]
    png = recorded["tmp"] / "accuracy.png"
    assert main(["compare", "sentiment", second[:6], first[:6], "--json", "--plot", str(png), *recorded["args"]]) == 0
    answer = json.loads(capsys.readouterr().out.splitlines()[0])
    assert [r["run_id"] for r in answer["runs"]] == [second, first]  # as named
    assert answer["differing"] == {"model.units": ["64", "32"]}
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    assert main(["compare", "sentiment", "ffffffff", *recorded["args"]]) == 2
    assert "run 'ffffffff' matches no run; `rnnpipe runs APP` lists the run ids" in capsys.readouterr().err
