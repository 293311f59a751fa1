"""`rnnpipe gc`: the outputs of executions that no recent run used are deleted, their records kept, and a run that
needs one again executes it again."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from toy_components import toy_config, toy_pipeline

from rnnpipe.cli import main
from rnnpipe.errors import ConfigError, PipelineLockedError
from rnnpipe.metadata import MetadataStore, executions
from rnnpipe.runner import collect_garbage, metadata_url, run_pipeline


def folders(workdir: Path) -> list[str]:
    """The published execution folders, as step/id."""
    return sorted(f"{p.parent.name}/{p.name}" for p in (workdir / "pipeline_root" / "toy").glob("*/*")
                  if p.name.isdigit())


def test_gc_keeps_what_the_latest_runs_used_and_a_collected_step_runs_again(workdir: Path) -> None:
    cfg = toy_config(workdir)
    for factor in (2, 3, 4):  # Source once, reused by the later runs; Scale and ScaleAgain each time
        run_pipeline(toy_pipeline(factor=factor), cfg)
    assert folders(workdir) == ["Scale/2", "Scale/5", "Scale/8", "ScaleAgain/3", "ScaleAgain/6", "ScaleAgain/9",
                                "Source/1"]

    listed = collect_garbage(cfg, "toy", keep_runs=2, dry_run=True)
    assert listed.executions == [("Scale", 2), ("ScaleAgain", 3)] and listed.bytes == 3  # "6" and "60"
    assert len(folders(workdir)) == 7  # a dry run deletes nothing

    assert collect_garbage(cfg, "toy", keep_runs=1).executions == listed.executions + [("Scale", 5),
                                                                                       ("ScaleAgain", 6)]
    assert folders(workdir) == ["Scale/8", "ScaleAgain/9", "Source/1"]  # Source/1 is the last run's, reused
    assert collect_garbage(cfg, "toy", keep_runs=1).executions == []
    with MetadataStore(metadata_url(cfg)).engine.connect() as c:
        statuses = dict(c.execute(sa.select(executions.c.id, executions.c.status)).all())
    assert [statuses[i] for i in (2, 3, 5, 6)] == ["COLLECTED"] * 4  # recorded still, for runs and lineage

    latest = run_pipeline(toy_pipeline(factor=4), cfg)
    assert latest.cache_hits == ["Source", "Scale", "ScaleAgain"]
    earlier = run_pipeline(toy_pipeline(factor=2), cfg)  # its outputs were collected: executed again
    assert earlier.cache_hits == ["Source"] and earlier.executed == ["Scale", "ScaleAgain"]
    assert Path(earlier.outputs["ScaleAgain"]["numbers"].uri, "n.txt").read_text() == "60"


def test_gc_deletes_the_scratch_folders_that_no_kept_runs_step_would_resume_from(workdir: Path) -> None:
    cfg = toy_config(workdir)
    for factor in (2, 3):
        run_pipeline(toy_pipeline(factor=factor), cfg)
    with MetadataStore(metadata_url(cfg)).engine.connect() as c:
        keys = dict(c.execute(sa.select(executions.c.id, executions.c.cache_key)).all())
    # What a killed Scale would have left (epoch backups): in the first run (execution 2) and in the second (5).
    scratch = workdir / "pipeline_root" / "toy" / ".scratch" / "Scale"
    for i in (2, 5):
        (scratch / keys[i][:16]).mkdir(parents=True)
        (scratch / keys[i][:16] / "epoch-0001.weights.h5").write_bytes(b"w" * 10)
    listed = collect_garbage(cfg, "toy", keep_runs=1, dry_run=True)
    assert listed.scratch == 10 and len(list(scratch.iterdir())) == 2
    done = collect_garbage(cfg, "toy", keep_runs=1)
    assert done.scratch == 10 and done.bytes == 3 + 10  # "6" and "60", and the first run's backup
    assert [p.name for p in scratch.iterdir()] == [keys[5][:16]]  # a rerun of the kept run's config resumes


def test_gc_is_refused_while_a_run_holds_the_lease_and_checks_its_argument(workdir: Path) -> None:
    cfg = toy_config(workdir)
    run_pipeline(toy_pipeline(), cfg)
    with MetadataStore(metadata_url(cfg)).lease("toy"), pytest.raises(PipelineLockedError):
        collect_garbage(cfg, "toy", keep_runs=1)
    with pytest.raises(ConfigError, match=r"keep_runs: expected a positive number of runs, got 0"):
        collect_garbage(cfg, "toy", keep_runs=0)


def test_the_gc_command_reports_what_it_would_delete(workdir: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["gc", "sentiment", "--dry-run", "--keep-runs", "3"]) == 0
    assert capsys.readouterr().out.startswith("sentiment: would delete the outputs of 0 execution(s), 0.0 MB, "
                                              "that none of the last 3 run(s) used")
