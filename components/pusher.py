"""Pusher: copies a model blessed by the Evaluator (and the InfraValidator, when wired) into the
TF Serving layout ``<serving_dir>/<model>/<version>/``.

The version folder is assembled under a temporary name (TF Serving ignores non-integer names) with
``saved_model.pb`` written last, then renamed; ``models.config`` lists every pushed model.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from rnnpipe.dsl import Artifact, Component, Param
from rnnpipe.serving import next_version, versions, write_models_config

from .infra_validator import WARMUP_FILE


def push(model_dir: Path, base: Path, warmup: Path | None = None) -> tuple[int, Path]:
    base.mkdir(parents=True, exist_ok=True)
    version = next_version(base)
    tmp, final = base / f".tmp-{version}-{os.getpid()}", base / str(version)
    shutil.copytree(model_dir, tmp, ignore=shutil.ignore_patterns("saved_model.pb"))
    if warmup is not None and warmup.exists():  # TF Serving replays these before it serves
        (tmp / "assets.extra").mkdir(exist_ok=True)
        shutil.copy2(warmup, tmp / "assets.extra" / WARMUP_FILE)
    shutil.copy2(model_dir / "saved_model.pb", tmp / "saved_model.pb")
    os.replace(tmp, final)
    return version, final


def run_pusher(inputs: dict[str, Artifact], outputs: dict[str, Artifact], params: dict, ctx: Any) -> dict:
    blessing = json.loads(inputs["blessing"].path("blessing.json").read_text())
    reasons = list(blessing["reasons"])
    infra = inputs.get("infra_blessing")
    if infra is not None:
        infra_blessing = json.loads(infra.path("infra_blessing.json").read_text())
        if not infra_blessing["blessed"]:
            reasons.append(f"InfraValidator: {infra_blessing['reason']}")
    record = outputs["pushed_model"].path("pushed.json")
    if reasons:
        ctx.log("model not blessed, nothing pushed: " + "; ".join(reasons))
        record.write_text(json.dumps({"pushed": False, "reasons": reasons}))
        return {"pushed": 0}
    base = ctx.serving_dir / params["model_name"]
    version, path = push(inputs["model"].path(), base, infra.path(WARMUP_FILE) if infra else None)
    for old in versions(base)[:-params["keep_versions"]]:
        shutil.rmtree(base / str(old), ignore_errors=True)
    write_models_config(ctx.serving_dir)
    record.write_text(json.dumps({"pushed": True, "version": version, "path": str(path)}))
    ctx.tracker.set_tag("rnnpipe.pushed_version", str(version))
    registered = ctx.tracker.register_model(params["model_name"], params["registry_artifact"], version)
    ctx.log(f"pushed version {version} to {path}; MLflow model '{params['model_name']}' version {registered} "
            "is now @champion")
    return {"pushed": 1, "version": version, "registry_version": int(registered)}


class Pusher(Component):
    INPUTS = {"model": "Model", "blessing": "ModelBlessing", "infra_blessing": "InfraBlessing"}
    OPTIONAL_INPUTS = frozenset({"infra_blessing"})
    OUTPUTS = {"pushed_model": "PushedModel"}
    PARAMETERS = {
        "model_name": Param(str),
        "keep_versions": Param(int, 5),
        "registry_artifact": Param(str, "serving_model", doc="the run's artifact path registered in MLflow"),
    }
    executor = staticmethod(run_pusher)
