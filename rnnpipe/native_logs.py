"""Hides TensorFlow's native start-up lines, which TF_CPP_MIN_LOG_LEVEL does not reach in TF 2.21.

Importing TensorFlow prints, from C++ and straight to file descriptor 2, an absl notice, oneDNN's and the CUDA
stub's INFO lines, the CPU-feature note and, at the first device query, a failed ``cuInit`` on machines without
a GPU. None of them is actionable for a pipeline user. ``mute_tensorflow_startup()`` makes the first import of
``tensorflow`` in this process run with descriptor 2 sent to a temporary file; afterwards every captured line
that is not one of those is written to stderr, so warnings and errors still show. ``rnnpipe -v`` leaves them be.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.machinery
import importlib.util
import os
import re
import sys
import tempfile
from collections.abc import Iterator
from types import ModuleType
from typing import Any

NOISE = re.compile(
    r"WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|[IW]\d{4} [\d:. ]+\d+ (port|cudart_stub|cpu_feature_guard)\.cc:\d+\]"
    r"|E\d{4} [\d:. ]+\d+ cuda_(platform|executor)\.cc:\d+\] failed call to cuInit"
    r"|To enable the following instructions: ")


def keep(text: str) -> str:
    """``text`` without the start-up lines (each line kept or dropped whole)."""
    return "".join(line for line in text.splitlines(keepends=True) if not NOISE.match(line))


@contextlib.contextmanager
def filtered_stderr() -> Iterator[None]:
    """Descriptor 2 goes to a temporary file inside the block; what ``keep`` keeps of it is written out after."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            sys.stderr.write(keep(captured.read().decode("utf-8", "replace")))
            sys.stderr.flush()


class _QuietLoader(importlib.abc.Loader):
    """Runs TensorFlow's package ``__init__`` (and a first device query, where cuInit reports) filtered."""

    def __init__(self, loader: Any) -> None:
        self._loader = loader

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        with filtered_stderr():
            self._loader.exec_module(module)
            module.config.list_physical_devices("GPU")

    def __getattr__(self, name: str) -> Any:  # is_package, get_resource_reader, ...: the real loader's
        return getattr(self._loader, name)


class _FirstTensorFlowImport(importlib.abc.MetaPathFinder):
    """Wraps the loader of the spec the real finders find for ``tensorflow``. Stays installed: a spec looked up
    without an import (rnnpipe's code closures do) must not use it up; once imported, it is not asked again."""

    def __init__(self) -> None:
        self._finding = False

    def find_spec(self, name: str, path: Any, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        if name != "tensorflow" or self._finding:
            return None
        self._finding = True
        try:
            spec = importlib.util.find_spec(name)
        finally:
            self._finding = False
        if spec is not None and spec.loader is not None:
            spec.loader = _QuietLoader(spec.loader)
        return spec


def mute_tensorflow_startup() -> None:
    """Filters the start-up lines of this process's first ``import tensorflow`` (a no-op once it is imported)."""
    if "tensorflow" not in sys.modules and not any(isinstance(f, _FirstTensorFlowImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _FirstTensorFlowImport())
