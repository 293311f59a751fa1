"""Per-stage wall time of the default sentiment run, so the next issues know where the time goes.

Runs the default pipeline (or the one named by --app, with any --set overrides) in a fresh temporary
directory, then reads the executions' start and finish times from the metadata store and prints each
stage's seconds and share of the total. A second run in the same directory measures the cached path
(the baseline every later change is compared against: a fully cached run should take seconds).

    .venv/bin/python benchmarks/stage_times.py [--app sentiment] [--set trainer.epochs=1 ...]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import sqlalchemy as sa

from rnnpipe.app import load_application
from rnnpipe.config import load_config
from rnnpipe.metadata import executions
from rnnpipe.runner import metadata_url, run_pipeline


def stage_times(cfg, run_id: str) -> list[tuple[str, str, float]]:
    engine = sa.create_engine(metadata_url(cfg))
    with engine.connect() as c:
        rows = c.execute(sa.select(executions.c.component, executions.c.status, executions.c.started_at,
                                   executions.c.finished_at).where(executions.c.run_id == run_id)
                         .order_by(executions.c.id)).all()
    return [(r.component, r.status, (r.finished_at or r.started_at) - r.started_at) for r in rows]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--app", default="sentiment")
    p.add_argument("--set", action="append", default=[])
    args = p.parse_args()
    app = load_application(args.app)
    work = tempfile.mkdtemp(prefix="rnnpipe-bench-")
    os.chdir(work)
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    cfg = load_config(app.config_file, None, args.set)
    app.fetch_data(cfg)
    for label in ("fresh run", "cached re-run"):
        started = time.perf_counter()
        result = run_pipeline(app.build_pipeline(cfg), cfg)
        wall = time.perf_counter() - started
        rows = stage_times(cfg, result.run_id)
        print(f"\n{args.app} {label}: {wall:.1f}s wall in {work}")
        print(f"  {'stage':<18}{'status':<10}{'seconds':>9}{'share':>8}")
        for name, status, seconds in rows:
            print(f"  {name:<18}{status:<10}{seconds:>9.1f}{seconds / wall:>8.1%}")
        overhead = wall - sum(s for _, _, s in rows)
        print(f"  {'(engine+MLflow)':<18}{'':<10}{overhead:>9.1f}{overhead / wall:>8.1%}")


if __name__ == "__main__":
    main()
