"""Building a pipeline imports no TensorFlow, Keras, Beam, tf.Transform or MLflow: the stages import them when
they execute, so `rnnpipe list`, `config`, `runs` and a fully cached `rnnpipe run` start in about a second
(benchmarks/cli_latency.py measures them)."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("tensorflow", "keras", "apache_beam", "tensorflow_transform", "tensorflow_text", "tfx_bsl", "mlflow",
         "scipy", "sklearn", "matplotlib")

BUILD_ALL = f"""
import json, sys
from rnnpipe.app import applications, load_application
from rnnpipe.config import load_config
built = {{}}
for name in sorted(applications()):
    app = load_application(name)
    pipeline = app.build_pipeline(load_config(app.config_file))
    built[name] = [step.id for step in pipeline.steps]
heavy = sorted({{m.split(".")[0] for m in sys.modules}} & set({HEAVY!r}))
print(json.dumps({{"built": built, "heavy": heavy}}))
"""


def test_building_every_application_imports_no_framework(tmp_path) -> None:
    done = subprocess.run([sys.executable, "-c", BUILD_ALL], cwd=tmp_path, capture_output=True, text=True,
                          check=True)
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert {"sentiment", "forecasting", "textgen", "tagging"} <= set(report["built"])
    assert all(steps[0] == "ExampleGen" and steps[-1] == "Pusher" for steps in report["built"].values())
    assert report["heavy"] == []
