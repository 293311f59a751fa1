"""Fault injection for tests: ``RNNPIPE_FAULT`` names points where this process dies or an I/O call fails.

    RNNPIPE_FAULT=Trainer.backup            # SIGKILL the first time the Trainer reaches its backup rename
    RNNPIPE_FAULT=after:Transform#1         # ... or the N-th time a point is reached
    RNNPIPE_FAULT=Pusher.copy=ENOSPC        # raise OSError(ENOSPC) there instead, naming the path

Specs are comma-separated. With ``RNNPIPE_FAULT_ONCE=FILE`` a fault fires only while FILE does not exist (and
creates it), so a retried process gets past it: a stage killed once, then retried by a scheduler.

Code marks a point with ``fault_point(name, path)``; without the variable the call is a dictionary lookup, so
the points stay in production code where the real writes happen (no sleeps or timing guesses in tests).
"""

from __future__ import annotations

import errno
import os
import signal
from collections import Counter

ENV = "RNNPIPE_FAULT"
ONCE_ENV = "RNNPIPE_FAULT_ONCE"
_ERRNOS = {"ENOSPC": errno.ENOSPC, "EROFS": errno.EROFS, "EACCES": errno.EACCES, "EIO": errno.EIO}
_reached: Counter[str] = Counter()


def _specs() -> dict[str, tuple[int, str | None]]:
    found = {}
    for spec in filter(None, (s.strip() for s in os.environ.get(ENV, "").split(","))):
        point, _, error = spec.partition("=")
        point, _, nth = point.partition("#")
        if error and error not in _ERRNOS:
            raise ValueError(f"{ENV}: unknown error '{error}' in '{spec}'; expected one of {sorted(_ERRNOS)}")
        found[point] = (int(nth or 1), error or None)
    return found


def fault_point(name: str, path: str | os.PathLike | None = None) -> None:
    """Dies (SIGKILL) or raises the configured ``OSError`` when ``RNNPIPE_FAULT`` names this point."""
    if ENV not in os.environ:
        return
    spec = _specs().get(name)
    if spec is None:
        return
    _reached[name] += 1
    nth, error = spec
    if _reached[name] != nth:
        return
    once = os.environ.get(ONCE_ENV)
    if once:
        try:
            open(once, "x").close()
        except FileExistsError:  # fired in an earlier process
            return
    if error is None:
        os.kill(os.getpid(), signal.SIGKILL)
    code = _ERRNOS[error]
    raise OSError(code, os.strerror(code), None if path is None else str(path))
