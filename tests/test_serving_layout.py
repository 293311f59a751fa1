from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from rnnpipe import faults
from rnnpipe.errors import RnnpipeError
from rnnpipe.faults import ENV
from rnnpipe.serving import (
    PUSH_RECORD,
    ROLLED_BACK,
    find_pushed,
    latest_version,
    next_version,
    remove_stale_tmp,
    rollback,
    versions,
    write_models_config,
)


@pytest.fixture(autouse=True)
def fresh_fault_counts(monkeypatch: pytest.MonkeyPatch) -> None:
    """``NAME#N`` counts reached points per process: start each test from zero."""
    monkeypatch.setattr(faults, "_reached", Counter())


def make_versions(base: Path, *numbers: int) -> None:
    for n in numbers:
        (base / str(n)).mkdir(parents=True)
        (base / str(n) / "saved_model.pb").write_bytes(b"pb")


def test_only_complete_integer_folders_are_versions(tmp_path: Path) -> None:
    make_versions(tmp_path, 1, 3)
    (tmp_path / "4").mkdir()  # no saved_model.pb yet: being written
    (tmp_path / ".tmp-5-123").mkdir()
    assert versions(tmp_path) == [1, 3] and latest_version(tmp_path) == 3
    assert next_version(tmp_path) == 5  # the unfinished 4 is not reused: TF Serving may have tried to load it


def test_rollback_parks_newer_versions_and_numbers_are_never_reused(tmp_path: Path) -> None:
    make_versions(tmp_path, 1, 2, 3)
    assert rollback(tmp_path) == (2, [3])
    assert versions(tmp_path) == [1, 2]
    assert rollback(tmp_path, 1) == (1, [2])
    assert versions(tmp_path) == [1] and len(list((tmp_path / ROLLED_BACK).iterdir())) == 2
    assert next_version(tmp_path) == 4
    with pytest.raises(RnnpipeError, match="nothing to roll back to"):
        rollback(tmp_path)
    with pytest.raises(RnnpipeError, match="no version 7 to roll back to; versions: \\[1\\]"):
        rollback(tmp_path, 7)


def test_models_config_lists_every_pushed_model(tmp_path: Path) -> None:
    make_versions(tmp_path / "sentiment", 1)
    make_versions(tmp_path / "tagging", 2)
    (tmp_path / "empty").mkdir()
    text = Path(write_models_config(tmp_path)).read_text()
    assert text.count("config {") == 2
    assert 'name: "sentiment"\n    base_path: "/models/sentiment"' in text and '"empty"' not in text


def test_models_config_is_readable_by_others_and_a_failed_write_keeps_the_old_one(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_versions(tmp_path / "sentiment", 1)
    path = Path(write_models_config(tmp_path))
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    before = path.read_text()
    make_versions(tmp_path / "tagging", 1)
    monkeypatch.setenv(ENV, "Pusher.models_config=ENOSPC")
    with pytest.raises(OSError, match="No space left on device") as e:
        write_models_config(tmp_path)
    assert e.value.filename == str(path) and path.read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["models.config", "sentiment", "tagging"]


def test_pushed_models_are_found_by_fingerprint_served_or_rolled_back(tmp_path: Path) -> None:
    make_versions(tmp_path, 1, 2, 3)
    for v in (1, 2, 3):
        (tmp_path / str(v) / PUSH_RECORD).parent.mkdir()
        (tmp_path / str(v) / PUSH_RECORD).write_text(json.dumps({"model_fingerprint": f"fp{v % 2}"}))
    assert find_pushed(tmp_path, "fp1") == (3, False) and find_pushed(tmp_path, "fp0") == (2, False)
    rollback(tmp_path, 1)
    assert find_pushed(tmp_path, "fp1") == (3, True) and find_pushed(tmp_path, "fp0") == (2, True)
    assert find_pushed(tmp_path, "other") is None


def test_only_temporary_folders_of_finished_processes_are_removed(tmp_path: Path) -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    for name in (f".tmp-4-{child.pid}", f".tmp-5-{os.getpid()}", f".tmp-6-{os.getppid()}", "3"):
        (tmp_path / name).mkdir()
    assert remove_stale_tmp(tmp_path) == [f".tmp-4-{child.pid}", f".tmp-5-{os.getpid()}"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [f".tmp-6-{os.getppid()}", "3"]
