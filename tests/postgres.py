"""A throwaway PostgreSQL server (Debian's `postgresql` package) and an MLflow tracking server on it, for the
shared-records tests: started in a fresh folder on free localhost ports, stopped at the end."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from rnnpipe.processes import free_ports

NOT_INSTALLED = "PostgreSQL is not installed: apt-get install postgresql (`make system-deps`; .ci/run does it)"


@contextlib.contextmanager
def postgres_server() -> Iterator[str]:
    """Yields the server's URL without a database name: ``postgresql://rnnpipe@127.0.0.1:PORT/``."""
    bindirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name))
    if not bindirs:
        pytest.skip(NOT_INSTALLED)
    bindir = Path(bindirs[-1])
    # PostgreSQL refuses to run as root: as root, run it as the package's `postgres` user.
    as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    folder = Path(tempfile.mkdtemp(prefix="rnnpipe-pg-"))
    if as_user:
        shutil.chown(folder, "postgres")
    (port,) = free_ports(1)
    data = folder / "data"
    subprocess.run([*as_user, bindir / "initdb", "-D", data, "-A", "trust", "-U", "rnnpipe", "-E", "UTF8",
                    "--no-sync"], check=True, capture_output=True)
    subprocess.run([*as_user, bindir / "pg_ctl", "-D", data, "-l", folder / "server.log", "-w", "-o",
                    f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off", "start"],
                   check=True, capture_output=True)
    try:
        yield f"postgresql://rnnpipe@127.0.0.1:{port}/"
    finally:
        subprocess.run([*as_user, bindir / "pg_ctl", "-D", data, "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)


def create_database(server: str, name: str) -> str:
    """A new database on ``server``; returns its URL."""
    import psycopg

    with psycopg.connect(f"{server}postgres", autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    return f"{server}{name}"


@contextlib.contextmanager
def mlflow_server(backend: str, artifacts: Path) -> Iterator[str]:
    """``mlflow server`` with ``backend`` as its store and ``artifacts`` as the artifact destination (served
    over HTTP: clients upload through it); yields its http:// tracking URI once /health answers."""
    (port,) = free_ports(1)
    log = open(artifacts.parent / f"mlflow-server-{port}.log", "w")  # noqa: SIM115 - closed below
    server = subprocess.Popen(
        [Path(sys.executable).parent / "mlflow", "server", "--backend-store-uri", backend,
         "--artifacts-destination", str(artifacts), "--host", "127.0.0.1", "--port", str(port), "--workers", "2"],
        stdout=log, stderr=subprocess.STDOUT)
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            with contextlib.suppress(OSError):
                if urllib.request.urlopen(f"{uri}/health", timeout=2).status == 200:
                    break
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"mlflow server did not start: {Path(log.name).read_text()[-2000:]}")
            time.sleep(0.5)
        yield uri
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()
