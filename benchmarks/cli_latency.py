"""Whole-process latency of the rnnpipe command line, against `python -c pass` measured in the same run.

A person types these commands; a scheduler runs `rnnpipe run` every night and most nights nothing is new.
Each command runs ROUNDS times in a fresh process in one temporary working directory (the median is shown);
`run sentiment (cached)` re-runs a small sentiment pipeline that an untimed first run completed, so every stage
is a cache hit. Targets from issue 10: --help, list and runs under 2 s; a cached run under 5 s.

    .venv/bin/python benchmarks/cli_latency.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from small_sentiment import SMALL  # benchmarks/ is on the path of a script run from it

RNNPIPE = [sys.executable, "-m", "rnnpipe.cli"]
COMMANDS = {
    "rnnpipe --help": [*RNNPIPE, "--help"],
    "rnnpipe list": [*RNNPIPE, "list"],
    "rnnpipe config sentiment": [*RNNPIPE, "config", "sentiment"],
    "rnnpipe runs sentiment": [*RNNPIPE, "runs", "sentiment"],
    "rnnpipe run sentiment (cached)": [*RNNPIPE, "run", "sentiment", *SMALL],
}
TARGETS = {"rnnpipe --help": 2.0, "rnnpipe list": 2.0, "rnnpipe runs sentiment": 2.0,
           "rnnpipe run sentiment (cached)": 5.0}


def seconds(command: list[str], cwd: Path) -> float:
    started = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    took = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} exited {done.returncode}:\n{done.stderr[-2000:]}")
    return took


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        print("preparing: one small sentiment run (untimed) so that the next ones are all cache hits")
        seconds(COMMANDS["rnnpipe run sentiment (cached)"], work)
        baseline = statistics.median(seconds([sys.executable, "-c", "pass"], work) for _ in range(args.rounds))
        print(f"{'command':<32} {'median s':>9} {'x python -c pass':>17} {'target s':>9}")
        print(f"{'python -c pass':<32} {baseline:>9.2f} {1.0:>17.1f} {'':>9}")
        for name, command in COMMANDS.items():
            took = statistics.median(seconds(command, work) for _ in range(args.rounds))
            target = TARGETS.get(name)
            verdict = "" if target is None else f"{target:>6.1f} {'ok' if took <= target else 'MISSED'}"
            print(f"{name:<32} {took:>9.2f} {took / baseline:>17.1f} {verdict:>9}")


if __name__ == "__main__":
    main()
