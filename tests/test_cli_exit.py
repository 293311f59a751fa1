"""The `rnnpipe` command exits as soon as `main` returns, without the interpreter's teardown: TensorFlow's and
Beam's threads can crash it (SIGSEGV in the garbage collector after a Transform on the full default data, so
`make run` failed with status 139 after a finished, pushed run)."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import entry_points

import pytest

# An atexit handler runs in the teardown that console_main skips.
SCRIPT = ("import atexit, sys; from rnnpipe.cli import console_main; "
          "atexit.register(print, 'teardown ran'); console_main(sys.argv[1:])")


def test_the_rnnpipe_command_is_console_main() -> None:
    (command,) = [e for e in entry_points(group="console_scripts") if e.name == "rnnpipe"]
    assert command.value == "rnnpipe.cli:console_main"


@pytest.mark.parametrize(("args", "code", "output"), [
    (["list"], 0, "sentiment"),
    (["run", "no-such-app"], 2, "unknown application 'no-such-app'"),
])
def test_console_main_keeps_the_exit_code_and_skips_the_teardown(args: list[str], code: int, output: str) -> None:
    proc = subprocess.run([sys.executable, "-c", SCRIPT, *args], capture_output=True, text=True, timeout=300)
    assert proc.returncode == code, proc.stderr[-2000:]
    assert output in proc.stdout + proc.stderr  # what main printed is flushed before the exit
    assert "teardown ran" not in proc.stdout
