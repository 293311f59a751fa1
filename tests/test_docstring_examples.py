"""Every docstring example in rnnpipe runs and gives what it shows.

Modules are found by their source (a `>>> ` prompt), so a new module's examples are run without being listed
here, and a module whose examples all vanish fails instead of passing with nothing tried.
"""

from __future__ import annotations

import doctest
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("models", "components", "pipelines", "rnnpipe")


def _modules_with_examples() -> list[str]:
    names = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if ">>> " in path.read_text(encoding="utf-8"):
                parts = path.relative_to(ROOT).with_suffix("").parts
                parts = parts[:-1] if parts[-1] == "__init__" else parts
                # The top-level packages install as rnnpipe.<package> (setup.py's package_dir).
                names.append(".".join(parts if package == "rnnpipe" else ("rnnpipe", *parts)))
    return names


MODULES = _modules_with_examples()


def test_the_examples_are_found() -> None:
    assert "rnnpipe.models.seq2seq" in MODULES and "rnnpipe.pipelines.speech.model" in MODULES


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert result.attempted > 0, f"{name} has a '>>> ' prompt but doctest found no example"
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples of {name} failed (output above)"
