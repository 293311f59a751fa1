"""Where artifacts and served models live: a local path, or a URI (``s3://``, ``gs://``, ``hdfs://``, ``memory://``)
read and written through fsspec.

Executors, Beam and TensorFlow work on local folders. For a remote location the runner hands them local copies:
an execution's outputs are written locally, uploaded, and marked complete with ``COMPLETE_MARKER`` written last
(object stores have no atomic rename, so a folder without the marker is never read as finished); its inputs are
downloaded once into ``$RNNPIPE_CACHE/remote/<fingerprint>/`` and found there again by their content. Credentials
and endpoints come from each filesystem's usual environment (``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``,
``GOOGLE_APPLICATION_CREDENTIALS``, fsspec's ``FSSPEC_<PROTOCOL>_<OPTION>``), never from the pipeline config,
which is logged to MLflow.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import shutil
from pathlib import Path
from typing import Any

from .data_cache import atomic_write_bytes, cache_dir
from .errors import ConfigError, StageIOError
from .faults import fault_point

COMPLETE_MARKER = "_COMPLETE"  # written last into a published execution folder on a remote filesystem
# The package that gives fsspec each common protocol: named in the error when it is missing.
PACKAGES = {"s3": "s3fs", "s3a": "s3fs", "gs": "gcsfs", "gcs": "gcsfs", "abfs": "adlfs", "az": "adlfs",
            "hdfs": "pyarrow"}


def is_local(uri: str | Path) -> bool:
    """True for a path or a ``file://`` URI."""
    text = str(uri)
    return "://" not in text or text.startswith("file://")


def resolve(uri: str | Path) -> str:
    """An absolute path for a local location (``file://`` stripped), the URI without a trailing slash otherwise."""
    text = str(uri)
    if is_local(text):
        return str(Path(text.removeprefix("file://")).expanduser().resolve())
    return text.rstrip("/")


def join(uri: str, *parts: str) -> str:
    return os.path.join(uri, *parts) if is_local(uri) else posixpath.join(uri, *parts)


def parent(uri: str) -> str:
    return os.path.dirname(uri) if is_local(uri) else posixpath.dirname(uri.rstrip("/"))


def filesystem(uri: str) -> tuple[Any, str]:
    """fsspec's filesystem for ``uri`` and the path in it; a missing protocol package is a ConfigError naming it."""
    import fsspec

    protocol = uri.split("://", 1)[0]
    try:
        fs, path = fsspec.core.url_to_fs(uri)
    except ImportError as e:
        hint = f"pip install {PACKAGES[protocol]}" if protocol in PACKAGES else \
            f"install fsspec's implementation of {protocol}://"
        raise ConfigError(f"{uri}: no filesystem for {protocol}:// is installed ({e}); {hint}") from None
    except ValueError as e:
        raise ConfigError(f"{uri}: fsspec knows no protocol {protocol}:// ({e})") from None
    fs.invalidate_cache(path)  # another process or machine may have written there since this one listed it
    return fs, path


def exists(uri: str) -> bool:
    if is_local(uri):
        return Path(resolve(uri)).exists()
    fs, path = filesystem(uri)
    return fs.exists(path)


def read_bytes(uri: str) -> bytes:
    """The content of a file; FileNotFoundError when there is none."""
    if is_local(uri):
        return Path(resolve(uri)).read_bytes()
    fs, path = filesystem(uri)
    return fs.cat_file(path)


def write_bytes(uri: str, data: bytes) -> None:
    """Writes a whole file: a local one through a temporary file and a rename, a remote one in one request
    (an object store's PUT is all or nothing)."""
    if is_local(uri):
        atomic_write_bytes(Path(resolve(uri)), data)
        return
    fs, path = filesystem(uri)
    fs.pipe_file(path, data)


def listdir(uri: str) -> list[str]:
    """The names directly under ``uri``; [] when it does not exist."""
    if is_local(uri):
        path = Path(resolve(uri))
        return sorted(p.name for p in path.iterdir()) if path.is_dir() else []
    fs, path = filesystem(uri)
    try:
        return sorted(posixpath.basename(p.rstrip("/")) for p in fs.ls(path, detail=False))
    except FileNotFoundError:
        return []


def remove(uri: str) -> None:
    """Deletes a folder and everything under it; nothing when it is already gone."""
    if is_local(uri):
        shutil.rmtree(resolve(uri), ignore_errors=True)
        return
    fs, path = filesystem(uri)
    try:
        fs.rm(path, recursive=True)
    except FileNotFoundError:
        pass


def drop_folder(path: Path) -> None:
    """Deletes a local folder (an execution's, a copy, a scratch folder) renamed away first: a deletion cut short
    never leaves a partial folder under its name. Nothing when it is already gone."""
    doomed = path.with_name(f".tmp-collected-{path.name}-{os.getpid()}")
    with contextlib.suppress(FileNotFoundError):
        os.replace(path, doomed)
    shutil.rmtree(doomed, ignore_errors=True)


def unpublish(uri: str) -> None:
    """Deletes a published execution folder so that it stops being one first: locally it is renamed away, then
    deleted; remotely its ``COMPLETE_MARKER`` goes before the rest."""
    if is_local(uri):
        drop_folder(Path(resolve(uri)))
        return
    fs, path = filesystem(uri)
    with contextlib.suppress(FileNotFoundError):
        fs.rm(posixpath.join(path, COMPLETE_MARKER))
    remove(uri)


def size(uri: str) -> int:
    """Bytes under a folder (0 when it is gone)."""
    if is_local(uri):
        return sum(p.stat().st_size for p in Path(resolve(uri)).rglob("*") if p.is_file())
    fs, path = filesystem(uri)
    try:
        return int(fs.du(path, total=True))
    except FileNotFoundError:
        return 0


def move(src: str, dst: str) -> None:
    """Moves a folder: a rename on a local filesystem, a copy and a delete on an object store."""
    if is_local(src):
        Path(resolve(dst)).parent.mkdir(parents=True, exist_ok=True)
        os.replace(resolve(src), resolve(dst))
        return
    fs, path = filesystem(src)
    target = filesystem(dst)[1]
    for found in fs.find(path):  # file by file: fsspec's recursive mv also copies the folder's own key
        fs.copy(found, posixpath.join(target, posixpath.relpath(found, path)))
    fs.rm(path, recursive=True)


def upload(local: Path, uri: str, *, last: str | None = None) -> None:
    """Copies the folder ``local`` to ``uri`` file by file, the relative path ``last`` after every other file
    (what makes the folder complete for its reader: TF Serving's ``saved_model.pb``)."""
    fs, root = filesystem(uri)
    files = sorted(p for p in local.rglob("*") if p.is_file())
    for f in sorted(files, key=lambda p: p.relative_to(local).as_posix() == last):
        target = posixpath.join(root, f.relative_to(local).as_posix())
        fault_point("upload", target)
        fs.put_file(str(f), target)  # an OSError names the target: the caller says what was not published


def publish(local: Path, uri: str) -> None:
    """Makes the finished folder ``local`` the folder ``uri``: a rename on a local filesystem, else an upload
    followed by ``COMPLETE_MARKER`` (``local`` then stays, for the caller to keep as a copy or delete)."""
    if is_local(uri):
        os.replace(local, resolve(uri))
        return
    upload(local, uri)
    fault_point("publish.marker", uri)  # a kill here leaves an upload without its marker: never read
    write_bytes(join(uri, COMPLETE_MARKER), b"")


def complete(uri: str) -> bool:
    """Whether a published execution folder is all there: it exists (local) or holds the marker (remote)."""
    return exists(uri if is_local(uri) else join(uri, COMPLETE_MARKER))


def copy_path(key: str) -> Path:
    """Where the local copy of a remote folder with content key ``key`` (its fingerprint) lives."""
    return cache_dir("remote") / key


def keep_copy(local: Path, key: str) -> Path:
    """Moves a folder just published from ``local`` into the copies' cache, so this machine never downloads it."""
    target = copy_path(key)
    if target.exists():
        shutil.rmtree(local)
    else:
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(local, target)
    return target


def local_copy(uri: str, key: str) -> Path:
    """A local folder with what ``uri`` holds: the path itself when local, else a copy downloaded once (through a
    temporary folder and a rename, so a killed download is not taken for a copy) and found again by ``key``, the
    content's fingerprint: a copy is never stale, whatever happened to the remote folder since."""
    if is_local(uri):
        return Path(resolve(uri))
    target = copy_path(key)
    if target.exists():
        return target
    fs, root = filesystem(uri)
    tmp = target.with_name(f".tmp-{target.name}-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        for path in fs.find(root):
            relative = posixpath.relpath(path, root)
            (tmp / relative).parent.mkdir(parents=True, exist_ok=True)
            fs.get_file(path, str(tmp / relative))
        os.replace(tmp, target)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise StageIOError(f"cannot download {uri} into {tmp}: {e}") from e
    return target
