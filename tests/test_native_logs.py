"""TensorFlow's native start-up lines are filtered from stderr; everything else written there still shows."""

from __future__ import annotations

import subprocess
import sys

from rnnpipe.native_logs import keep

STARTUP = [
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n",
    "I0000 00:00:1796147294.729954    4070 port.cc:153] oneDNN custom operations are on. You may see ...\n",
    "I0000 00:00:1796147294.730894    4070 cudart_stub.cc:31] Could not find cuda drivers on your machine\n",
    "I0000 00:00:1796148199.238283   17879 cpu_feature_guard.cc:227] This TensorFlow binary is optimized ...\n",
    "To enable the following instructions: AVX2 AVX512F FMA, in other operations, rebuild TensorFlow ...\n",
    "E0000 00:00:1796148221.764303   17958 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error\n",
]


def test_only_the_startup_lines_are_dropped() -> None:
    other = ["W0000 00:00:1796148221.1 17958 op_kernel.cc:1857] OP_REQUIRES failed: out of memory\n",
             "UserWarning: something the user should see\n", "Traceback (most recent call last):\n"]
    assert keep("".join(STARTUP[:3] + other[:1] + STARTUP[3:] + other[1:])) == "".join(other)


MUTED_IMPORT = """
import importlib.util, sys
from rnnpipe.native_logs import mute_tensorflow_startup
mute_tensorflow_startup()
importlib.util.find_spec("tensorflow")  # a lookup without an import must not use the filter up
import tensorflow as tf
print("after the import", file=sys.stderr)
print(tf.constant(2).numpy() * 21)
"""


def test_the_first_tensorflow_import_prints_no_startup_lines() -> None:
    done = subprocess.run([sys.executable, "-c", MUTED_IMPORT], capture_output=True, text=True, check=True,
                          env={"PATH": "/usr/bin:/bin", "TF_CPP_MIN_LOG_LEVEL": "0"})
    assert done.stdout.strip() == "42"
    assert "after the import" in done.stderr
    for marker in ("absl::InitializeLog", "port.cc", "cudart_stub.cc", "cpu_feature_guard.cc", "cuInit"):
        assert marker not in done.stderr
