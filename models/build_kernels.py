"""Compile rnnpipe's fused RNN kernels for this machine: `python -m rnnpipe.models.build_kernels [--force]`."""

from __future__ import annotations

import sys

from .fused import build


def main() -> None:
    try:
        print(build(force="--force" in sys.argv[1:]))
    except RuntimeError as error:
        sys.exit(f"rnnpipe: {error}")


if __name__ == "__main__":
    main()
