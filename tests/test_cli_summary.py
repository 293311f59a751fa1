"""The run summary and `rnnpipe runs`: the gate's primary metric for any application, found by its keys
(no stage, metric or application named in rnnpipe/), every other metric behind -v / --all-metrics."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from rnnpipe import cli
from rnnpipe.cli import describe_primary, main, metric_lines, trim_padding
from rnnpipe.metadata import MetadataStore


def gate(name: str, value: float, higher: bool, baseline: float | None, champion: float | None) -> dict:
    """What the Evaluator returns beside its other metrics (ModelEvaluation.primary_summary)."""
    return {"primary_metric": name, "primary_value": value, "higher_is_better": higher,
            "primary_baseline": baseline, "primary_champion": champion, f"test_{name}": value, "blessed": 1.0}


@pytest.mark.parametrize(("metrics", "line"), [
    (gate("accuracy", 0.8123, True, 0.5, 0.8), "accuracy 0.8123 (higher is better; baseline 0.5000; champion 0.8000)"),
    (gate("accuracy", 0.9, True, 0.85, None), "accuracy 0.9000 (higher is better; baseline 0.8500; no champion)"),
    (gate("mase", 0.7, False, 1.25, 0.75), "mase 0.7000 (lower is better; baseline 1.2500; champion 0.7500)"),
    (gate("bpc", 2.5, False, None, None), "bpc 2.5000 (lower is better; no baseline; no champion)"),
    (gate("accuracy", 0.77, True, 0.5, None) | {"peer/tfidf_svm/accuracy": 0.79, "peer/tfidf_svm/macro_f1": 0.7},
     "accuracy 0.7700 (higher is better; baseline 0.5000; peer tfidf_svm 0.7900; no champion)"),
    (gate("bpc", 2.07, False, 3.65, None) | {"test_bpc_adaptive": 1.93, "test_bpc_adaptive.work-a": 1.9},
     "bpc 2.0700 (lower is better; baseline 3.6500; no champion); bpc_adaptive 1.9300"),
])
def test_the_primary_metric_line_shows_its_direction_baseline_and_champion(metrics: dict, line: str) -> None:
    assert describe_primary(metrics) == line
    run = {"Trainer": {"epochs": 3, "val_loss": 0.25}, "Gate": metrics, "Pusher": {"pushed": 1, "version": 2}}
    assert metric_lines(run) == [f"Gate: {line}"]
    every = metric_lines(run, every=True)
    assert every[0] == f"Gate: {line}" and "Trainer.val_loss: 0.2500" in every and "Pusher.version: 2" in every
    assert not any(".primary_" in shown or "higher_is_better" in shown for shown in every)


def test_runs_without_a_primary_metric_show_none() -> None:
    assert metric_lines({"ExampleGen": {"examples": 10}}) == []
    assert describe_primary(gate("mase", float("nan"), False, None, None) | {"primary_value": None}) == \
        "mase n/a (lower is better; no baseline; no champion)"


def test_runs_shows_the_primary_metric_and_all_metrics_on_request(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture) -> None:
    url = f"sqlite:///{tmp_path / 'metadata.sqlite'}"
    store = MetadataStore(url)
    for metrics in ({"Evaluator": gate("mase", 0.7, False, 1.25, None) | {"test_mase.h1-4": 0.5}},
                    {"ExampleGen": {"examples": 10}}):  # a run that failed before the gate
        store.finish_run(store.start_run("forecasting"), "COMPLETE", cache_hits=[], metrics=metrics,
                         mlflow_run_id=None)
    assert main(["runs", "forecasting", "--set", f"metadata_url={url}"]) == 0
    rows = capsys.readouterr().out.splitlines()
    assert len(rows) == 2 and any("mase 0.7000 (baseline 1.2500)" in r for r in rows)
    assert main(["runs", "forecasting", "--set", f"metadata_url={url}", "--all-metrics"]) == 0
    out = capsys.readouterr().out
    assert "    Evaluator: mase 0.7000 (lower is better; baseline 1.2500; no champion)" in out
    assert "    Evaluator.test_mase.h1-4: 0.5000" in out and "    ExampleGen.examples: 10" in out


def test_predict_trims_padded_text_positions_and_never_numbers_alone() -> None:
    tagged = {"tokens": np.array([b"a", b"b", b"", b""], dtype=object), "tags": np.array([b"X", b"", b"", b""],
                                                                                        dtype=object),
              "confidence": np.array([0.5, 0.0, 0.0, 0.0], dtype=np.float32), "length": np.int32(2)}
    trimmed = trim_padding(tagged)
    assert list(trimmed["tokens"]) == [b"a", b"b"] and list(trimmed["confidence"]) == [0.5, 0.0]
    assert list(trim_padding({"probabilities": np.array([1.0, 0.0])})["probabilities"]) == [1.0, 0.0]


def test_the_cli_names_no_metric_application_output_or_task() -> None:
    source = Path(cli.__file__).read_text(encoding="utf-8")
    assert not re.search(r"accuracy|\"length\"|classif|forecast|sentiment|tagging|textgen", source)

