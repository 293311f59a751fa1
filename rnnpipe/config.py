"""Layered YAML configuration: engine defaults < application defaults < --config FILE < --set k=v.

Every layer above the defaults may only set keys the defaults declare, with a value of the declared
type; anything else is rejected naming the key and the closest valid one. Top-level sections are
checked key by key; a mapping inside a section (``evaluator.thresholds``, ``evaluator.metrics``) is one
value, replaced whole by ``--set evaluator.metrics={...}`` or a config file, while ``--set
evaluator.metrics.slice_keys=[]`` changes that one key and keeps the others (a key the mapping lacks is
added, unless it looks like a typo of one it has).
"""

from __future__ import annotations

import copy
import difflib
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError

ENGINE_DEFAULTS = Path(__file__).with_name("defaults.yaml")


class Config(dict):
    """A nested dict whose keys also read as attributes: ``cfg.trainer.epochs``."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def to_dict(self) -> dict:
        return copy.deepcopy(_plain(self))


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _wrap(value: Any) -> Any:
    if isinstance(value, dict):
        return Config({k: _wrap(v) for k, v in value.items()})
    if isinstance(value, list):
        return [_wrap(v) for v in value]
    return value


def read_yaml(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of config keys at the top level, got {type(data).__name__}")
    return data


def _flat_keys(tree: dict, prefix: str = "") -> list[str]:
    keys = []
    for k, v in tree.items():
        keys.append(prefix + k)
        if isinstance(v, dict):
            keys.extend(_flat_keys(v, prefix + k + "."))
    return keys


def _type_ok(default: Any, value: Any) -> bool:
    # A default of None means "optional, any scalar type"; ints are accepted where floats are declared.
    if default is None or value is None:
        return True
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(default, int):
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, type(default))


def merge(defaults: dict, override: dict, *, source: str, prefix: str = "", all_keys: list[str] | None = None) -> dict:
    """Returns ``defaults`` updated by ``override``, rejecting keys and types the defaults don't declare."""
    all_keys = all_keys if all_keys is not None else _flat_keys(defaults)
    out = copy.deepcopy(defaults)
    for key, value in override.items():
        dotted = prefix + str(key)
        if key not in defaults:
            close = difflib.get_close_matches(dotted, all_keys, n=1, cutoff=0.5)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise ConfigError(f"{source}: unknown config key '{dotted}'{hint}")
        default = defaults[key]
        if isinstance(value, _Inner):
            out[key] = _merge_inner(default, value, source=source, dotted=dotted)
        elif isinstance(default, dict) and not prefix:
            if not isinstance(value, dict):
                raise ConfigError(f"{source}: '{dotted}' must be a mapping, got {type(value).__name__} {value!r}")
            out[key] = merge(default, value, source=source, prefix=dotted + ".", all_keys=all_keys)
        elif not _type_ok(default, value):
            raise ConfigError(
                f"{source}: '{dotted}' must be of type {type(default).__name__} (default {default!r}), "
                f"got {type(value).__name__} {value!r}"
            )
        else:
            out[key] = float(value) if isinstance(default, float) and value is not None else value
    return out


class _Inner(dict):
    """``--set section.mapping.key=value``: one key inside a section's mapping, merged into it, not replacing it."""


def _merge_inner(default: Any, inner: _Inner, *, source: str, dotted: str) -> dict:
    if not isinstance(default, dict):
        raise ConfigError(f"{source}: '{dotted}' is {type(default).__name__} {default!r}, not a mapping of keys")
    out = copy.deepcopy(default)
    for key, value in inner.items():
        inner_key = f"{dotted}.{key}"
        if isinstance(value, _Inner):
            out[key] = _merge_inner(default.get(key, {}), value, source=source, dotted=inner_key)
        elif key in default:
            if not _type_ok(default[key], value):
                raise ConfigError(f"{source}: '{inner_key}' must be of type {type(default[key]).__name__} "
                                  f"(default {default[key]!r}), got {type(value).__name__} {value!r}")
            out[key] = value
        else:
            close = difflib.get_close_matches(str(key), [str(k) for k in default], n=1, cutoff=0.8)
            if close:
                raise ConfigError(f"{source}: unknown key '{inner_key}'; did you mean '{dotted}.{close[0]}'?")
            out[key] = value  # an open mapping (thresholds per metric, split weights) takes new keys
    return out


def parse_set(assignment: str) -> dict:
    """Turns ``trainer.epochs=3`` into ``{"trainer": {"epochs": 3}}`` (the value is read as YAML)."""
    if "=" not in assignment:
        raise ConfigError(f"--set expects KEY=VALUE (e.g. trainer.epochs=3), got '{assignment}'")
    key, raw = assignment.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    tree: dict = {}
    node = tree
    parts = key.strip().split(".")
    for depth, part in enumerate(parts[:-1]):
        node = node.setdefault(part, {} if depth == 0 else _Inner())  # below a section: merge key by key
    node[parts[-1]] = value
    return tree


def load_config(app_defaults: str | Path, config_file: str | Path | None = None, sets: list[str] = ()) -> Config:
    """Resolves an application's configuration from its defaults and the user's overrides."""
    # The application's file adds its own sections to the engine's; user layers may only change keys.
    cfg = _deep_update(read_yaml(ENGINE_DEFAULTS), read_yaml(app_defaults))
    if config_file:
        cfg = merge(cfg, read_yaml(config_file), source=str(config_file))
    for s in sets:
        cfg = merge(cfg, parse_set(s), source=f"--set {s}")
    return _wrap(cfg)


def _deep_update(base: dict, extra: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in extra.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _deep_update(out[k], v)
        else:
            out[k] = v
    return out
