"""Executors for the multi-worker launcher's tests (tests/test_scale_out.py): plain functions that each worker
process runs, no TensorFlow, so the launcher's own behaviour is what is tested."""

from __future__ import annotations

import os
import time

from rnnpipe.errors import DataError


def report_index(inputs, outputs, params, ctx):
    """Writes this worker's index into its output and logs a metric; the chief's output is the real one."""
    outputs["out"].path("index.txt").write_text(str(ctx.worker_index))
    ctx.tracker.log_metric("loss", 0.5 + ctx.worker_index, step=1)
    ctx.tracker.set_tag("worker", ctx.worker_index)
    return {"index": ctx.worker_index, "workers": ctx.workers}


def one_worker_dies(inputs, outputs, params, ctx):
    """Worker 1 dies; the chief waits as it would in a collective, until it is stopped."""
    if ctx.worker_index == 1:
        os._exit(3)
    time.sleep(120)


def chief_finds_bad_data(inputs, outputs, params, ctx):
    if ctx.chief:
        raise DataError("data.csv:7: the label 'maybe' is not one of ['neg', 'pos']")
    time.sleep(120)
