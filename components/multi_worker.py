"""Multi-worker training on localhost: the Trainer's executor runs in N fresh processes joined by TF_CONFIG.

``distribution.workers: N`` (``rnnpipe run APP --workers N``) trains under ``MultiWorkerMirroredStrategy``
with N worker processes on this machine. They are fresh processes, the chief among them, because TensorFlow
configures collective ops only before its runtime starts, and the pipeline's process ran Transform already.

- Task 0 is the chief: it writes the step's real outputs and its scratch folder (the epoch backup), and
  its MLflow calls are replayed into the step's tracker when it ends, so a cache hit replays them as usual.
- The other workers write their outputs (they must save too: saving is part of the collective program)
  to ``<scratch>/multi_worker/worker-<i>/``, log nothing, and share the chief's scratch folder read-only:
  all restore the chief's epoch backup, so that all start from the same epoch; only the chief writes it.
- A worker that fails or is killed stops the others: the Trainer fails naming it, nothing is exported,
  and the next run resumes from the chief's last finished epoch.

Each process is ``python -m rnnpipe.components.multi_worker SPEC``, SPEC a JSON file with the executor's reference,
its inputs, outputs, parameters, context and the worker's ``TF_CONFIG``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from rnnpipe import errors
from rnnpipe.context import ExecutionContext
from rnnpipe.dsl import Artifact, Ref
from rnnpipe.processes import free_ports

CALLS = "tracker_calls.json"  # the chief's MLflow calls, replayed by the pipeline's process
RESULT = "result.json"
ERROR = "error.json"  # a worker's RnnpipeError: [class name, message]


def run_on_workers(executor: str, inputs: dict[str, Artifact], outputs: dict[str, Artifact], params: dict,
                   ctx: ExecutionContext) -> dict:
    """Runs ``executor`` ('module:function', an executor) on ``ctx.workers`` localhost processes under
    MultiWorkerMirroredStrategy; returns the chief's metrics after replaying its MLflow calls into ``ctx``."""
    root = ctx.scratch_dir / "multi_worker"
    shutil.rmtree(root, ignore_errors=True)  # a failed attempt's worker outputs (the backup is beside it)
    root.mkdir(parents=True)
    cluster = {"worker": [f"localhost:{port}" for port in free_ports(ctx.workers)]}
    processes = []
    for index in range(ctx.workers):
        chief = index == 0
        where = root / f"worker-{index}"
        where.mkdir(exist_ok=True)
        spec = {
            "executor": executor, "params": params,
            "inputs": {k: asdict(a) for k, a in inputs.items()},
            "outputs": {k: asdict(a) if chief else {**asdict(a), "uri": str(where / k)} for k, a in outputs.items()},
            "context": {"pipeline": ctx.pipeline, "step": ctx.step, "execution_id": ctx.execution_id,
                        "scratch_dir": str(ctx.scratch_dir), "beam_args": ctx.beam_args, "workers": ctx.workers},
            "tf_config": {"cluster": cluster, "task": {"type": "worker", "index": index}},
        }
        (where / "spec.json").write_text(json.dumps(spec))
        # The chief's output (Keras' epoch lines) goes to the pipeline's console; the others' to their logs.
        log = None if chief else open(where / "output.log", "w")  # noqa: SIM115 - closed with the process
        processes.append((subprocess.Popen(
            [sys.executable, "-m", __name__, str(where / "spec.json")], stdout=log,
            stderr=None if chief else subprocess.STDOUT,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}), log))
    ctx.log(f"training on {ctx.workers} localhost workers ({', '.join(cluster['worker'])}); worker logs in {root}")
    try:
        failed = _wait(processes)
    finally:
        for process, log in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
            if log is not None:
                log.close()
    if failed is not None:
        index, code = failed
        error = root / f"worker-{index}" / ERROR
        if error.is_file():  # the executor's own message (bad data, a loss that became NaN...)
            name, message = json.loads(error.read_text())
            raise getattr(errors, name, errors.RnnpipeError)(message)
        how = f"was killed by {signal.Signals(-code).name}" if code < 0 else f"exited with status {code}"
        log_file = root / f"worker-{index}" / "output.log"
        tail = "" if index == 0 else "\n  " + "\n  ".join(log_file.read_text(errors="replace").splitlines()[-5:])
        where = "the output above" if index == 0 else log_file
        raise errors.RnnpipeError(
            f"{ctx.step}: worker {index} of {ctx.workers} {how}; the other workers were stopped and nothing was "
            f"exported. Its log: {where}. Run again to resume from the last finished epoch.{tail}")
    chief = root / "worker-0"
    for method, args in json.loads((chief / CALLS).read_text()):
        getattr(ctx.tracker, method)(*args)
    return json.loads((chief / RESULT).read_text())


def _wait(processes: list[tuple[subprocess.Popen, Any]]) -> tuple[int, int] | None:
    """Waits for every process; at the first that fails, returns (its index, its exit status) at once: the
    others would wait for it in their collectives forever."""
    while True:
        codes = [process.poll() for process, _ in processes]
        for index, code in enumerate(codes):
            if code not in (None, 0):
                return index, code
        if all(code == 0 for code in codes):
            return None
        time.sleep(0.2)


class DeferredTracker:
    """The tracker of a worker process: keeps the MLflow calls for the pipeline's process to replay (the
    chief's) or to drop (the others'), since only the pipeline's process holds the run's record."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, list]] = []

    def log_metric(self, key: str, value: float, step: int | None = None) -> None:
        self.calls.append(("log_metric", [key, float(value), step]))

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        self.calls.append(("log_metrics", [{k: float(v) for k, v in metrics.items()}, step]))

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        self.calls.append(("log_artifact", [str(path), artifact_path]))

    def set_tag(self, key: str, value: Any) -> None:
        self.calls.append(("set_tag", [key, value]))


def worker_main(spec_path: str) -> int:
    """One worker process: runs the executor of ``spec_path`` under its TF_CONFIG, before TensorFlow starts."""
    spec = json.loads(Path(spec_path).read_text())
    os.environ["TF_CONFIG"] = json.dumps(spec["tf_config"])
    c, tracker = spec["context"], DeferredTracker()
    ctx = ExecutionContext(c["pipeline"], c["step"], c["execution_id"], Path(c["scratch_dir"]), c["beam_args"],
                           "multi_worker", tracker, c["workers"], spec["tf_config"]["task"]["index"])
    inputs = {k: Artifact(**a) for k, a in spec["inputs"].items()}
    outputs = {k: Artifact(**a) for k, a in spec["outputs"].items()}
    for artifact in outputs.values():
        artifact.path().mkdir(parents=True, exist_ok=True)
    report = Path(spec_path).parent
    try:
        metrics = Ref(spec["executor"]).resolve()(inputs, outputs, spec["params"], ctx) or {}
    except errors.RnnpipeError as e:  # the pipeline's process raises it again, as if it were its own
        (report / ERROR).write_text(json.dumps([type(e).__name__, str(e)]))
        return 1
    if ctx.chief:
        (report / CALLS).write_text(json.dumps(tracker.calls))
        (report / RESULT).write_text(json.dumps(metrics))
    return 0


if __name__ == "__main__":
    from rnnpipe.cli import setup_logging

    setup_logging(verbose=os.environ.get("TF_CPP_MIN_LOG_LEVEL") == "0")  # as the CLI that started this process
    sys.exit(worker_main(sys.argv[1]))
