"""User-facing errors: the CLI prints their message without a traceback and exits with their ``exit_code``.

Exit codes a scheduler can rely on: 0 pushed or nothing new, 1 data or runtime error, 2 usage or
configuration error, 3 the run finished but the model was not blessed (nothing pushed).
"""

import errno

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_NOT_BLESSED = 0, 1, 2, 3


class RnnpipeError(Exception):
    """A problem the user can fix (bad input, bad config, missing data); the message says what and how."""

    exit_code = EXIT_FAILED


class ConfigError(RnnpipeError):
    """An unknown key, a wrong type, an out-of-range or unparsable value in a configuration."""

    exit_code = EXIT_USAGE


class DataError(RnnpipeError):
    """Missing, empty or malformed input data."""


class PipelineLockedError(RnnpipeError):
    """Another run of the same pipeline holds its lock."""


class StageIOError(RnnpipeError):
    """A stage could not read or write a path (read-only mount, no space left, permission denied)."""

    @staticmethod
    def hint(error: OSError, setting: str = "the config") -> str:
        """What a user can do about ``error``; ``setting`` names what points at the location."""
        return {errno.ENOSPC: "free some space", errno.EROFS: f"the location is read-only: point {setting} at a "
                "writable one", errno.EACCES: "check the permissions"}.get(error.errno or 0, "check the path")
