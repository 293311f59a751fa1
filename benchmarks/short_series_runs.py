"""The whole forecasting default (network included) on development series, where `short_series.py` measures the
statistical part alone: one `rnnpipe run forecasting --set data.path=...` per series, as
`judge_short_series.py` runs it, with the shares the Trainer chose on held-out windows (from the run's log).
For developing the ETS hybrid; the judge's series stay out of it.

    .venv/bin/python benchmarks/short_series_runs.py [--season 4] [--generated 2] [--seed 19] [--keep DIR]

Quarterly (`--season 4`): the generated quarterly series and the statsmodels macro cuts; monthly (`--season 12`):
the generated monthly series and the monthly statsmodels cuts. About 45 s a series on 2 cores.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import judge_short_series  # noqa: E402
import short_series  # noqa: E402

STATSMODELS = ("housing_starts", "electrical_equipment", "el_nino", "macro_")  # not the default series' cuts
SHARES = re.compile(r"correction_share ([0-9.]+).*?eval_mae_trained ([0-9.]+), eval_mae_base ([0-9.]+)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--season", type=int, choices=(4, 12), default=4)
    parser.add_argument("--generated", type=int, default=2, help="draws of each generated kind")
    parser.add_argument("--seed", type=int, default=19)
    parser.add_argument("--keep", type=Path, default=None,
                        help="keep each run's folder here (for share_rules.py, which compares rules on them)")
    args = parser.parse_args()
    generated = short_series.generated(args.generated, np.random.default_rng(args.seed))
    series = [s for s in generated if s[2] == args.season]
    series += [s for s in short_series.real(np.random.default_rng(args.seed))
               if s[2] == args.season and s[0].startswith(STATSMODELS)]
    print(f"{'series (values)':26s}{'ETS hybrid':>11s}{'ETS':>7s}{'Theta':>7s}{'s-naive':>8s}   network share "
          "(eval MAE with it / the base alone)", flush=True)
    table = []
    with tempfile.TemporaryDirectory() as tmp:
        work = args.keep or Path(tmp)
        for name, y, season, horizon in series:
            scores = judge_short_series.judge(name, np.asarray(y, float), season, horizon, work / name)
            shares = SHARES.search((work / name / "run.log").read_text())
            table.append(scores)
            print(f"{f'{name} ({len(y)})':26s}{scores['ETS hybrid']:11.3f}{scores['ETS']:7.3f}"
                  f"{scores['Theta']:7.3f}{scores['seasonal-naive']:8.3f}   "
                  + ("{} ({} / {})".format(*shares.groups()) if shares else "-"), flush=True)
    means = {k: np.mean([r[k] for r in table]) for k in ("ETS hybrid", "ETS", "Theta", "seasonal-naive")}
    print(f"{'mean':26s}{means['ETS hybrid']:11.3f}{means['ETS']:7.3f}{means['Theta']:7.3f}"
          f"{means['seasonal-naive']:8.3f}")
    print(f"ETS hybrid at least as good as ETS on {sum(r['ETS hybrid'] <= r['ETS'] for r in table)} of {len(table)}")


if __name__ == "__main__":
    main()
