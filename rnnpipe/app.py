"""What an application registers under the ``rnnpipe.pipelines`` entry-point group."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path

from .config import Config
from .dsl import Pipeline
from .errors import ConfigError, RnnpipeError

ENTRY_POINT_GROUP = "rnnpipe.pipelines"


@dataclass(frozen=True)
class Application:
    name: str
    description: str
    default_data: str
    config_file: Path
    build_pipeline: Callable[[Config], Pipeline]
    fetch_data: Callable[[Config], Path]


def applications() -> dict[str, Application]:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}  # loaded lazily


def load_application(name: str) -> Application:
    found = applications()
    if name not in found:
        raise ConfigError(f"unknown application '{name}'; installed: {', '.join(sorted(found)) or 'none'}")
    app = found[name].load()
    if not isinstance(app, Application):
        raise RnnpipeError(f"entry point '{name}' in group {ENTRY_POINT_GROUP} is not an rnnpipe Application")
    return app
