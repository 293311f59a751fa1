"""What a remote pipeline_root costs per artifact, measured in one run on this machine.

An artifact folder shaped like the sentiment pipeline's transformed examples (a few shards of incompressible bytes,
a JSON file) is published and read back three ways:
- the baseline: a local pipeline_root, where publishing is a rename and reading is the folder itself;
- a copy to another local folder (shutil.copytree), what any non-renaming store costs at least;
- S3 through s3fs, against moto's S3 server on localhost (HTTP, no network latency: a floor for a real bucket):
  the upload with its completion marker, and a fresh machine's download into the local copies' cache.
Prints seconds and MB/s of each and the ratio to the copy.

    .venv/bin/python benchmarks/artifact_store.py [--megabytes 64] [--shards 8]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from object_store import make_bucket, s3_server  # noqa: E402  (the tests' localhost S3 server)

from rnnpipe import storage  # noqa: E402


def make_artifact(folder: Path, megabytes: int, shards: int) -> Path:
    split = folder / "transformed_examples" / "Split-train"
    split.mkdir(parents=True)
    for i in range(shards):
        (split / f"data-{i:05d}-of-{shards:05d}.tfrecord.gz").write_bytes(os.urandom(megabytes * 2**20 // shards))
    (folder / "transformed_examples" / "splits.json").write_text('{"counts": {"train": 1}}')
    return folder


def timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--megabytes", type=int, default=64)
    parser.add_argument("--shards", type=int, default=8)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="rnnpipe-bench-store-"))
    os.environ["RNNPIPE_CACHE"] = str(work / "cache")
    results = {}
    try:
        local = make_artifact(work / "tmp-local", args.megabytes, args.shards)
        results["local rename (baseline)"] = timed(lambda: storage.publish(local, str(work / "published")))
        copy = make_artifact(work / "tmp-copy", args.megabytes, args.shards)
        results["local copytree"] = timed(lambda: shutil.copytree(copy, work / "copied"))
        with s3_server(work / "moto.log") as env:
            os.environ.update(env)
            bucket = f"bench-{uuid.uuid4().hex[:8]}"
            make_bucket(env, bucket)
            remote = make_artifact(work / "tmp-s3", args.megabytes, args.shards)
            uri = f"s3://{bucket}/root/app/Transform/1"
            results["S3 upload + marker"] = timed(lambda: storage.publish(remote, uri))
            results["S3 download (fresh machine)"] = timed(
                lambda: storage.local_copy(f"{uri}/transformed_examples", "bench-key"))
            assert storage.complete(uri)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    baseline = results["local copytree"]
    print(f"artifact: {args.megabytes} MB in {args.shards} shards")
    for name, seconds in results.items():
        print(f"  {name:30s} {seconds:7.3f} s  {args.megabytes / seconds:8.1f} MB/s  "
              f"{seconds / baseline:6.2f}x the local copy")


if __name__ == "__main__":
    main()
