"""Every docstring example in rnnpipe runs and gives what it shows.

Modules are found by their source (a `>>> ` prompt), so a new module's examples are run without being listed
here; and doctest must run as many examples as the source has prompts, so one where doctest does not look
(or a module whose examples all vanish) fails instead of passing untried.
"""

from __future__ import annotations

import doctest
import importlib
import re
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
    # A prompt holding only a comment is no example.
    prompts = len(re.findall(r"^\s*>>> (?!#)", Path(module.__file__).read_text(encoding="utf-8"), re.MULTILINE))
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS, verbose=False)
    assert result.attempted == prompts, f"{name}: doctest ran {result.attempted} of the {prompts} examples"
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples of {name} failed (output above)"
