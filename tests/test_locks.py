"""The lock files pin the whole stack: every requirement of requirements.in is pinned in requirements.lock and in
requirements-airflow.lock (whose .in includes it), so an install from either lock alone has all of rnnpipe's
dependencies, whatever order the Makefile installs them in."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_NAME = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)")


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()  # PEP 503


def requirement_names(path: Path) -> set[str]:
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return {normalized(_NAME.match(line)[1]) for line in lines if line and not line.startswith("-")}


def versions(path: Path) -> dict[str, str]:
    return {normalized(line.split("==", 1)[0]): line.split("==", 1)[1].split(";")[0].strip()
            for line in path.read_text().splitlines() if "==" in line and not line.startswith((" ", "#"))}


def pins(path: Path) -> set[str]:
    return set(versions(path))


@pytest.mark.parametrize("lock", ["requirements.lock", "requirements-airflow.lock"])
def test_every_requirement_is_pinned_in_each_lock(lock: str) -> None:
    required = requirement_names(ROOT / "requirements.in")
    assert {"tensorflow", "gensim", "psycopg", "moto"} <= required  # names read without extras or versions
    missing = required - pins(ROOT / lock)
    assert not missing, f"{lock} lacks {sorted(missing)}: re-pin with `make lock`"


def test_the_airflow_lock_pins_airflow() -> None:
    assert "apache-airflow" in pins(ROOT / "requirements-airflow.lock")


def test_both_locks_pin_every_package_they_share_to_one_version() -> None:
    """`make run` installs requirements.lock, `make test` the Airflow lock over it: a package pinned apart (as
    fastapi and ml-dtypes once were) would run untested versions in one of them and move back and forth."""
    base, airflow = versions(ROOT / "requirements.lock"), versions(ROOT / "requirements-airflow.lock")
    apart = {name: (base[name], airflow[name]) for name in base.keys() & airflow.keys() if base[name] != airflow[name]}
    assert not apart, f"pinned apart (requirements.lock, requirements-airflow.lock): {apart}; re-pin with `make lock`"
    assert set(base) <= set(airflow)  # the Airflow lock is the whole stack plus Airflow
