"""Slow text-generation checks (`make test-slow`): the default data from PyPI, and the default run's quality
with the champion gate against a barely trained model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rnnpipe.artifacts import ModelBlessing
from rnnpipe.cli import main
from rnnpipe.pipelines.textgen import data

pytestmark = pytest.mark.slow


def test_fetch_writes_the_42_gutenberg_works_as_utf8(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setenv("RNNPIPE_CACHE", str(tmp_path))
    assert main(["data", "fetch", "textgen"]) == 0
    folder = tmp_path / "textgen" / "shakespeare"
    assert f"textgen: data ready at {folder}" in capsys.readouterr().out
    works = data.work_texts(folder)
    assert len(works) == 42 and "hamlet" in works and not any(w.endswith("_f") for w in works)
    assert 4_900_000 < sum(len(t) for t in works.values()) < 5_100_000
    assert not [p for p in tmp_path.joinpath("textgen").iterdir() if p.name != "shakespeare"]  # no leftovers
    splits = {s: sorted({r["work"] for _, r in data.read_texts(folder) if r["split"] == s}) for s in ("eval", "test")}
    assert splits == {"eval": ["coriolanus", "john", "much_ado_about_nothing", "taming_of_the_shrew"],
                      "test": ["henry_v", "macbeth", "rape_of_lucrece", "twelfth_night"]}


def test_default_run_beats_the_bigram_and_the_champion_gate_holds(workdir: Path) -> None:
    assert main(["run", "textgen"]) == 0
    evaluation = next((workdir / "pipeline_root" / "textgen" / "Evaluator").glob("*/evaluation/evaluation.json"))
    overall = json.loads(evaluation.read_text())["overall"]
    assert overall["model"]["bpc"] < overall["bigram"]["bpc"] - 0.5
    assert overall["model"]["bpc"] < 3.0
    # The aim. 1.990 static and 1.877 adapted at seed 42 in ten epochs of 83-86 s; a machine whose epochs
    # take over 1.8 minutes fits fewer in trainer.max_minutes (seven scored 2.0085, six 2.017).
    assert overall["model"]["bpc"] <= 2.0 and overall["model"]["bpc_adaptive"] <= 1.95
    assert overall["model"]["bpc"] < overall["peer/kn7"]["bpc"]
    assert (workdir / "serving" / "textgen" / "1" / "saved_model.pb").exists()

    # A barely trained model is not blessed: it is worse than the champion (and the bigram).
    assert main(["run", "textgen", "--set", "trainer.epochs=1", "--set", "trainer.steps_per_epoch=1"]) == 3
    assert sorted(p.name for p in (workdir / "serving" / "textgen").iterdir() if p.name.isdigit()) == ["1"]
    blessings = sorted((workdir / "pipeline_root" / "textgen" / "Evaluator").glob("[0-9]*/blessing"),
                       key=lambda p: int(p.parts[-2]))
    last = ModelBlessing.read(blessings[-1])
    assert not last.blessed and any("worse than the champion's (version 1)" in r for r in last.reasons)
