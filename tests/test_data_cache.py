"""Default datasets come from the package index, checked against the sha256 the application pins."""

from __future__ import annotations

from pathlib import Path

import pytest

from rnnpipe.data_cache import pip_download
from rnnpipe.errors import DataError

SIX = "six==1.16.0"  # a small sdist: the download is real, from the package index
SIX_SHA256 = "1e61c37477a1626458e36f7b1d82aa5c9b094fa4802892072e49de9c60c4c926"


def test_a_download_with_the_pinned_sha256_is_kept_another_is_refused(tmp_path: Path) -> None:
    got = pip_download(SIX, tmp_path / "ok", sha256=SIX_SHA256)
    assert got.name == "six-1.16.0.tar.gz" and got.stat().st_size > 10_000
    with pytest.raises(DataError, match=rf"six-1\.16\.0\.tar\.gz \(for {SIX}\) has sha256 {SIX_SHA256}, "
                                        r"expected 0{64}: the package index served another file"):
        pip_download(SIX, tmp_path / "bad", sha256="0" * 64)


def test_the_cache_folder_follows_rnnpipe_cache_then_xdg_cache_home(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from rnnpipe.data_cache import cache_dir

    monkeypatch.delenv("RNNPIPE_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir("demo") == tmp_path / "xdg" / "rnnpipe" / "demo"
    monkeypatch.setenv("RNNPIPE_CACHE", str(tmp_path / "mine"))
    assert cache_dir("demo") == tmp_path / "mine" / "demo"
    assert cache_dir("demo", str(tmp_path / "configured")) == tmp_path / "configured" / "demo"
