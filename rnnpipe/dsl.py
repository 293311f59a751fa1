"""The pipeline DSL: components declare typed inputs, outputs and parameters; pipelines are lists of steps.

    examples = ExampleGen(source="reviews.jsonl", format="jsonl")
    stats = StatisticsGen(examples=examples["examples"])
    Pipeline("sentiment", [examples, stats])

Wiring is by artifact (``node["name"]`` is a reference to an output), never by file path: the runner
decides where each artifact lives.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from .code_closure import closure_hash
from .errors import ConfigError

_REQUIRED = object()


@dataclass(frozen=True)
class Artifact:
    """One materialised artifact: a directory the runner owns."""

    name: str
    type: str
    uri: str
    fingerprint: str = ""  # the content hash the runner recorded; "" while an output is being written

    def path(self, *parts: str) -> Path:
        return Path(self.uri, *parts)


@dataclass(frozen=True)
class Param:
    """A typed component parameter. ``type`` may be a tuple of types; ``Ref`` marks a code reference."""

    type: Any
    default: Any = _REQUIRED
    doc: str = ""
    min: float | None = None  # numeric bounds, checked when the step is built (so before anything runs)
    max: float | None = None
    min_exclusive: bool = False
    max_exclusive: bool = False
    choices: tuple | None = None  # the allowed values, for a parameter that names one of a few options

    @property
    def required(self) -> bool:
        return self.default is _REQUIRED

    def range_text(self) -> str:
        low = "" if self.min is None else f"{'>' if self.min_exclusive else '>='} {_number(self.min)}"
        high = "" if self.max is None else f"{'<' if self.max_exclusive else '<='} {_number(self.max)}"
        return " and ".join(filter(None, (low, high)))

    def in_range(self, value: Any) -> bool:
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            return True
        if self.min is not None and (value <= self.min if self.min_exclusive else value < self.min):
            return False
        return self.max is None or not (value >= self.max if self.max_exclusive else value > self.max)


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(value)


class ParamError(ConfigError, TypeError):
    """A step parameter of the wrong type or out of its range; ``step`` and ``param`` say which."""

    def __init__(self, step: str, param: str, message: str) -> None:
        super().__init__(f"{step}: parameter '{param}' {message}")
        self.step, self.param, self.detail = step, param, message


class Ref(str):
    """A reference to code as ``"package.module:attr"``; its module's source is part of the cache key."""

    @classmethod
    def of(cls, value: str | Callable) -> Ref:
        if isinstance(value, str):
            if ":" not in value:
                raise TypeError(f"a code reference must look like 'package.module:attr', got {value!r}")
            return cls(value)
        module, name = getattr(value, "__module__", None), getattr(value, "__qualname__", None)
        if not module or not name or "<locals>" in name:
            raise TypeError(f"{value!r} is not importable by name; pass a module-level function or 'module:attr'")
        return cls(f"{module}:{name}")

    def resolve(self) -> Any:
        module, _, attr = self.partition(":")
        obj: Any = importlib.import_module(module)
        for part in attr.split("."):
            obj = getattr(obj, part)
        return obj

    def source_hash(self) -> str:
        """A hash of the referenced module and the project modules it imports (rnnpipe/code_closure.py)."""
        return closure_hash(self.partition(":")[0])


def _hash_text(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class Channel:
    """A reference to output ``name`` of a pipeline node."""

    node: Component
    name: str

    def __repr__(self) -> str:
        return f"{self.node.id}[{self.name!r}]"


class Component:
    """Base class of a pipeline step.

    Subclasses declare ``INPUTS`` and ``OUTPUTS`` (name -> artifact type), ``OPTIONAL_INPUTS``,
    ``PARAMETERS`` (name -> ``Param``) and an ``executor(inputs, outputs, params, ctx)`` that reads
    input artifacts, writes into the (empty, temporary) output directories and returns metrics.
    """

    INPUTS: ClassVar[dict[str, str]] = {}
    OPTIONAL_INPUTS: ClassVar[frozenset[str]] = frozenset()
    OUTPUTS: ClassVar[dict[str, str]] = {}
    PARAMETERS: ClassVar[dict[str, Param]] = {}
    VERSION: ClassVar[str] = "1"

    def __init__(self, *, id: str | None = None, **kwargs: Any) -> None:
        cls = type(self)
        self.id = id or cls.__name__
        self.inputs: dict[str, Channel] = {}
        self.params: dict[str, Any] = {}
        for key, value in kwargs.items():
            if key in cls.INPUTS:
                if value is None and key in cls.OPTIONAL_INPUTS:
                    continue
                if isinstance(value, Component):
                    value = value._only_output(key)
                if not isinstance(value, Channel):
                    raise TypeError(f"{self.id}: input '{key}' must be another step's output, got {value!r}")
                expected = cls.INPUTS[key]
                actual = value.node.OUTPUTS[value.name]
                if actual != expected:
                    raise TypeError(f"{self.id}: input '{key}' expects a {expected} artifact, "
                                    f"got {actual} from {value}")
                self.inputs[key] = value
            elif key in cls.PARAMETERS:
                self.params[key] = check_param(self.id, key, cls.PARAMETERS[key], value)
            else:
                known = sorted([*cls.INPUTS, *cls.PARAMETERS])
                raise TypeError(f"{self.id}: unknown argument '{key}'; expected one of {known}")
        for key in cls.INPUTS:
            if key not in self.inputs and key not in cls.OPTIONAL_INPUTS:
                raise TypeError(f"{self.id}: missing required input '{key}' ({cls.INPUTS[key]})")
        for key, spec in cls.PARAMETERS.items():
            if key not in self.params:
                if spec.required:
                    raise TypeError(f"{self.id}: missing required parameter '{key}'")
                self.params[key] = spec.default

    def __getitem__(self, name: str) -> Channel:
        if name not in self.OUTPUTS:
            raise KeyError(f"{self.id} has no output '{name}'; outputs: {sorted(self.OUTPUTS)}")
        return Channel(self, name)

    def _only_output(self, for_input: str) -> Channel:
        if len(self.OUTPUTS) != 1:
            raise TypeError(f"{self.id} has several outputs {sorted(self.OUTPUTS)}: pick one for '{for_input}'")
        return Channel(self, next(iter(self.OUTPUTS)))

    # executor(inputs, outputs, params, ctx) -> metrics dict or None; set by each subclass.
    executor: ClassVar[Callable[..., dict | None]]

    def external_fingerprint(self, inputs: dict[str, Artifact]) -> str:
        """Fingerprint of what the step reads from outside the pipeline (e.g. a source file); "" if nothing.
        ``inputs`` are as the store records them, each with its ``fingerprint``; their ``uri`` may be remote (a
        cache check downloads nothing)."""
        return ""

    def verify_cached(self, outputs: dict[str, Artifact], ctx: Any) -> str | None:
        """On a cache hit: why the reused execution's effects outside the pipeline root are gone (a pushed
        model deleted, a registry entry missing), so the runner executes the step again; None: reuse it."""
        return None

    def check(self) -> None:
        """Checks that need the step's code imported (a preprocessing function's declared settings). The runner
        calls it on every step still to run before the first one executes, so a fully cached run imports
        nothing heavy; a ParamError names the parameter."""

    def code_version(self) -> str:
        """Hash of the component's module and referenced code, each with its import closure within the project."""
        parts = [type(self).VERSION, closure_hash(_module_name(type(self)))]
        for value in self.params.values():
            if isinstance(value, Ref):
                parts.append(value.source_hash())
        return _hash_text("\n".join(parts))

    def params_json(self) -> str:
        return json.dumps(self.params, sort_keys=True, default=str)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.id}>"


def _module_name(cls: type) -> str:
    """The importable name of the module defining ``cls``: a script run as ``__main__`` keys its cache like the
    same file imported by name (as a test or another process would)."""
    if cls.__module__ != "__main__":
        return cls.__module__
    main = sys.modules["__main__"]
    spec = getattr(main, "__spec__", None)
    return spec.name if spec is not None else Path(main.__file__).stem


def check_param(owner: str, key: str, spec: Param, value: Any) -> Any:
    """``value`` checked against ``spec`` (type, range, JSON-able), or a ParamError naming ``owner`` and ``key``."""
    if spec.type is Ref and not (value is None and spec.default is None):
        try:
            return Ref.of(value)
        except TypeError as e:
            raise TypeError(f"{owner}: parameter '{key}': {e}") from None
    if value is None and not spec.required and spec.default is None:
        return None
    types = spec.type if isinstance(spec.type, tuple) else (spec.type,)
    if float in types and int not in types and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)  # `max_minutes: 14` means 14.0
    if not isinstance(value, spec.type) or (isinstance(value, bool) and spec.type in (int, float)):
        expected = spec.type.__name__ if isinstance(spec.type, type) else " or ".join(t.__name__ for t in spec.type)
        raise ParamError(owner, key, f"must be {expected}, got {type(value).__name__} {value!r}")
    if not spec.in_range(value):
        raise ParamError(owner, key, f"must be {spec.range_text()}, got {value!r}")
    if spec.choices is not None and value not in spec.choices:
        raise ParamError(owner, key, f"must be one of {', '.join(map(repr, spec.choices))}, got {value!r}")
    json.dumps(value, default=str)  # parameters are part of the cache key
    return value


class Pipeline:
    """A named, ordered list of steps. Each step's inputs must come from steps earlier in the list.

    ``checks``: callables that raise ConfigError for settings only the application's code can judge (a model
    that cannot be built with the configured arguments); the runner calls them, with each step's ``check``,
    before the first step executes, so a fully cached run imports none of that code.
    """

    def __init__(self, name: str, steps: list[Component], checks: list[Callable[[], None]] | None = None) -> None:
        self.name = name
        self.steps = list(steps)
        self.checks = list(checks or [])
        seen: dict[str, Component] = {}
        for step in self.steps:
            if step.id in seen:
                raise ValueError(f"pipeline {name}: two steps are named '{step.id}'; pass id= to tell them apart")
            for key, channel in step.inputs.items():
                if seen.get(channel.node.id) is not channel.node:
                    raise ValueError(
                        f"pipeline {name}: step {step.id} reads '{key}' from {channel.node.id}, "
                        "which is not listed before it"
                    )
            seen[step.id] = step

    def step(self, step_id: str) -> Component:
        for s in self.steps:
            if s.id == step_id:
                return s
        raise KeyError(step_id)

    def downstream_of(self, step_id: str) -> set[str]:
        """The ids of ``step_id`` and every step that depends on it, directly or not."""
        reached = {step_id}
        for s in self.steps:
            if any(c.node.id in reached for c in s.inputs.values()):
                reached.add(s.id)
        return reached

    def upstream_of(self, step_id: str) -> set[str]:
        reached = {step_id}
        for s in reversed(self.steps):
            if s.id in reached:
                reached.update(c.node.id for c in s.inputs.values())
        return reached - {step_id}
