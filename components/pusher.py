"""Pusher: copies a model blessed by the Evaluator (and the InfraValidator, when wired) into the
TF Serving layout ``<serving_dir>/<model>/<version>/``.

The version folder is assembled under a temporary name (TF Serving ignores non-integer names) with its push
record (the model's fingerprint) and ``saved_model.pb`` written last, then renamed; ``models.config`` lists
every pushed model. Pushes are idempotent: a model already served as the latest version is not copied again,
only what is missing (the registry entry, the @champion alias, ``models.config``) is completed, and a cache
hit is reused only while its version is still served and registered (``Pusher.verify_cached``). The registry
entry is an MLflow pyfunc model wrapping the served version (``rnnpipe/mlflow_model.py``), so
``mlflow.pyfunc.load_model("models:/<name>@champion")`` and ``mlflow models serve`` work on it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from rnnpipe import storage
from rnnpipe.artifacts import InfraBlessing, Model, ModelBlessing, PushedModel
from rnnpipe.context import ExecutionContext
from rnnpipe.dsl import Artifact, Component, Param
from rnnpipe.errors import RnnpipeError, StageIOError
from rnnpipe.faults import fault_point
from rnnpipe.fingerprint import fingerprint_dir
from rnnpipe.serving import (
    PUSH_RECORD,
    ROLLED_BACK,
    TMP_PREFIX,
    find_pushed,
    local_version,
    next_version,
    read_push_record,
    remove_stale_tmp,
    served_key,
    version_folders,
    version_location,
    versions,
    warmup_path,
    write_models_config,
)

from .infra_validator import read_warmup


def _copy_tree(src: Path, dst: Path, skip: str) -> None:
    """Copies ``src`` into ``dst`` file by file (not shutil.copytree: its shutil.Error lists every failure
    and names none clearly), so an OSError names the file it could not write."""
    for path in sorted(src.rglob("*")):
        target = dst / path.relative_to(src)
        if path.is_dir():
            target.mkdir(parents=True, exist_ok=True)
        elif path.relative_to(src).as_posix() != skip:
            fault_point("Pusher.copy", target)
            shutil.copy2(path, target)


def _assemble(model_dir: Path, tmp: Path, fingerprint: str, warmup: Path | None, data_source: dict | None,
              request_defaults: dict | None) -> None:
    """A version folder in ``tmp``: the model, the warmup requests and the push record, saved_model.pb last."""
    tmp.mkdir()
    _copy_tree(model_dir, tmp, skip=Model.SAVED_MODEL)
    (tmp / PUSH_RECORD).parent.mkdir(exist_ok=True)
    if warmup is not None and warmup.exists():  # TF Serving replays these before it serves
        fault_point("Pusher.copy", warmup_path(tmp))
        shutil.copy2(warmup, warmup_path(tmp))
    (tmp / PUSH_RECORD).write_text(json.dumps({
        "model_fingerprint": fingerprint, "source": str(model_dir), "data_source": data_source,
        "request_defaults": request_defaults or {}, "pushed_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}))
    fault_point("Pusher.copy", tmp / Model.SAVED_MODEL)
    shutil.copy2(model_dir / Model.SAVED_MODEL, tmp / Model.SAVED_MODEL)  # last: TF Serving's "complete" mark


def push(model_dir: Path, base: str, fingerprint: str, warmup: Path | None = None, data_source: dict | None = None,
         request_defaults: dict | None = None, staging: Path | None = None) -> tuple[int, str]:
    """Copies ``model_dir`` in as the next version under ``base``; on failure no version and no temporary
    folder is left behind (raises StageIOError naming the folder).

    A local ``base`` gets the version assembled under a temporary name beside it and renamed. A remote one (no
    rename there) gets it assembled in ``staging`` and uploaded with saved_model.pb last: TF Serving loads a
    version only once that file is there, and ``versions`` counts only folders that have it."""
    version = next_version(base)
    final = version_location(base, version)
    remote = not storage.is_local(base)
    tmp = (staging or Path(tempfile.mkdtemp())) / str(version) if remote \
        else Path(base) / f"{TMP_PREFIX}{version}-{os.getpid()}"
    if remote:  # a killed attempt may have left its assembly in the scratch space, which outlives it
        shutil.rmtree(tmp, ignore_errors=True)
    try:
        _assemble(model_dir, tmp, fingerprint, warmup, data_source, request_defaults)
        if remote:
            storage.upload(tmp, final, last=Model.SAVED_MODEL)
        else:
            os.replace(tmp, final)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        if remote:  # what was uploaded has no saved_model.pb, so nothing loads it; removed when reachable
            with contextlib.suppress(Exception):
                storage.remove(final)
        raise StageIOError(f"Pusher: cannot write version {version} to {base}: {e.strerror or e} "
                           f"({e.filename or tmp}); {StageIOError.hint(e, 'serving_dir')}. Nothing was pushed.") from e
    if remote:  # kept for the registry entry and the champion; without it, they download the version
        with contextlib.suppress(OSError):
            storage.keep_copy(tmp, served_key(final, fingerprint))
        shutil.rmtree(tmp, ignore_errors=True)
    fault_point("Pusher.renamed", final)  # a kill here: the re-run finds the version and completes the rest
    return version, final


def run_pusher(inputs: dict[str, Artifact], outputs: dict[str, Artifact], params: dict,
               ctx: ExecutionContext) -> dict:
    blessing = ModelBlessing.read(inputs["blessing"])
    reasons = list(blessing.reasons) or ([] if blessing.blessed else ["the Evaluator did not bless the model"])
    infra = inputs.get("infra_blessing")
    if infra is not None:
        infra_blessing = InfraBlessing.read(infra)
        if not infra_blessing.blessed:
            reasons += [f"InfraValidator: {r}" for r in infra_blessing.reasons or ["not blessed"]]
    record = outputs["pushed_model"]
    if reasons:
        ctx.log("model not blessed, nothing pushed: " + "; ".join(reasons))
        PushedModel.write_not_pushed(record, reasons)
        return {"pushed": 0}

    name, base = params["model_name"], _base(params)
    model = inputs["model"]
    fingerprint = model.fingerprint or fingerprint_dir(model.path())
    if storage.is_local(base):
        try:
            Path(base).mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise StageIOError(f"Pusher: cannot create {base}: {e.strerror or e}; point serving_dir at a writable "
                               "location. Nothing was pushed.") from e
        if stale := remove_stale_tmp(Path(base)):
            ctx.log(f"removed {len(stale)} unfinished push(es) left in {base}: {', '.join(stale)}")
    elif unfinished := sorted(set(version_folders(base)) - set(versions(base))):
        # Not deleted: from here a push killed midway and one still uploading from another machine look alike.
        ctx.log(f"version folder(s) {unfinished} under {base} have no {Model.SAVED_MODEL} (a push killed midway, "
                "or one in progress elsewhere): TF Serving does not load them; delete them once no push is running")

    found = find_pushed(base, fingerprint)
    if found is not None and (found[1] or found[0] != versions(base)[-1]):
        version, rolled_back = found
        where = (f"was rolled back (it is kept under {storage.join(base, ROLLED_BACK)})" if rolled_back else
                 f"is older than the served version {versions(base)[-1]} (`rnnpipe rollback {name} {version}` "
                 "serves it again)")
        reason = f"this model is already version {version} under {base}, which {where}: not pushed again"
        ctx.log(reason)
        PushedModel.write_not_pushed(record, [reason], same_as_version=version)
        return {"pushed": 0, "same_as_version": version}
    if found is not None:
        version, path = found[0], version_location(base, found[0])
        ctx.log(f"this model is already served as version {version} in {base}: not pushed again")
    else:
        version, path = push(model.path(), base, fingerprint, InfraBlessing.warmup_path(infra) if infra else None,
                             blessing.details.get("data_source"), params["request_defaults"], ctx.scratch_dir)
    for old in versions(base)[:-params["keep_versions"]]:
        storage.remove(storage.join(base, str(old)))
    write_models_config(storage.parent(base))
    ctx.tracker.set_tag("rnnpipe.pushed_version", str(version))
    registered = ctx.tracker.register_model(name, _registry_model(local_version(path), params, ctx), version,
                                            serving_path=base, fingerprint=fingerprint)
    PushedModel.write_pushed(record, version=version, path=path, model_name=name, model_fingerprint=fingerprint,
                             registry_version=int(registered))
    ctx.log(f"{'pushed' if found is None else 'serving'} version {version} at {path}; MLflow model '{name}' "
            f"version {registered} is now @champion")
    return {"pushed": 1, "version": version, "registry_version": int(registered),
            "already_served": int(found is not None), "served_at": str(base)}


def _registry_model(version_dir: Path, params: dict, ctx: Any) -> Any:
    """What the registry entry of this push holds: an MLflow pyfunc model wrapping the served version's
    ``serving_default`` signature (``models:/<name>@champion`` loads and serves with MLflow), logged only if
    the registry lacks the entry; the run's raw ``registry_artifact`` files if the folder has no such signature."""
    from rnnpipe import mlflow_model

    spec = mlflow_model.describe(version_dir)
    if spec is None:
        ctx.log(f"{version_dir} has no '{mlflow_model.SIGNATURE}' signature: the registry entry holds the run's "
                f"'{params['registry_artifact']}' files, which mlflow.pyfunc cannot load")
        return params["registry_artifact"]
    defaults = params["request_defaults"]

    def log(tracker: Any) -> str:
        example = mlflow_model.input_example(_warmup_inputs(warmup_path(version_dir)), spec)
        return tracker.log_mlflow_model(
            lambda path, model: mlflow_model.save(path, version_dir, spec, defaults, example, model),
            name=params["model_name"])

    return log


def _warmup_inputs(path: Path) -> list[dict[str, Any]]:
    """The inputs of the InfraValidator's warmup requests (real test examples), as arrays; [] without them."""
    if not path.exists():
        return []
    import tensorflow as tf

    return [{name: tf.make_ndarray(proto) for name, proto in log.predict_log.request.inputs.items()}
            for log in read_warmup(path)]


def _base(params: dict) -> str:
    return storage.join(storage.resolve(params["serving_dir"]), params["model_name"])


def verify_push(record: dict, name: str, base: str, tracker: Any) -> str | None:
    """Why a recorded push is no longer in effect (version folder gone or replaced, registry entry missing),
    or None while it is. Reads two small files and asks the registry once: no TensorFlow."""
    if not record.get("pushed"):
        return None  # nothing was pushed: nothing outside the pipeline root to check
    version, path = record["version"], record["path"]
    if storage.parent(path) != base:
        return f"version {version} was pushed to {storage.parent(path)}, not to {base}"
    if not storage.exists(storage.join(path, Model.SAVED_MODEL)):
        return f"version {version} is no longer in {base}"
    if read_push_record(path).get("model_fingerprint") != record.get("model_fingerprint"):
        return f"{path} holds a different model than the one pushed"
    if tracker.registry_version(name, version, str(base), record.get("model_fingerprint")) is None:
        return f"the MLflow registry has no version of '{name}' pushed as serving version {version}"
    return None


class Pusher(Component):
    INPUTS = {"model": Model.TYPE, "blessing": ModelBlessing.TYPE, "infra_blessing": InfraBlessing.TYPE}
    OPTIONAL_INPUTS = frozenset({"infra_blessing"})
    OUTPUTS = {"pushed_model": PushedModel.TYPE}
    PARAMETERS = {
        "model_name": Param(str),
        "serving_dir": Param(str, doc="where TF Serving's model folders live (absolute: part of the cache key)"),
        "keep_versions": Param(int, 5, doc="versions kept in the serving folder", min=1),
        "registry_artifact": Param(str, Model.MLFLOW_PATH, doc="the run's artifact path registered in MLflow when "
                                                            "the model has no serving_default signature"),
        "request_defaults": Param(dict, {}, doc="the MLflow model's values for signature inputs a request leaves "
                                              "out (as the config's infra_validator.request_defaults)"),
    }
    executor = staticmethod(run_pusher)

    def verify_cached(self, outputs: dict[str, Artifact], ctx: Any) -> str | None:
        try:
            record = PushedModel.read(outputs["pushed_model"])
        except (OSError, RnnpipeError) as e:
            return f"its record is unreadable ({e})"
        return verify_push(record, self.params["model_name"], _base(self.params), ctx.tracker)
