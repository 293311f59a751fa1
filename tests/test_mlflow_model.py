"""The registered MLflow model of a push (rnnpipe/mlflow_model.py): a tiny SavedModel pushed by the real Pusher
through the runner, then loaded with ``mlflow.pyfunc`` in a fresh process and served by ``mlflow models serve``;
both answer what the SavedModel's ``serving_default`` answers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import mlflow_store
import numpy as np
import pytest
from toy_components import toy_config

from rnnpipe.components.infra_validator import WARMUP_FILE, warmup_requests
from rnnpipe.components.pusher import Pusher
from rnnpipe.dsl import Component, Pipeline
from rnnpipe.processes import free_ports

# Two rows of raw inputs; `scale` is left out: it comes from the Pusher's request_defaults.
ROWS = {"text": ["Ab c", "déjà vu"], "window": [[1.0, 2.0, 3.0], [0.5, 0.0, -1.0]]}
DEFAULTS = {"scale": 2.0}
EXAMPLES = [{"text": "first example", "window": [0.0, 1.0, 2.0], "scale": 2.0},
            {"text": "second", "window": [3.0, 2.0, 1.0], "scale": 2.0}]

LOAD = """
import json, sys
import mlflow, pandas as pd
mlflow.set_tracking_uri(sys.argv[1])
model = mlflow.pyfunc.load_model("models:/demo@champion")
out = model.predict(pd.DataFrame(json.loads(sys.argv[2])))
print(json.dumps({k: [v.tolist() if hasattr(v, "tolist") else v for v in out[k]] for k in out.columns}))
"""


# The application e2e tests' check (pyfunc_and_saved_model): the registered pyfunc and the SavedModel it wraps,
# loaded side by side in one fresh process, on the same raw rows.
COMPARE = """
import json, sys
import mlflow, pandas as pd, tensorflow as tf
uri, name, rows_path = sys.argv[1:4]
rows = json.load(open(rows_path, encoding="utf-8"))
mlflow.set_tracking_uri(uri)
entry = mlflow.MlflowClient().get_model_version_by_alias(name, "champion")
model = mlflow.pyfunc.load_model(f"models:/{name}@champion")
served = model.predict(pd.DataFrame(rows))
fn = tf.saved_model.load(f"{entry.tags['rnnpipe.serving_path']}/{entry.tags['rnnpipe.serving_version']}"
                         ).signatures["serving_default"]
specs, n = fn.structured_input_signature[1], len(next(iter(rows.values())))
inputs = {**{k: [v] * n for k, v in model.model_config["request_defaults"].items()}, **rows}
direct = fn(**{k: tf.constant(inputs[k], spec.dtype) for k, spec in specs.items()})
plain = lambda v: [plain(x) for x in v] if isinstance(v, list) else v.decode() if isinstance(v, bytes) else v
print(json.dumps({"pyfunc": {k: plain(served[k].tolist()) for k in served.columns},
                  "saved_model": {k: plain(v.numpy().tolist()) for k, v in direct.items()},
                  "request_defaults": model.model_config["request_defaults"]}))
"""


def pyfunc_and_saved_model(work: Path, name: str, rows: dict) -> dict:
    """In a fresh process: ``models:/<name>@champion`` loaded with ``mlflow.pyfunc`` predicts on ``rows`` (the
    DataFrame's columns) and the champion's served version folder's ``serving_default`` answers the same rows
    (plus the logged request defaults). Returns {"pyfunc": columns, "saved_model": outputs, "request_defaults"}."""
    path = work / f"{name}_pyfunc_rows.json"
    path.write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    proc = subprocess.run([sys.executable, "-c", COMPARE, f"sqlite:///{work / 'mlflow.db'}", name, str(path)],
                          capture_output=True, text=True, timeout=300, cwd=work)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _trainer(inputs, outputs, params, ctx):
    import tensorflow as tf

    class Demo(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text"),
                                      tf.TensorSpec([None, 3], tf.float32, name="window"),
                                      tf.TensorSpec([None], tf.float32, name="scale")])
        def serve(self, text, window, scale):
            chars = tf.cast(tf.strings.length(text, unit="UTF8_CHAR"), tf.float32)
            return {"score": tf.reduce_sum(window, axis=1) * scale + chars,
                    "scaled": window * scale[:, None],
                    "upper": tf.strings.upper(text),
                    "chars": tf.cast(chars, tf.int32)}

    module = Demo()
    tf.saved_model.save(module, str(outputs["model"].path()), signatures={"serving_default": module.serve})


def _gate(inputs, outputs, params, ctx):
    outputs["blessing"].path("blessing.json").write_text(json.dumps({"blessed": True, "reasons": []}))


def _infra(inputs, outputs, params, ctx):
    """Writes the warmup requests as the InfraValidator does (its own functions), from EXAMPLES."""
    import tensorflow as tf
    from tensorflow.core.protobuf import saved_model_pb2

    saved = saved_model_pb2.SavedModel.FromString(inputs["model"].path("saved_model.pb").read_bytes())
    specs = dict(saved.meta_graphs[0].signature_def["serving_default"].inputs)
    out = outputs["infra_blessing"].path()
    with tf.io.TFRecordWriter(str(out / WARMUP_FILE)) as writer:
        for log in warmup_requests(EXAMPLES, specs, "demo"):
            writer.write(log.SerializeToString())
    (out / "infra_blessing.json").write_text(json.dumps({"blessed": True}))


class DemoTrainer(Component):
    OUTPUTS = {"model": "Model"}
    executor = staticmethod(_trainer)


class DemoGate(Component):
    INPUTS = {"model": "Model"}
    OUTPUTS = {"blessing": "ModelBlessing"}
    executor = staticmethod(_gate)


class DemoInfra(Component):
    INPUTS = {"model": "Model"}
    OUTPUTS = {"infra_blessing": "InfraBlessing"}
    executor = staticmethod(_infra)


@pytest.fixture(scope="module")
def pushed(tmp_path_factory: pytest.TempPathFactory) -> dict:
    from rnnpipe.runner import run_pipeline

    work = tmp_path_factory.mktemp("mlflow_model")
    mp = pytest.MonkeyPatch()
    mp.chdir(work)
    mlflow_store.seed(work)
    mp.delenv("MLFLOW_TRACKING_URI", raising=False)
    model = DemoTrainer()
    gate, infra = DemoGate(model=model), DemoInfra(model=model)
    pusher = Pusher(model=model, blessing=gate, infra_blessing=infra, model_name="demo", request_defaults=DEFAULTS,
                    serving_dir=str(work / "serving"))
    result = run_pipeline(Pipeline("demo", [model, gate, infra, pusher]), toy_config(work))
    assert result.metrics["Pusher"]["version"] == 1
    yield {"work": work, "uri": f"sqlite:///{work / 'mlflow.db'}", "version_dir": work / "serving" / "demo" / "1"}
    mp.undo()


def expected(version_dir: Path, rows: dict) -> dict:
    """What the SavedModel's serving_default answers, as the pyfunc's columns (strings decoded, rows as lists)."""
    import tensorflow as tf

    fn = tf.saved_model.load(str(version_dir)).signatures["serving_default"]
    out = fn(text=tf.constant(rows["text"]), window=tf.constant(rows["window"], tf.float32),
             scale=tf.constant(rows.get("scale", [DEFAULTS["scale"]] * len(rows["text"])), tf.float32))
    return {k: [x.decode() if isinstance(x, bytes) else x for x in v.numpy().tolist()] for k, v in out.items()}


def assert_same(got: dict, want: dict) -> None:
    assert sorted(got) == sorted(want)
    for name, values in want.items():
        first = values
        while isinstance(first, list) and first:
            first = first[0]
        if isinstance(first, str):
            assert got[name] == values, name
        else:
            np.testing.assert_allclose(np.asarray(got[name], dtype=float), np.asarray(values, dtype=float),
                                       rtol=1e-6, atol=1e-7, err_msg=name)


def test_registered_model_loads_in_a_fresh_process_and_is_served_by_mlflow(pushed: dict) -> None:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(pushed["uri"])
    entry = client.get_model_version_by_alias("demo", "champion")
    assert entry.source.startswith("models:/m-") and entry.tags["rnnpipe.serving_version"] == "1"
    assert client.get_logged_model(entry.source.removeprefix("models:/")).source_run_id == entry.run_id

    # The venv's bin first on PATH, as an activated venv has it: the server runs `uvicorn` from PATH.
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "MLFLOW_TRACKING_URI": pushed["uri"], "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    (port,), log = free_ports(1), pushed["work"] / "serve.log"
    with log.open("wb") as out:  # a file, not a pipe nobody reads while the server runs
        server = subprocess.Popen([str(bin_dir / "mlflow"), "models", "serve", "-m", "models:/demo@champion",
                                   "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port)],
                                  env=env, cwd=pushed["work"], stdout=out, stderr=subprocess.STDOUT,
                                  start_new_session=True)
    try:
        # While the server starts: a fresh process loads the registered model and predicts.
        with_scale = {**ROWS, "scale": [0.5, 3.0]}
        loaded = subprocess.run([sys.executable, "-c", LOAD, pushed["uri"], json.dumps(with_scale)],
                                capture_output=True, text=True, timeout=300, cwd=pushed["work"])
        assert loaded.returncode == 0, loaded.stderr[-3000:]
        assert_same(json.loads(loaded.stdout.strip().splitlines()[-1]), expected(pushed["version_dir"], with_scale))

        rows = [list(row) for row in zip(ROWS["text"], ROWS["window"], strict=True)]
        answer = post_when_up(f"http://127.0.0.1:{port}",
                              {"dataframe_split": {"columns": ["text", "window"], "data": rows}}, server, log)
        got = {k: [row[k] for row in answer["predictions"]] for k in answer["predictions"][0]}
        assert_same(got, expected(pushed["version_dir"], ROWS))  # scale from the recorded defaults
    finally:
        stop(server)


def stop(server: subprocess.Popen) -> None:
    """Ends the server's process group (the CLI and the uvicorn it started), SIGKILL if SIGTERM is not enough."""
    for sig, wait_s in ((signal.SIGTERM, 20), (signal.SIGKILL, 20)):
        try:
            os.killpg(server.pid, sig)
        except ProcessLookupError:
            break
        try:
            server.wait(timeout=wait_s)
            break
        except subprocess.TimeoutExpired:
            continue


def post_when_up(url: str, body: dict, server: subprocess.Popen, log: Path, timeout_s: float = 240) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert server.poll() is None, f"mlflow models serve exited: {log.read_text()[-3000:]}"
        try:
            with urllib.request.urlopen(f"{url}/ping", timeout=5) as ping:
                if ping.status == 200:
                    break
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.5)
    else:
        pytest.fail(f"mlflow models serve did not answer /ping within {timeout_s}s: {log.read_text()[-3000:]}")
    request = urllib.request.Request(f"{url}/invocations", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


def test_signature_example_and_clear_errors(pushed: dict) -> None:
    import mlflow
    import pandas as pd
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    client = MlflowClient(pushed["uri"])
    logged = client.get_logged_model(client.get_model_version_by_alias("demo", "champion").source.split("/")[-1])
    model = mlflow.pyfunc.load_model(logged.artifact_location)  # the alias itself: the fresh-process test
    schema = model.metadata.get_input_schema()
    assert schema.input_names() == ["scale", "text", "window"]
    assert [c.required for c in schema.inputs] == [False, True, True]  # scale has a default
    assert model.metadata.get_output_schema().input_names() == ["chars", "scaled", "score", "upper"]
    example = model.input_example  # the warmup requests: real examples
    assert example["text"].tolist() == ["first example", "second"]
    assert [list(w) for w in example["window"]] == [[0.0, 1.0, 2.0], [3.0, 2.0, 1.0]]
    assert_same({k: list(v) for k, v in model.predict(example).items()},
                expected(pushed["version_dir"], {k: list(example[k]) for k in ("text", "window", "scale")}))

    # Defaults can be overridden when loading: `scale` 1.0 instead of the pushed 2.0.
    other = mlflow.pyfunc.load_model(logged.artifact_location, model_config={"request_defaults": {"scale": 1.0}})
    assert_same({k: list(v) for k, v in other.predict(pd.DataFrame(ROWS)).items()},
                expected(pushed["version_dir"], {**ROWS, "scale": [1.0, 1.0]}))

    with pytest.raises(MlflowException, match="'window'"):
        model.predict(pd.DataFrame({"text": ["a"], "window": [[1.0, 2.0]]}))  # two values, not three
    with pytest.raises(MlflowException, match="text"):
        model.predict(pd.DataFrame({"window": [[1.0, 2.0, 3.0]]}))
