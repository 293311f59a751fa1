"""Argument checks shared by the layers and builders in `rnnpipe.models`.

Every check raises `ValueError` naming the argument, what was expected and
what was received, so a bad configuration fails at construction time rather
than deep inside a traced graph.
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Collection
from typing import Any


def _is_int(value: Any) -> bool:
    # bool is an int subclass, but `units=True` is always a mistake.
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_positive_int(name: str, value: Any) -> int:
    """Return `value` if it is an integer >= 1, else raise `ValueError`."""
    if not _is_int(value) or value < 1:
        raise ValueError(
            f"Argument `{name}` must be a positive integer (>= 1). "
            f"Received: {name}={value!r}"
        )
    return int(value)


def check_int_at_least(name: str, value: Any, minimum: int) -> int:
    """Return `value` if it is an integer >= `minimum`, else raise."""
    if not _is_int(value) or value < minimum:
        raise ValueError(
            f"Argument `{name}` must be an integer >= {minimum}. "
            f"Received: {name}={value!r}"
        )
    return int(value)


def check_rate(name: str, value: Any) -> float:
    """Return `value` as a float if it lies in [0, 1), else raise."""
    is_number = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if not (is_number and 0.0 <= value < 1.0):
        raise ValueError(
            f"Argument `{name}` must be a float in [0, 1). "
            f"Received: {name}={value!r}"
        )
    return float(value)


def check_open_interval(name: str, value: Any, low: float, high: float) -> float:
    """Return `value` as a float if it lies strictly between `low` and `high`, else raise."""
    is_number = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if not (is_number and low < value < high):
        raise ValueError(f"Argument `{name}` must be a float in ({low:g}, {high:g}). Received: {name}={value!r}")
    return float(value)


def check_bool(name: str, value: Any) -> bool:
    """Return `value` if it is a Python bool, else raise."""
    if value is not True and value is not False:
        raise ValueError(
            f"Argument `{name}` must be a bool (True or False). "
            f"Received: {name}={value!r}"
        )
    return value


def check_choice(name: str, value: Any, choices: Collection[str]) -> str:
    """Return `value` if it is one of `choices`, else raise."""
    if value not in choices:
        expected = ", ".join(repr(c) for c in choices)
        raise ValueError(
            f"Argument `{name}` must be one of {expected}. "
            f"Received: {name}={value!r}"
        )
    return value


def check_positive_float(name: str, value: Any) -> float:
    is_number = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if not (is_number and value > 0 and math.isfinite(value)):
        raise ValueError(f"Argument `{name}` must be a finite number > 0. Received: {name}={value!r}")
    return float(value)


def check_non_negative_float(name: str, value: Any) -> float:
    is_number = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if not (is_number and value >= 0 and math.isfinite(value)):
        raise ValueError(f"Argument `{name}` must be a finite number >= 0. Received: {name}={value!r}")
    return float(value)


def check_patterns(name: str, value: Any) -> list[str]:
    """Return `value` as a list if it is a list or tuple of non-empty regular expressions, else raise."""
    if not isinstance(value, (list, tuple)) or not all(isinstance(p, str) and p for p in value):
        raise ValueError(f"Argument `{name}` must be a list of non-empty strings (regular expressions). "
                         f"Received: {name}={value!r}")
    for pattern in value:
        try:
            re.compile(pattern)
        except re.error as e:
            raise ValueError(f"Argument `{name}` holds {pattern!r}, not a regular expression ({e}). "
                             f"Received: {name}={value!r}") from None
    return list(value)
