"""Bad input across the applications, table-driven: each case runs ``rnnpipe run`` in a fresh working directory
and must exit with its code, print a message naming the place (file:line, key or path) and leave nothing pushed
or half-written. Most cases stop before Transform, so the whole table costs about a minute.

The rows live in ``cases_bad_*.py`` beside this file, one module per area; a module that is listed here but
missing fails the suite rather than shrinking it.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest
from bad_input_case import Case

from rnnpipe import faults
from rnnpipe.cli import main

ENGINE = [
    Case("unknown application", "nope", exit_code=2, message="unknown application 'nope'; installed: .*sentiment"),
    Case("unknown config key", "sentiment", args=("--set", "trainer.epoch=3"), exit_code=2,
         message=r"unknown config key 'trainer\.epoch'; did you mean 'trainer\.epochs'"),
    Case("wrong config type", "sentiment", args=("--set", "trainer.epochs=three"), exit_code=2,
         message=r"'trainer\.epochs' must be of type int"),
    Case("--set without =", "sentiment", args=("--set", "trainer.epochs"), exit_code=2,
         message=r"--set expects KEY=VALUE .* got 'trainer\.epochs'"),
    Case("config file missing", "sentiment", args=("--config", "{work}/nope.yaml"), exit_code=2,
         message=r"config file not found: {work}/nope\.yaml"),
    Case("config file not YAML", "sentiment", files={"bad.yaml": "trainer: [1, 2\n"},
         args=("--config", "{work}/bad.yaml"), exit_code=2, message=r"{work}/bad\.yaml: not valid YAML"),
    Case("config file a list", "sentiment", files={"list.yaml": "- 1\n- 2\n"}, args=("--config", "{work}/list.yaml"),
         exit_code=2, message=r"{work}/list\.yaml: expected a mapping of config keys"),
    Case("section given a scalar", "sentiment", args=("--set", "trainer=3"), exit_code=2,
         message=r"'trainer' must be a mapping, got int 3"),
    Case("--only an unknown stage", "sentiment", args=("--only", "Trainr"), exit_code=2,
         message=r"no step 'Trainr' in pipeline sentiment; steps: ExampleGen"),
    Case("--only before any run", "sentiment", args=("--only", "Evaluator"), exit_code=1,
         message=r"ExampleGen has never completed in pipeline sentiment: run the whole pipeline first"),
]

AREAS = ["cases_bad_readers", "cases_bad_validation", "cases_bad_config", "cases_bad_pusher"]
CASES = ENGINE + [case for area in AREAS for case in importlib.import_module(area).CASES]


def test_the_table_is_big_and_ids_are_unique() -> None:
    assert len(CASES) >= 40
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.fixture(scope="module")
def mlflow_store(tmp_path_factory: pytest.TempPathFactory) -> str:
    # One tracking store for the table: creating MLflow's SQLite schema costs seconds per fresh database.
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture,
                   mlflow_store: str) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_store)
    monkeypatch.delenv(faults.ENV, raising=False)
    faults._reached.clear()
    work = str(tmp_path)
    for name, content in case.files.items():
        target = tmp_path / name
        if name.endswith("/"):
            target.mkdir(parents=True, exist_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content if isinstance(content, bytes) else content.encode())
    args = [a.replace("{work}", work) for a in case.args]
    if case.data is not None:
        args = ["--set", f"data.path={tmp_path / case.data}", *args]
    code = main(["run", case.app, *args])
    err = capsys.readouterr().err
    assert code == case.exit_code, err[-2000:]
    assert re.search(case.message.replace("{work}", re.escape(work)), err), err[-2000:]
    assert "Traceback" not in err
    serving = tmp_path / "serving" / case.app
    assert not serving.exists() or not [p for p in serving.iterdir() if p.name.isdigit()], "something was pushed"
    left = [p for root in ("pipeline_root", "serving") for p in (tmp_path / root).rglob(".tmp-*")]
    assert not left, f"half-written artifacts left: {left}"
