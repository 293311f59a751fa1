from __future__ import annotations

from pathlib import Path

import pytest

from rnnpipe.errors import RnnpipeError
from rnnpipe.serving import ROLLED_BACK, latest_version, next_version, rollback, versions, write_models_config


def make_versions(base: Path, *numbers: int) -> None:
    for n in numbers:
        (base / str(n)).mkdir(parents=True)
        (base / str(n) / "saved_model.pb").write_bytes(b"pb")


def test_only_complete_integer_folders_are_versions(tmp_path: Path) -> None:
    make_versions(tmp_path, 1, 3)
    (tmp_path / "4").mkdir()  # no saved_model.pb yet: being written
    (tmp_path / ".tmp-5-123").mkdir()
    assert versions(tmp_path) == [1, 3] and latest_version(tmp_path) == 3 and next_version(tmp_path) == 4


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
    text = write_models_config(tmp_path).read_text()
    assert text.count("config {") == 2
    assert 'name: "sentiment"\n    base_path: "/models/sentiment"' in text and '"empty"' not in text
