"""The pipeline stages, one module each: contract (a Component subclass) + executor function.

Loaded on first use (PEP 562): an application's package, ``rnnpipe list`` and ``rnnpipe runs`` name the stages
without importing TensorFlow and Beam, which only the stages that execute need.
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "EmbeddingPretrainer": "embedding_pretrainer",
    "Evaluator": "evaluator", "ExampleGen": "example_gen", "ExampleValidator": "example_validator",
    "InfraValidator": "infra_validator", "Pusher": "pusher", "SchemaGen": "schema_gen",
    "StatisticsGen": "statistics_gen", "Trainer": "trainer", "Transform": "transform",
    "standard_pipeline": "standard_pipeline",
}
__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
    # Importing a submodule binds its name here (standard_pipeline the module): the function must win.
    globals()[name] = value
    return value
