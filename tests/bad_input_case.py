"""One row of the table-driven bad-input suite (tests/test_bad_inputs.py), shared by its case modules."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Case:
    """``rnnpipe run APP --set data.path=<work>/<data> ARGS`` in a fresh working directory must exit with
    ``exit_code`` and print to stderr a message matching the regex ``message``, with nothing pushed or half-written.

    ``files`` maps names under the working directory to their content (str is written as UTF-8, bytes as is;
    a name ending in "/" makes a directory). ``data`` is the file ``data.path`` points at (None: the case's
    ``args`` say everything). ``{work}`` in ``args`` and ``message`` is replaced by the working directory.
    """

    id: str
    app: str
    files: dict[str, str | bytes] = field(default_factory=dict)
    data: str | None = None
    args: tuple[str, ...] = ()
    exit_code: int = 1
    message: str = ""
