"""The source a step's results depend on: a module and the project modules it imports, found without running them.

A cache key that hashes a whole package reruns training when an unrelated model file changes; one that hashes only
the referenced module misses an edit to a layer it uses. This follows imports through the modules' syntax trees:

- ``from package import name`` depends on the module that defines ``name`` (found through the package's
  ``__init__`` re-exports), not on every module the ``__init__`` happens to import;
- only modules of the referenced module's own top-level package and of rnnpipe's stages, models and
  applications are followed; rnnpipe's engine (runner, DSL, tracking, CLI) decides how steps run, not what
  they compute, and is left out.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import importlib.util
import sys
from importlib.machinery import ModuleSpec
from pathlib import Path

_FOLLOWED_IN_RNNPIPE = ("rnnpipe.components", "rnnpipe.models", "rnnpipe.pipelines")


def source_closure(module: str) -> dict[str, str]:
    """``module`` and every project module it imports, directly or not, each mapped to a hash of its source."""
    root = module.split(".")[0]
    seen: dict[str, str] = {}
    todo = [module]
    while todo:
        name = todo.pop()
        if name in seen or not _followed(name, root):
            continue
        path = _source_file(name)
        if path is None:
            continue
        text = path.read_text()
        seen[name] = hashlib.sha256(text.encode()).hexdigest()
        todo.extend(_imported_modules(name, path, text, seen[name]))
    return dict(sorted(seen.items()))


def closure_hash(module: str) -> str:
    return hashlib.sha256(repr(source_closure(module)).encode()).hexdigest()


def _followed(name: str, root: str) -> bool:
    if name.split(".")[0] != "rnnpipe":
        return name.split(".")[0] == root
    return name.startswith(_FOLLOWED_IN_RNNPIPE) or name == root == "rnnpipe"


@functools.cache
def _spec(name: str) -> ModuleSpec | None:
    """Like importlib.util.find_spec, without importing the parent packages (an application's __init__ may
    import TensorFlow): each level is looked up in its parent's search path by the import system's finders."""
    parent, _, _ = name.rpartition(".")
    try:
        if not parent or parent in sys.modules:
            return importlib.util.find_spec(name)
        outer = _spec(parent)
        if outer is None or outer.submodule_search_locations is None:
            return None
        for finder in sys.meta_path:  # the path finder, and an editable install's own finder
            find = getattr(finder, "find_spec", None)
            found = find(name, list(outer.submodule_search_locations)) if find else None
            if found is not None:
                return found
    except (ImportError, ValueError):
        pass
    return None


def _source_file(name: str) -> Path | None:
    spec = _spec(name)
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        return None
    return Path(spec.origin)


def _is_package(name: str) -> bool:
    path = _source_file(name)
    return path is not None and path.name == "__init__.py"


def _parse(path: Path, text: str, digest: str) -> ast.Module:
    """The syntax tree of a source file, parsed once per content in a process (closures share most modules)."""
    key = (str(path), digest)
    if key not in _TREES:
        _TREES[key] = ast.parse(text, str(path))
    return _TREES[key]


_TREES: dict[tuple[str, str], ast.Module] = {}
_IMPORTS: dict[tuple[str, str], list[tuple[int, str, list[str]]]] = {}


def _import_statements(path: Path, text: str, digest: str) -> list[tuple[int, str, list[str]]]:
    """(level, module, names) of every import in a file, anywhere in it (imports inside functions count)."""
    key = (str(path), digest)
    if key not in _IMPORTS:
        found = []
        for node in ast.walk(_parse(path, text, digest)):
            if isinstance(node, ast.Import):
                found += [(0, alias.name, []) for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                found.append((node.level, node.module or "", [alias.name for alias in node.names]))
        _IMPORTS[key] = found
    return _IMPORTS[key]


def _imported_modules(name: str, path: Path, text: str, digest: str) -> list[str]:
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: list[str] = []
    for level, module, names in _import_statements(path, text, digest):
        if not names:
            found.append(module)
            continue
        base = importlib.util.resolve_name("." * level + module, package) if level else module
        found += [_defining_module(base, attr) for attr in names]
    return found


def _defining_module(base: str, attr: str) -> str:
    """The module ``from base import attr`` really reads: a submodule, or where a package re-exports it from."""
    if _source_file(f"{base}.{attr}") is not None:
        return f"{base}.{attr}"
    if attr == "*" or not _is_package(base):
        return base
    init = _source_file(base)
    text = init.read_text()
    for node in _parse(init, text, hashlib.sha256(text.encode()).hexdigest()).body:
        if isinstance(node, ast.ImportFrom) and node.level:
            source = importlib.util.resolve_name("." * node.level + (node.module or ""), base)
            if any((alias.asname or alias.name) == attr for alias in node.names):
                return _defining_module(source, attr) if _is_package(source) else source
    return base  # defined in the __init__ itself, or re-exported by a star import: the whole package
