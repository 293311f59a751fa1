"""The local runner: executes a pipeline's steps in order with caching, atomic outputs and a lock.

Each execution writes into ``<root>/<app>/<step>/.tmp-<execution_id>/`` and is renamed to
``<root>/<app>/<step>/<execution_id>/`` only when its executor returns, so a killed run never leaves
something that looks finished; the next run deletes the leftovers and resumes from the last
complete step. A ``pipeline_root`` on a remote filesystem (``s3://``, ``gs://``: rnnpipe/storage.py) is
written the same way, with an upload and a completion marker in place of the rename.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import importlib.util
import json
import logging
import os
import posixpath
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from . import storage
from .compare import run_outcome
from .config import Config
from .context import ExecutionContext, RecordingTracker
from .data_cache import cache_dir, cache_root
from .dsl import Artifact, Component, Pipeline
from .errors import ConfigError, PipelineLockedError, RnnpipeError, StageIOError
from .faults import fault_point
from .fingerprint import fingerprint_dir
from .metadata import OPEN_RUN, MetadataStore, StoredArtifact
from .tracking import Tracker, close_run, git_commit, tracking_uri

log = logging.getLogger("rnnpipe")


def replay(tracker: Tracker, record: dict) -> None:
    tracker.log_batch(record.get("metrics", []), record.get("tags", []))
    for path, artifact_path in record.get("files", []):
        if storage.is_local(path):
            if Path(path).exists():
                tracker.log_artifact(path, artifact_path)
            continue
        with contextlib.suppress(FileNotFoundError), tempfile.TemporaryDirectory() as tmp:
            local = Path(tmp, posixpath.basename(path))
            local.write_bytes(storage.read_bytes(path))
            tracker.log_artifact(str(local), artifact_path)


@dataclass(frozen=True)
class Layout:
    """Where a pipeline's executions live, ``uri`` (``<pipeline_root>/<app>``, a path or a URI), and where this
    machine works on them, ``local``: the same folder, or for a remote root a local one (``$RNNPIPE_CACHE/
    pipelines/<hash>``) for the lock, the scratch space and the outputs being written."""

    uri: str
    local: Path

    @classmethod
    def of(cls, cfg: Config, pipeline: str) -> Layout:
        uri = storage.join(storage.resolve(cfg.pipeline_root), pipeline)
        if storage.is_local(uri):
            return cls(uri, Path(uri))
        storage.filesystem(uri)  # a missing filesystem package: a ConfigError before anything runs
        return cls(uri, cache_dir("pipelines") / hashlib.sha256(uri.encode()).hexdigest()[:16])

    @property
    def remote(self) -> bool:
        return not storage.is_local(self.uri)

    def execution(self, step: str, execution_id: int) -> str:
        return storage.join(self.uri, step, str(execution_id))


@dataclass
class RunResult:
    run_id: str
    mlflow_run_id: str
    executed: list[str] = field(default_factory=list)
    cache_hits: list[str] = field(default_factory=list)
    outputs: dict[str, Mapping[str, Artifact]] = field(default_factory=dict)
    metrics: dict[str, dict] = field(default_factory=dict)


@contextlib.contextmanager
def pipeline_lock(root: Path) -> Iterator[None]:
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            raise PipelineLockedError(
                f"another run of this pipeline is in progress ({holder}, lock {root / '.lock'}); "
                "wait for it to finish") from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()}")
        fh.flush()
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


@contextlib.contextmanager
def _locked(cfg: Config, pipeline: str) -> Iterator[tuple[Layout, MetadataStore]]:
    """The pipeline's folders and metadata store, with this machine's lock file and the store's lease held: no
    other run of the pipeline, on this machine or on any other sharing the store, can start meanwhile."""
    root = Layout.of(cfg, pipeline)
    with pipeline_lock(root.local):
        store = MetadataStore(metadata_url(cfg))
        with store.lease(pipeline):
            yield root, store


def metadata_url(cfg: Config) -> str:
    if cfg.metadata_url:
        return cfg.metadata_url
    if not storage.is_local(cfg.pipeline_root):
        raise ConfigError(f"pipeline_root {cfg.pipeline_root} is not a local path, and the default metadata store "
                          "is a SQLite file inside it: set metadata_url to a database every machine reaches "
                          "(postgresql://user@host/db)")
    return f"sqlite:///{Path(storage.resolve(cfg.pipeline_root)) / 'metadata.sqlite'}"


# Where the applications' packages are, installed or in a checkout: a step may read their files (a curated schema).
PIPELINES = Path(importlib.util.find_spec("rnnpipe.pipelines").submodule_search_locations[0])


def portable(params_json: str, data_cache_dir: str | None = None) -> str:
    """A step's parameters as its cache key holds them: a path inside the default data cache ($RNNPIPE_CACHE or
    ~/.cache/rnnpipe), inside a configured ``data.cache_dir`` or inside the applications' folder is written from
    that root, so another machine, where those folders are elsewhere, finds the same executions. What such a
    file holds is keyed apart (a source's data fingerprint, a curated schema's, a lexicon's or corpus's sha256),
    so the path alone never decides a cache hit."""
    roots = [(cache_root(), "$RNNPIPE_CACHE"), (PIPELINES, "$RNNPIPE_PIPELINES")]
    if data_cache_dir:
        roots.insert(0, (Path(data_cache_dir).expanduser(), "$DATA_CACHE_DIR"))
    for root, name in roots:
        for form in dict.fromkeys((str(root), str(root.resolve()))):  # as written, and without symbolic links
            params_json = params_json.replace(json.dumps(f"{form}/")[1:-1], f"{name}/")
    return params_json


def _cache_key(step: Component, inputs: dict[str, StoredArtifact], external: str, cfg: Config) -> str:
    payload = {
        "component": type(step).__name__, "id": step.id, "code": step.code_version(),
        "params": portable(step.params_json(), (cfg.get("data") or {}).get("cache_dir")), "external": external,
        "inputs": {k: a.fingerprint for k, a in sorted(inputs.items())},
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def _selected(pipeline: Pipeline, from_step: str | None, only: str | None) -> tuple[set[str], set[str]]:
    """Steps forced to run, and upstream steps whose latest outputs are reused whatever their key."""
    for name in (from_step, only):
        if name is not None:
            _step(pipeline, name)  # names the pipeline's steps when there is no such one
    if only:
        return {only}, pipeline.upstream_of(only)
    if from_step:
        forced = pipeline.downstream_of(from_step)
        return forced, {s.id for s in pipeline.steps} - forced
    return set(), set()


def _open(store: MetadataStore, pipeline: Pipeline, cfg: Config, uri: str, status: str = "RUNNING"
          ) -> tuple[str, Tracker]:
    """A new pipeline run in the metadata store and its MLflow run, with the config as parameters."""
    run_id = store.start_run(pipeline.name, status)
    experiment = cfg.mlflow.experiment or pipeline.name
    tags = {"rnnpipe.pipeline_run_id": run_id, "rnnpipe.pipeline": pipeline.name}
    commit = git_commit()
    if commit:
        tags["mlflow.source.git.commit"] = commit
    tracker = Tracker.start(uri, experiment, f"{pipeline.name}-{run_id[:8]}", tags)
    tracker.log_params(cfg.to_dict())
    store.set_run_mlflow_id(run_id, tracker.run_id)
    log.info("pipeline %s: run %s (MLflow run %s)", pipeline.name, run_id[:8], tracker.run_id)
    return run_id, tracker


def _close(store: MetadataStore, tracker: Tracker, result: RunResult, error: BaseException | str | None) -> None:
    """Records how a run ended, in the metadata store and in MLflow (tags a scheduler or a user can filter on)."""
    if error is None:
        tracker.set_tag("rnnpipe.cache_hits", ",".join(result.cache_hits) or "none")
        tracker.set_tag("rnnpipe.executed", ",".join(result.executed) or "none")
        tracker.set_tag("rnnpipe.outcome", outcome(result))
        store.finish_run(result.run_id, "COMPLETE", cache_hits=result.cache_hits, metrics=result.metrics,
                         mlflow_run_id=tracker.run_id)
        tracker.finish("FINISHED")
        return
    text = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
    store.finish_run(result.run_id, "FAILED", cache_hits=result.cache_hits, metrics=result.metrics,
                     mlflow_run_id=tracker.run_id, error=text)
    tracker.set_tag("rnnpipe.error", text[:5000])
    tracker.set_tag("rnnpipe.outcome", "failed")
    tracker.finish("KILLED" if isinstance(error, KeyboardInterrupt) else "FAILED")


def outcome(result: RunResult) -> str:
    """What a run did for the served model: pushed (a new version), not_blessed (the gate held the model back)
    or unchanged (the push was a cache hit, or the model was already served)."""
    return run_outcome(result.metrics, result.cache_hits)


def run_pipeline(pipeline: Pipeline, cfg: Config, *, from_step: str | None = None,
                 only: str | None = None) -> RunResult:
    forced, reuse_latest = _selected(pipeline, from_step, only)
    with _locked(cfg, pipeline.name) as (root, store):
        uri = tracking_uri(cfg.mlflow.tracking_uri)
        _recover(store, pipeline.name, root, uri)
        run_id, tracker = _open(store, pipeline, cfg, uri)
        result = RunResult(run_id, tracker.run_id)
        selected = [s for s in pipeline.steps if not only or s.id in forced | reuse_latest]
        checked = False

        def check_from(position: int) -> None:  # once, before the first step executes: cache hits need none
            nonlocal checked
            if not checked:
                checked = True
                _check(pipeline, selected[position:])

        try:
            produced: dict[tuple[str, str], StoredArtifact] = {}
            for position, step in enumerate(selected):
                inputs = {k: produced[(c.node.id, c.name)] for k, c in step.inputs.items()}
                outs = _execute(step, inputs, pipeline.name, root, store, run_id, tracker, cfg,
                                force=step.id in forced, reuse_latest=step.id in reuse_latest, result=result,
                                before_execute=functools.partial(check_from, position))
                for name, art in outs.items():
                    produced[(step.id, name)] = art
        except BaseException as e:
            _close(store, tracker, result, e)
            raise
        _close(store, tracker, result, None)
    return result


def _execute(step: Component, inputs: dict[str, StoredArtifact], pipeline: str, root: Layout, store: MetadataStore,
             run_id: str, tracker: Tracker, cfg: Config, *, result: RunResult, force: bool = False,
             reuse_latest: bool = False, before_execute: Callable[[], None] = lambda: None
             ) -> dict[str, StoredArtifact]:
    """One step of a run, executed or found in the cache; its outputs and metrics go into ``result``."""
    in_artifacts = LocalCopies(inputs)
    external = step.external_fingerprint(_recorded(inputs))
    if external:  # what a step reads from outside the pipeline: for a source step, the data
        kind = "external" if step.inputs else "data_fingerprint"
        tracker.set_tag(f"rnnpipe.{kind}.{step.id}", external)
    outs, metrics = _run_step(step, inputs, in_artifacts, external, pipeline, root, store, run_id, tracker, cfg,
                              force=force, reuse_latest=reuse_latest, result=result, before_execute=before_execute)
    result.outputs[step.id] = LocalCopies(outs)
    result.metrics[step.id] = metrics
    return outs


# Scheduled runs (rnnpipe/airflow_dag.py): each stage is a scheduler task in its own process. The run is OPEN_RUN
# from the first task to the last, so a run that starts in between does not take it for one a killed process left.


def open_scheduled_run(pipeline: Pipeline, cfg: Config, tags: dict[str, str] | None = None) -> str:
    """Starts a run whose stages ``run_scheduled_stage`` executes one at a time, until ``close_scheduled_run``.
    Returns the run's id."""
    with _locked(cfg, pipeline.name) as (root, store):
        uri = tracking_uri(cfg.mlflow.tracking_uri)
        _recover(store, pipeline.name, root, uri)
        run_id, tracker = _open(store, pipeline, cfg, uri, status=OPEN_RUN)
        tracker.set_tag("rnnpipe.scheduled", "true")
        for key, value in (tags or {}).items():
            tracker.set_tag(key, value)
    return run_id


def _attach_open_run(store: MetadataStore, run_id: str, cfg: Config) -> Tracker:
    run = store.get_run(run_id)
    if run is None or run["status"] != OPEN_RUN:
        state = "no such run" if run is None else f"it is {run['status']}"
        raise RnnpipeError(f"pipeline run {run_id} is not open ({state}); a scheduled run's stages run between "
                           "its open and close tasks")
    return Tracker.attach(tracking_uri(cfg.mlflow.tracking_uri), run["mlflow_run_id"])


def run_scheduled_stage(pipeline: Pipeline, cfg: Config, run_id: str, stage: str) -> RunResult:
    """Runs one stage of an open run, cached as in `rnnpipe run`, on what this run's upstream stages produced.
    A retry after a killed attempt discards that attempt's leftovers and resumes (the Trainer from its backup)."""
    step = _step(pipeline, stage)
    with _locked(cfg, pipeline.name) as (root, store):
        _recover(store, pipeline.name, root, tracking_uri(cfg.mlflow.tracking_uri))
        tracker = _attach_open_run(store, run_id, cfg)
        produced = store.run_outputs(run_id)
        missing = sorted({c.node.id for c in step.inputs.values() if (c.node.id, c.name) not in produced})
        if missing:
            raise RnnpipeError(f"{stage}: {', '.join(missing)} has not completed in run {run_id[:8]}; "
                               "run the stages in the pipeline's order")
        inputs = {k: produced[(c.node.id, c.name)] for k, c in step.inputs.items()}
        result = RunResult(run_id, tracker.run_id)

        _execute(step, inputs, pipeline.name, root, store, run_id, tracker, cfg, result=result,
                 before_execute=functools.partial(_check, pipeline, [step]))
    return result


def close_scheduled_run(pipeline: Pipeline, cfg: Config, run_id: str) -> RunResult:
    """Ends an open run: COMPLETE when every stage completed (executed or cached), else FAILED naming the
    stages that did not; the MLflow run gets the same status and the outcome tag."""
    with _locked(cfg, pipeline.name) as (root, store):
        tracker = _attach_open_run(store, run_id, cfg)
        result = RunResult(run_id, tracker.run_id)
        done = store.run_executions(run_id)
        for step in pipeline.steps:
            found = done.get(step.id)
            if found is None:
                continue
            status, execution_id, reused = found
            (result.cache_hits if status == "CACHED" else result.executed).append(step.id)
            result.metrics[step.id] = store.execution_metrics(reused or execution_id).get("final", {})
        missing = [s.id for s in pipeline.steps if s.id not in done]
        failed = store.failed_in_run(run_id)
        error = None
        if missing:
            error = (f"stage(s) {', '.join(missing)} did not complete"
                     + (f" ({', '.join(failed)} failed)" if failed else ""))
        _close(store, tracker, result, error)
    return result


def stages_to_run(pipeline: Pipeline, cfg: Config) -> list[str]:
    """The stages a run would execute rather than find in the cache, in order; [] when nothing changed (no new
    span, no new code or config). Reads the metadata store only, so a scheduler can ask before every run."""
    store = MetadataStore(metadata_url(cfg))
    produced: dict[tuple[str, str], StoredArtifact] = {}
    for position, step in enumerate(pipeline.steps):
        inputs = {k: produced[(c.node.id, c.name)] for k, c in step.inputs.items()}
        external = step.external_fingerprint(_recorded(inputs))
        previous = store.find_complete(pipeline.name, step.id, _cache_key(step, inputs, external, cfg))
        if previous is None:  # this one executes; what follows gets new inputs, so it would too
            return [s.id for s in pipeline.steps[position:]]
        for name, art in store.outputs_of(previous).items():
            produced[(step.id, name)] = art
    return []


@dataclass
class Collected:
    """What `collect_garbage` deleted (or, in a dry run, would delete): (component, execution id) and bytes."""

    executions: list[tuple[str, int]]
    bytes: int
    copies: int = 0  # of those, bytes of this machine's local copies of a remote pipeline_root's artifacts
    scratch: int = 0  # ... and of scratch folders no kept run's step would resume from


def collect_garbage(cfg: Config, pipeline: str, keep_runs: int, *, dry_run: bool = False) -> Collected:
    """Deletes the outputs of the pipeline's executions that none of its ``keep_runs`` latest finished runs (nor a
    run still going) produced or reused; their records stay, as COLLECTED, so `rnnpipe runs` and the lineage
    still show them, and a run that needs one again executes it again. With a remote pipeline_root, this
    machine's local copies of those outputs go too, unless an execution still in use (of any pipeline in the
    store) has the same content; and so do the scratch folders of steps none of the kept runs tried. Holds the
    pipeline's lease, so no run of the pipeline is in progress meanwhile."""
    if isinstance(keep_runs, bool) or not isinstance(keep_runs, int) or keep_runs < 1:
        raise ConfigError(f"keep_runs: expected a positive number of runs, got {keep_runs!r}")
    with _locked(cfg, pipeline) as (root, store):
        _recover(store, pipeline, root, tracking_uri(cfg.mlflow.tracking_uri))
        doomed = store.unkept_executions(pipeline, keep_runs)
        size = sum(storage.size(root.execution(component, i)) for component, i in doomed)
        copies = _unused_copies(store, [i for _, i in doomed]) if root.remote else []
        copies_size = sum(storage.size(str(copy)) for copy in copies)
        scratch = _stale_scratch(root, store.cache_keys_in_runs(pipeline, keep_runs))
        scratch_size = sum(storage.size(str(folder)) for folder in scratch)
        if not dry_run:
            # Local copies first: once their executions are recorded COLLECTED, no later gc would find them.
            for folder in [*copies, *scratch]:
                storage.drop_folder(folder)
            for component, i in doomed:
                # Unpublished first (the marker, or the folder renamed away), then recorded: a gc cut short
                # leaves neither a folder that a cache lookup takes for whole outputs nor one no gc deletes.
                storage.unpublish(root.execution(component, i))
                store.mark_collected(i)
    return Collected(doomed, size + copies_size + scratch_size, copies_size, scratch_size)


def _stale_scratch(root: Layout, kept: set[tuple[str, str]]) -> list[Path]:
    """Scratch folders (a failed or killed step's epoch backups, an ensemble's finished members) of steps that
    none of the kept runs tried (``kept``: their component and cache key): no run resumes from them unless it
    repeats an older configuration, which then starts afresh."""
    wanted = {_scratch_dir(root, component, key) for component, key in kept}
    return sorted(folder for folder in root.local.glob(".scratch/*/*") if folder.is_dir() and folder not in wanted)


def _scratch_dir(root: Layout, step: str, key: str) -> Path:
    """Where a step with cache key ``key`` keeps what outlives a kill (a rerun with the same key resumes there)."""
    return root.local / ".scratch" / step / key[:16]


def _unused_copies(store: MetadataStore, doomed: list[int]) -> list[Path]:
    """This machine's local copies of the outputs of the ``doomed`` executions that nothing else in use holds."""
    fingerprints = {a.fingerprint for i in doomed for a in store.outputs_of(i).values()}
    copies = (storage.copy_path(f) for f in sorted(fingerprints - store.fingerprints_in_use(excluding=doomed)))
    return [copy for copy in copies if copy.exists()]


def _check(pipeline: Pipeline, steps: list[Component]) -> None:
    """The pipeline's checks and those of the steps still to run, before the first one executes."""
    for check in pipeline.checks:
        check()
    for step in steps:
        step.check()


def _step(pipeline: Pipeline, stage: str) -> Component:
    for step in pipeline.steps:
        if step.id == stage:
            return step
    raise ConfigError(f"no step '{stage}' in pipeline {pipeline.name}; steps: "
                      f"{', '.join(s.id for s in pipeline.steps)}")


def _artifact(stored: StoredArtifact) -> Artifact:
    """What an executor reads: the artifact's folder, or a local copy of it when it is remote."""
    return Artifact(stored.name, stored.type, str(storage.local_copy(stored.uri, stored.fingerprint)),
                    stored.fingerprint)


def _recorded(stored: dict[str, StoredArtifact]) -> dict[str, Artifact]:
    """Artifacts as the store records them, their URIs perhaps remote: what a cache check reads (fingerprints)."""
    return {k: Artifact(a.name, a.type, a.uri, a.fingerprint) for k, a in stored.items()}


class LocalCopies(Mapping[str, Artifact]):
    """Artifacts by name as executors read them (`_artifact`), each downloaded, when remote, on its first look-up:
    a cached step, or one whose cache check reads none of its inputs, downloads nothing."""

    def __init__(self, stored: dict[str, StoredArtifact]) -> None:
        self._stored = dict(stored)
        self._local: dict[str, Artifact] = {}

    def __getitem__(self, name: str) -> Artifact:
        if name not in self._local:
            self._local[name] = _artifact(self._stored[name])
        return self._local[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._stored)

    def __len__(self) -> int:
        return len(self._stored)


def _recover(store: MetadataStore, pipeline: str, root: Layout, uri: str) -> None:
    """Cleans up after a killed run: its executions are ABANDONED (their outputs, renamed in or not, are
    deleted: nothing reads them), its MLflow runs are closed as KILLED, and temporary folders go."""
    abandoned, mlflow_runs = store.abandon_stale(pipeline)
    if abandoned:
        log.warning("found %d execution(s) left unfinished by a killed run (%s); they are discarded and re-run",
                    len(abandoned), ", ".join(f"{c} {i}" for c, i in abandoned))
    for component, execution_id in abandoned:
        storage.remove(root.execution(component, execution_id))
    for tmp in root.local.glob("*/.tmp-*"):
        shutil.rmtree(tmp, ignore_errors=True)
    for run_id in mlflow_runs:
        close_run(uri, run_id, "KILLED")


def _run_step(step: Component, inputs: dict[str, StoredArtifact], in_artifacts: Mapping[str, Artifact], external: str,
              pipeline: str, root: Layout, store: MetadataStore, run_id: str, tracker: Tracker, cfg: Config, *,
              force: bool, reuse_latest: bool, result: RunResult, before_execute: Callable[[], None] = lambda: None
              ) -> tuple[dict[str, StoredArtifact], dict]:
    key = _cache_key(step, inputs, external, cfg)
    if reuse_latest:
        previous = store.find_complete(pipeline, step.id)
        if previous is None:
            raise RnnpipeError(f"{step.id} has never completed in pipeline {pipeline}: run the whole pipeline first")
    else:
        previous = None if force else store.find_complete(pipeline, step.id, key)
    if previous is not None and not reuse_latest:
        reason = step.verify_cached(LocalCopies(store.outputs_of(previous)),
                                    _context(step, pipeline, previous, root, key, cfg, tracker,
                                             root.local / step.id))
        if reason:
            log.warning("%s: cached execution %d cannot be reused: %s; running it again", step.id, previous, reason)
            previous = None
    if previous is not None:
        record = store.execution_metrics(previous)
        store.start_execution(run_id, pipeline, step.id, key, status="CACHED", reused=previous)
        replay(tracker, record)
        result.cache_hits.append(step.id)
        log.info("%s: cache hit (execution %d)", step.id, previous)
        return store.outputs_of(previous), record.get("final", {})

    before_execute()
    execution_id = store.start_execution(run_id, pipeline, step.id, key)
    store.record_inputs(execution_id, inputs)
    tmp, final = root.local / step.id / f".tmp-{execution_id}", root.execution(step.id, execution_id)
    out_artifacts = {name: Artifact(name, type_, str(tmp / name)) for name, type_ in step.OUTPUTS.items()}
    ctx = _context(step, pipeline, execution_id, root, key, cfg, tracker, tmp, final)
    log.info("%s: running (execution %d)", step.id, execution_id)
    started = time.time()
    try:
        for art in out_artifacts.values():
            Path(art.uri).mkdir(parents=True)
        ctx.scratch_dir.mkdir(parents=True, exist_ok=True)
        fault_point(f"before:{step.id}", tmp)
        metrics = step.executor(in_artifacts, out_artifacts, dict(step.params), ctx) or {}
        elapsed = time.time() - started
        ctx.tracker.log_metric(f"time/{step.id}_seconds", elapsed)
        ctx.tracker.log_metrics({f"{step.id}/{k}": v for k, v in metrics.items()})
        fingerprints = {name: fingerprint_dir(tmp / name) for name in step.OUTPUTS}
        storage.publish(tmp, final)
        fault_point(f"renamed:{step.id}")
        outs = {a.name: a for a in store.record_outputs(execution_id, [
            (name, type_, storage.join(final, name), fingerprints[name]) for name, type_ in step.OUTPUTS.items()])}
        if root.remote:  # this machine keeps what it uploaded: the next steps read it without a download
            for name in step.OUTPUTS:
                storage.keep_copy(tmp / name, fingerprints[name])
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException as e:
        store.finish_execution(execution_id, "FAILED")
        shutil.rmtree(tmp, ignore_errors=True)
        storage.remove(final)
        if isinstance(e, OSError):  # a read-only mount, a full disk: one line naming the stage and the path
            raise StageIOError(_io_message(step.id, e)) from e
        raise
    ctx.tracker.record["final"] = metrics
    store.finish_execution(execution_id, "COMPLETE", ctx.tracker.record)
    fault_point(f"after:{step.id}")
    shutil.rmtree(ctx.scratch_dir, ignore_errors=True)
    result.executed.append(step.id)
    log.info("%s: done in %.1fs", step.id, elapsed)
    return outs, metrics


def _context(step: Component, pipeline: str, execution_id: int, root: Layout, key: str, cfg: Config,
             tracker: Tracker, tmp: Path, final: str | None = None) -> ExecutionContext:
    return ExecutionContext(pipeline, step.id, execution_id, _scratch_dir(root, step.id, key),
                            [f"--runner={cfg.beam.runner}", *cfg.beam.options], cfg.distribution.strategy,
                            RecordingTracker(tracker, tmp.resolve(), final or str(tmp.resolve())),
                            cfg.distribution.workers)


def _io_message(step: str, e: OSError) -> str:
    where = f" {e.filename}" if e.filename else ""
    return f"{step}: cannot read or write{where}: {e.strerror or e}; {StageIOError.hint(e)}"
