"""Whether a process that left its pid behind (in a lease, in a temporary folder's name) still runs."""

from __future__ import annotations

import os


def pid_alive(pid: int) -> bool:
    """True while a process with this pid runs on this host (another user's included)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True
