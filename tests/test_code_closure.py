"""The cache key follows the code a step really uses: its module's import closure within the project."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest
from toy_components import Source, toy_config

from rnnpipe.code_closure import source_closure
from rnnpipe.dsl import Component, Param, Pipeline, Ref
from rnnpipe.runner import run_pipeline


def test_sentiment_task_depends_on_the_layers_it_uses_not_on_every_model_file() -> None:
    closure = source_closure("rnnpipe.pipelines.sentiment.model")
    assert {"rnnpipe.models.classifier", "rnnpipe.models.recurrent", "rnnpipe.models.cells",
            "rnnpipe.pipelines.sentiment.features"} <= set(closure)
    assert not {"rnnpipe.models.seq2seq", "rnnpipe.models.ctc", "rnnpipe.models.tagger"} & set(closure)
    assert not [m for m in closure if m in ("rnnpipe.runner", "rnnpipe.dsl", "rnnpipe.tracking")]  # the engine
    assert "tensorflow" not in closure  # other distributions are not the project's code


def _apply(inputs, outputs, params, ctx):
    value = int(inputs["numbers"].path("n.txt").read_text())
    outputs["numbers"].path("n.txt").write_text(str(Ref(params["fn"]).resolve()(value)))


class Apply(Component):
    INPUTS = {"numbers": "Numbers"}
    OUTPUTS = {"numbers": "Numbers"}
    PARAMETERS = {"fn": Param(Ref)}
    executor = staticmethod(_apply)


@pytest.fixture
def userpkg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A user's package whose __init__ re-exports two modules; the step's function uses only one."""
    pkg = tmp_path / "src" / "userpkg"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("from .used import double\nfrom .unused import triple\n")
    (pkg / "used.py").write_text("def double(x):\n    return 2 * x\n")
    (pkg / "unused.py").write_text("def triple(x):\n    return 3 * x\n")
    (pkg / "steps.py").write_text("from userpkg import double\n\ndef apply(x):\n    return double(x) + 1\n")
    monkeypatch.syspath_prepend(str(tmp_path / "src"))
    yield pkg
    for name in [m for m in sys.modules if m.split(".")[0] == "userpkg"]:
        del sys.modules[name]


def test_editing_an_unused_module_keeps_the_cache_editing_a_used_one_reruns(workdir: Path, userpkg: Path) -> None:
    def pipeline() -> Pipeline:
        source = Source(value=5)
        return Pipeline("toy", [source, Apply(numbers=source, fn="userpkg.steps:apply")])

    cfg = toy_config(workdir)
    assert run_pipeline(pipeline(), cfg).executed == ["Source", "Apply"]
    (userpkg / "unused.py").write_text("def triple(x):\n    return 3 * x  # edited\n")
    assert run_pipeline(pipeline(), cfg).cache_hits == ["Source", "Apply"]
    (userpkg / "used.py").write_text("def double(x):\n    return 20 * x\n")
    importlib.invalidate_caches()
    for name in [m for m in sys.modules if m.split(".")[0] == "userpkg"]:
        del sys.modules[name]
    rerun = run_pipeline(pipeline(), cfg)
    assert rerun.executed == ["Apply"] and rerun.cache_hits == ["Source"]
    assert Path(rerun.outputs["Apply"]["numbers"].uri, "n.txt").read_text() == "101"
