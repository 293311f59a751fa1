"""Tiny pure-Python components for testing the engine (importable by subprocesses via PYTHONPATH)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from rnnpipe.config import load_config
from rnnpipe.dsl import Component, Param, Pipeline
from rnnpipe.runner import run_pipeline


def _read(artifact) -> int:
    return int(artifact.path("n.txt").read_text())


def _source(inputs, outputs, params, ctx):
    outputs["numbers"].path("n.txt").write_text(str(params["value"]))
    ctx.tracker.log_metric("source_value", params["value"])
    return {"value": params["value"]}


def _scale(inputs, outputs, params, ctx):
    outputs["numbers"].path("n.txt").write_text(str(_read(inputs["numbers"]) * params["factor"]))


def _gated(inputs, outputs, params, ctx):
    # Writes half of its output, then waits for a release file: a test kills it in between.
    out = outputs["numbers"].path()
    (out / "partial.txt").write_text("half")
    Path(params["started"]).write_text(str(ctx.execution_id))
    while not Path(params["release"]).exists():
        time.sleep(0.05)
    (out / "n.txt").write_text(str(_read(inputs["numbers"]) + 1))


class Source(Component):
    OUTPUTS = {"numbers": "Numbers"}
    PARAMETERS = {"value": Param(int)}
    executor = staticmethod(_source)


class Scale(Component):
    INPUTS = {"numbers": "Numbers"}
    OUTPUTS = {"numbers": "Numbers"}
    PARAMETERS = {"factor": Param(int, 2)}
    executor = staticmethod(_scale)


class Gated(Component):
    INPUTS = {"numbers": "Numbers"}
    OUTPUTS = {"numbers": "Numbers"}
    PARAMETERS = {"started": Param(str), "release": Param(str)}
    executor = staticmethod(_gated)


def toy_pipeline(value: int = 3, factor: int = 2, gate_dir: str | None = None) -> Pipeline:
    source = Source(value=value)
    scale = Scale(numbers=source, factor=factor)
    again = Scale(id="ScaleAgain", numbers=scale, factor=10)
    steps = [source, scale, again]
    if gate_dir:
        steps.append(Gated(numbers=again, started=f"{gate_dir}/started", release=f"{gate_dir}/release"))
    return Pipeline("toy", steps)


def toy_config(workdir: Path):
    app = workdir / "toy.yaml"
    if not app.exists():
        app.write_text("{}\n")
    return load_config(app)


if __name__ == "__main__":  # used by the SIGKILL test: python toy_components.py WORKDIR GATE_DIR
    work, gate = Path(sys.argv[1]), sys.argv[2]
    run_pipeline(toy_pipeline(gate_dir=gate), toy_config(work))
