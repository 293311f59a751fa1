"""The pipeline's lease in the metadata store: one run of a pipeline at a time across machines that share the
store, whatever their pipeline roots; a lease whose holder is gone is taken over, so a killed run never blocks."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from toy_components import toy_pipeline

from rnnpipe.errors import PipelineLockedError
from rnnpipe.metadata import LEASE_SECONDS, MetadataStore, leases
from rnnpipe.runner import run_pipeline


def machine(workdir: Path, name: str):
    """A config as another machine would have it: its own pipeline root, the shared metadata store."""
    (workdir / f"{name}.yaml").write_text(f"pipeline_root: {workdir / name}\n"
                                          f"metadata_url: sqlite:///{workdir / 'shared.sqlite'}\n")
    from rnnpipe.config import load_config

    return load_config(workdir / f"{name}.yaml")


def test_a_run_elsewhere_holds_the_pipeline_until_it_ends(workdir: Path) -> None:
    store = MetadataStore(f"sqlite:///{workdir / 'shared.sqlite'}")
    with store.lease("toy"):  # a run in progress on machine A
        with pytest.raises(PipelineLockedError, match=rf"pipeline toy is in progress \(host {socket.gethostname()}"):
            run_pipeline(toy_pipeline(), machine(workdir, "b"))
    assert run_pipeline(toy_pipeline(), machine(workdir, "b")).executed  # released when A ended
    with store.engine.connect() as c:
        assert c.execute(leases.select()).all() == []


def test_a_machine_whose_clock_runs_ahead_does_not_take_a_live_lease_over(workdir: Path, monkeypatch) -> None:
    """Lease times are the database's: a machine an hour ahead still sees the holder's fresh renewal."""
    from rnnpipe import metadata

    store = MetadataStore(f"sqlite:///{workdir / 'shared.sqlite'}")
    with store.lease("toy"):
        monkeypatch.setattr(metadata, "time", SimpleNamespace(time=lambda: time.time() + 3600))
        with pytest.raises(PipelineLockedError, match=r"renewed 0 s ago"):
            run_pipeline(toy_pipeline(), machine(workdir, "b"))


@pytest.mark.parametrize("holder", ["lost machine", "dead process here", "live machine"])
def test_a_lease_whose_holder_is_gone_is_taken_over(workdir: Path, holder: str) -> None:
    store = MetadataStore(f"sqlite:///{workdir / 'shared.sqlite'}")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    host, pid, renewed = {
        "lost machine": ("elsewhere", 1, time.time() - LEASE_SECONDS - 1),  # stopped renewing
        "dead process here": (socket.gethostname(), int(dead.stdout), time.time()),
        "live machine": ("elsewhere", 1, time.time() - 5),
    }[holder]
    with store.engine.begin() as c:
        c.execute(leases.insert().values(pipeline="toy", host=host, pid=pid, token="t", renewed_at=renewed))
    if holder == "live machine":
        with pytest.raises(PipelineLockedError, match=r"host elsewhere, pid 1, .*renewed 5 s ago"):
            run_pipeline(toy_pipeline(), machine(workdir, "b"))
        return
    assert run_pipeline(toy_pipeline(), machine(workdir, "b")).executed == ["Source", "Scale", "ScaleAgain"]
