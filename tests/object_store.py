"""A throwaway S3 endpoint on localhost (moto's server, from PyPI) for the artifact-URI tests: a real HTTP S3 API
that every process reaches through s3fs, as a bucket on AWS or MinIO would be."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from rnnpipe.processes import free_ports

# What s3fs (botocore) reads: the endpoint, and credentials that moto accepts whatever they are.
S3_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


@contextlib.contextmanager
def s3_server(log: Path) -> Iterator[dict[str, str]]:
    """Starts moto's S3 server on a free port; yields the environment that points s3fs at it."""
    (port,) = free_ports(1)
    server = Path(sys.executable).with_name("moto_server")
    with open(log, "w") as out:
        proc = subprocess.Popen([str(server), "-H", "127.0.0.1", "-p", str(port)], stdout=out, stderr=out)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(url, timeout=2).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"moto's S3 server did not start:\n{log.read_text()[-2000:]}") from None
                time.sleep(0.1)
        yield {**S3_ENV, "AWS_ENDPOINT_URL": url}
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def make_bucket(env: dict[str, str], name: str) -> None:
    """Creates a bucket (an S3 bucket must exist before anything is written under it)."""
    import s3fs

    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        s3fs.S3FileSystem(skip_instance_cache=True).mkdir(name)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
