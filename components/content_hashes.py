"""Exact-duplicate detection by content: 8 bytes of hash per feature per example.

StatisticsGen keeps one hash column per feature and split; the ExampleValidator recounts duplicates over the
features the model reads (an id column must not hide a sentence that is in both train and test).
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import numpy as np

HASHES_KEY = "content_hashes"  # how the hashes travel out of Beam inside the statistics JSON, popped before it is kept


def feature_hash(feat: Any) -> int:
    """8 bytes of the feature's serialized values (a Feature has one list: its encoding is deterministic)."""
    return int.from_bytes(hashlib.blake2b(feat.SerializeToString(), digest_size=8).digest(), "little") or 1


def add_hashes(columns: dict[str, list[int]], row: int, features: Any) -> None:
    for name, feat in features.items():
        if name not in columns:
            columns[name] = [0] * row
        columns[name].append(feature_hash(feat))
    for column in columns.values():
        if len(column) == row:  # this example lacks the feature
            column.append(0)


def merge_hashes(into: dict[str, list[int]], rows: int, other: dict[str, list[int]], other_rows: int) -> None:
    for name in into.keys() | other.keys():
        into[name] = into.get(name, [0] * rows) + other.get(name, [0] * other_rows)


def encode_hashes(columns: dict[str, list[int]], rows: int) -> dict:
    names = sorted(columns)
    matrix = np.array([columns[n] for n in names], dtype=np.uint64).reshape(len(names), rows).T
    return {"names": names, "rows": rows, "data": base64.b64encode(np.ascontiguousarray(matrix).tobytes()).decode()}


def decode_hashes(encoded: dict) -> tuple[list[str], np.ndarray]:
    matrix = np.frombuffer(base64.b64decode(encoded["data"]), dtype=np.uint64)
    return encoded["names"], matrix.reshape(encoded["rows"], len(encoded["names"]))


def record_hashes(names: list[str], matrix: np.ndarray, features: list[str] | None = None) -> np.ndarray:
    """One hash per record over ``features`` (None = every feature; a feature the split lacks counts as absent)."""
    wanted = sorted(names if features is None else features)
    columns = [matrix[:, names.index(n)] if n in names else np.zeros(len(matrix), np.uint64) for n in wanted]
    rows = np.ascontiguousarray(np.stack(columns, axis=1) if columns else np.zeros((len(matrix), 0), np.uint64))
    return np.array([int.from_bytes(hashlib.blake2b(r.tobytes(), digest_size=8).digest(), "little")
                     for r in rows], dtype=np.uint64)


def count_duplicates(hashes: dict[str, tuple[list[str], np.ndarray]], features: list[str] | None = None
                     ) -> dict[str, dict]:
    """Per split: ``within``, records that repeat an earlier record of the same split, and ``shared``
    (other split -> how many of this split's records also occur there), comparing ``features`` only."""
    per_record = {s: record_hashes(names, m, features) for s, (names, m) in hashes.items()}
    out = {}
    for split, h in per_record.items():
        shared = {other: int(np.isin(h, g).sum()) for other, g in per_record.items() if other != split}
        out[split] = {"within": int(len(h) - len(np.unique(h))), "shared": shared}
    return out
