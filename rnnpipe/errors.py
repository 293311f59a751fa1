"""User-facing errors: the CLI prints their message without a traceback and exits non-zero."""


class RnnpipeError(Exception):
    """A problem the user can fix (bad input, bad config, missing data); the message says what and how."""


class ConfigError(RnnpipeError):
    """An unknown key, a wrong type or an unparsable value in a configuration."""


class DataError(RnnpipeError):
    """Missing, empty or malformed input data."""


class PipelineLockedError(RnnpipeError):
    """Another run of the same pipeline holds its lock."""
