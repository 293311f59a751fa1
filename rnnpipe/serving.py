"""The TF Serving layout: ``<serving_dir>/<model>/<version>/`` and a ``models.config`` beside them.

Each version folder carries a push record (``PUSH_RECORD``, a file TF Serving ignores) with the fingerprint
of the model it holds, so a re-run can tell that a model is already served instead of pushing a duplicate.
``<serving_dir>`` may be a URI (``s3://``, ``gs://``: rnnpipe/storage.py), which TF Serving reads as well.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import posixpath
import shutil
import tempfile
import time
from pathlib import Path

from . import storage
from .artifacts import InfraBlessing, Model
from .errors import ConfigError
from .faults import fault_point
from .processes import pid_alive

SIGNATURE = "serving_default"  # the signature TF Serving answers when a request names none
ASSETS_EXTRA = "assets.extra"  # TF Serving reads only its warmup file here
PUSH_RECORD = f"{ASSETS_EXTRA}/rnnpipe_push.json"
TMP_PREFIX = ".tmp-"  # a version being assembled: .tmp-<version>-<pid>
MODELS_CONFIG_MODE = 0o644  # TF Serving often runs as another user: it must be able to read the config


def versions(base: str | Path) -> list[int]:
    """Complete versions (integer folders holding saved_model.pb), oldest first."""
    return [v for v in version_folders(base) if storage.exists(storage.join(str(base), str(v), Model.SAVED_MODEL))]


def version_folders(base: str | Path) -> list[int]:
    """Every integer folder, complete or not (a remote push killed before its saved_model.pb leaves one)."""
    return sorted(int(name) for name in storage.listdir(str(base)) if name.isdigit())


def latest_version(base: str | Path) -> int | None:
    found = versions(base)
    return found[-1] if found else None


def latest_champion(base: str | Path | None) -> Path | None:
    """The version folder TF Serving serves now under ``base`` (the last pushed), if any: the folder itself, or
    a local copy of a remote one (named by its version, like the folder)."""
    if not base:
        return None
    version = latest_version(base)
    return None if version is None else local_version(version_location(base, version))


def served_fingerprint(base: str | Path | None) -> tuple[str, str] | None:
    """(location, model fingerprint from its push record) of the version served under ``base``, or None: what a
    cache key needs to know of the champion, read without downloading it ("" for a version pushed before
    records existed)."""
    version = latest_version(base) if base else None
    if version is None:
        return None
    where = version_location(base, version)
    return where, read_push_record(where).get("model_fingerprint", "")


def version_location(base: str | Path, version: int | str) -> str:
    """Where a version is served: ``<base>/<version>``, an absolute path or a URI (never a local copy)."""
    return storage.join(storage.resolve(base), str(version))


def local_version(version: str) -> Path:
    """A local folder with a served version: the folder, or for a remote one a copy downloaded once, kept by
    the served model's fingerprint (a version folder never changes: numbers are not reused)."""
    if storage.is_local(version):
        return Path(storage.resolve(version))
    return storage.local_copy(version, served_key(version, read_push_record(version).get("model_fingerprint", "")))


def served_key(version: str, fingerprint: str) -> str:
    """The copies' cache key of a remote served version: its location and model, ending in its version number."""
    where = hashlib.sha256(f"{storage.resolve(version)}\0{fingerprint}".encode()).hexdigest()[:24]
    return f"served/{where}/{posixpath.basename(storage.resolve(version))}"


ROLLED_BACK = ".rolled_back"  # not an integer: TF Serving ignores it


def warmup_path(version_dir: Path) -> Path:
    """Where TF Serving looks for the warmup requests it replays before serving a version."""
    return version_dir / ASSETS_EXTRA / InfraBlessing.WARMUP_FILE


def parked(base: str | Path) -> list[tuple[int, str]]:
    """(version, folder) of the versions rolled back under ``.rolled_back/`` (named ``<version>-<time>``)."""
    folder = storage.join(str(base), ROLLED_BACK)
    found = [(name.split("-")[0], storage.join(folder, name)) for name in storage.listdir(folder)]
    return [(int(v), p) for v, p in found if v.isdigit()]


def next_version(base: str | Path) -> int:
    """One above every version ever pushed, rolled-back and unfinished ones included: TF Serving never sees a
    number reused."""
    return max([0, *version_folders(base), *(v for v, _ in parked(base))]) + 1


def rollback(base: str | Path, target: int | None = None) -> tuple[int, list[int]]:
    """Makes ``target`` (default: the one before the latest) the served version again.

    The newer versions are parked under ``.rolled_back/`` (renamed, or on a remote filesystem copied and then
    deleted: not lost), so TF Serving, which serves the highest integer folder, goes back to ``target``. Returns
    (target, parked versions).
    """
    found = versions(base)
    if target is None:
        if len(found) < 2:
            raise ConfigError(f"{base}: nothing to roll back to (versions: {found or 'none'})")
        target = found[-2]
    if target not in found:
        raise ConfigError(f"{base}: no version {target} to roll back to; versions: {found or 'none'}")
    parked = [v for v in found if v > target]
    stamp = int(time.time())
    for v in parked:
        storage.move(storage.join(str(base), str(v)), storage.join(str(base), ROLLED_BACK, f"{v}-{stamp}"))
    return target, parked


def write_models_config(serving_dir: str | Path, container_root: str = "/models") -> str:
    """TF Serving's --model_config_file for every model under ``serving_dir`` (as mounted at container_root).

    Written whole (a temporary file renamed, or one PUT on an object store), so TF Serving, which polls it,
    never reads half a file; a failed write leaves the previous config as it was.
    """
    entries = []
    for model in storage.listdir(str(serving_dir)):
        if versions(storage.join(str(serving_dir), model)):
            entries.append(f'  config {{\n    name: "{model}"\n    base_path: "{container_root}/{model}"\n'
                           f'    model_platform: "tensorflow"\n  }}\n')
    path = storage.join(str(serving_dir), "models.config")
    text = "model_config_list {\n" + "".join(entries) + "}\n"
    if not storage.is_local(path):
        fault_point("Pusher.models_config", path)
        storage.write_bytes(path, text.encode())
        return path
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=serving_dir, prefix=".models.config.", suffix=".tmp")
        with os.fdopen(fd, "w") as fh:
            fault_point("Pusher.models_config", path)
            fh.write(text)
        os.chmod(tmp, MODELS_CONFIG_MODE)  # mkstemp creates 0600
        os.replace(tmp, path)
    except OSError as e:  # name the config, not the temporary file, which is gone
        raise OSError(e.errno, e.strerror, str(path)) from e
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
    return path


def read_push_record(version_dir: str | Path) -> dict:
    """The push record of a version folder; {} for one pushed before records existed, or unreadable."""
    try:
        return json.loads(storage.read_bytes(storage.join(str(version_dir), PUSH_RECORD)))
    except (OSError, ValueError):
        return {}


def find_pushed(base: str | Path, fingerprint: str) -> tuple[int, bool] | None:
    """(version, rolled back?) of the newest version folder under ``base`` that holds the model with
    ``fingerprint``, served or parked under ``.rolled_back/``; None if it was never pushed there."""
    served = [(v, storage.join(str(base), str(v)), False) for v in versions(base)]
    rolled = [(v, p, True) for v, p in parked(base) if storage.exists(storage.join(p, Model.SAVED_MODEL))]
    for version, folder, rolled_back in sorted(served + rolled, reverse=True):
        if read_push_record(folder).get("model_fingerprint") == fingerprint:
            return version, rolled_back
    return None


def remove_stale_tmp(base: Path) -> list[str]:
    """Removes ``.tmp-<version>-<pid>`` folders left under ``base`` by a killed or failed push (their process
    is gone, or is this one); returns their names. A folder of a live push elsewhere is left alone."""
    removed = []
    for tmp in sorted(base.glob(f"{TMP_PREFIX}*")) if base.is_dir() else []:
        pid = tmp.name.rsplit("-", 1)[-1]
        if pid.isdigit() and int(pid) != os.getpid() and pid_alive(int(pid)):
            continue
        shutil.rmtree(tmp, ignore_errors=True)
        removed.append(tmp.name)
    return removed
