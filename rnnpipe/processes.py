"""Processes on this host: whether one that left its pid behind (in a lease, in a temporary folder's name) still
runs, and ports for the servers and workers rnnpipe (or a test) starts."""

from __future__ import annotations

import os
import socket


def pid_alive(pid: int) -> bool:
    """True while a process with this pid runs on this host (another user's included)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def free_ports(n: int) -> list[int]:
    """``n`` distinct TCP ports free on localhost now (all held at once while the OS picks them, so distinct)."""
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("localhost", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()
