"""The handwriting pipeline with the default model on a mid-sized composed set (slow: about 10 minutes on
2 cores): the CRNN reads held-out handwriting better than the segment-then-classify peer, overall and
above all where digits touch, and greedy and beam decoding agree closely."""

from __future__ import annotations

import functools
from pathlib import Path

import executions
import pytest

from rnnpipe.artifacts import ModelBlessing, ModelEvaluation
from rnnpipe.cli import main

pytestmark = pytest.mark.slow


latest = functools.partial(executions.latest, app="handwriting")


def test_default_model_beats_the_segmentation_peer_clearly_on_touching_digits(workdir: Path) -> None:
    assert main(["run", "handwriting", "--set", f"data.cache_dir={workdir / 'cache'}",
                 "--set", "data.compose.lines={train: 4000, eval: 400, test: 600}", "--set", "trainer.epochs=8"]) == 0
    evaluation = ModelEvaluation.read(latest(workdir, "Evaluator") / "evaluation")
    model, peer = evaluation["overall"]["model"], evaluation["overall"]["baseline"]
    assert evaluation["baseline"].startswith("segmentation peer")
    assert model["cer"] < 0.10 and model["line_accuracy"] > 0.6, model
    assert model["cer"] < peer["cer"] and model["line_accuracy"] > peer["line_accuracy"]
    touching = evaluation["slices"]["spacing:touching"]
    assert touching["model"]["cer"] < touching["baseline"]["cer"] / 3, touching
    assert abs(model["cer_beam"] - model["cer"]) < 0.01
    assert ModelBlessing.read(latest(workdir, "Evaluator") / "blessing").blessed
