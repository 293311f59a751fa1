"""The metadata store: pipeline runs, executions, artifacts and lineage events, in any SQLAlchemy database."""

from __future__ import annotations

import contextlib
import json
import os
import posixpath
import socket
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles

from . import storage
from .errors import PipelineLockedError
from .processes import pid_alive

_meta = sa.MetaData()

runs = sa.Table(
    "pipeline_runs", _meta,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("pipeline", sa.String(128), nullable=False, index=True),
    sa.Column("started_at", sa.Float, nullable=False),
    sa.Column("finished_at", sa.Float),
    sa.Column("status", sa.String(16), nullable=False),  # RUNNING, OPEN (scheduled), COMPLETE, FAILED, ABANDONED
    sa.Column("mlflow_run_id", sa.String(64)),
    sa.Column("cache_hits", sa.Text, default="[]"),
    sa.Column("metrics", sa.Text, default="{}"),
    sa.Column("error", sa.Text),
)

executions = sa.Table(
    "executions", _meta,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.String(36), sa.ForeignKey("pipeline_runs.id"), nullable=False, index=True),
    sa.Column("pipeline", sa.String(128), nullable=False),
    sa.Column("component", sa.String(128), nullable=False),
    sa.Column("cache_key", sa.String(64), nullable=False, index=True),
    # RUNNING, COMPLETE, FAILED, ABANDONED, CACHED, COLLECTED (complete, its outputs deleted by `rnnpipe gc`)
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("started_at", sa.Float, nullable=False),
    sa.Column("finished_at", sa.Float),
    sa.Column("metrics", sa.Text, default="{}"),
    sa.Column("reused_execution_id", sa.Integer),
)

artifacts = sa.Table(
    "artifacts", _meta,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("execution_id", sa.Integer, sa.ForeignKey("executions.id"), nullable=False, index=True),
    sa.Column("name", sa.String(128), nullable=False),
    sa.Column("type", sa.String(64), nullable=False),
    sa.Column("uri", sa.Text, nullable=False),
    sa.Column("fingerprint", sa.String(64), nullable=False),
)

leases = sa.Table(
    "pipeline_leases", _meta,
    sa.Column("pipeline", sa.String(128), primary_key=True),  # one holder per pipeline: the insert is the lock
    sa.Column("host", sa.String(255), nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("token", sa.String(32), nullable=False),
    sa.Column("renewed_at", sa.Float, nullable=False),
)

events = sa.Table(
    "events", _meta,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("execution_id", sa.Integer, sa.ForeignKey("executions.id"), nullable=False, index=True),
    sa.Column("artifact_id", sa.Integer, sa.ForeignKey("artifacts.id"), nullable=False),
    sa.Column("kind", sa.String(8), nullable=False),  # input, output
    sa.Column("name", sa.String(128), nullable=False),
)


class database_clock(sa.sql.expression.FunctionElement):
    """The database's clock in seconds since the epoch. Lease times are written and compared on it alone, so
    machines that share a store need not agree on the time: one whose clock runs minutes ahead would otherwise
    take a live run's lease over, and one behind would leave a dead run's lease standing too long."""

    type = sa.Float()
    inherit_cache = True


@compiles(database_clock, "sqlite")
def _sqlite_clock(element: database_clock, compiler: object, **kw: object) -> str:
    return "((julianday('now') - 2440587.5) * 86400.0)"


@compiles(database_clock, "postgresql")
def _postgresql_clock(element: database_clock, compiler: object, **kw: object) -> str:
    # clock_timestamp(), not now(): now() stands still for the whole transaction.
    return "CAST(EXTRACT(EPOCH FROM clock_timestamp()) AS DOUBLE PRECISION)"


@compiles(database_clock, "mysql")
@compiles(database_clock, "mariadb")
def _mysql_clock(element: database_clock, compiler: object, **kw: object) -> str:
    return "UNIX_TIMESTAMP(NOW(6))"


OPEN_RUN = "OPEN"  # a scheduled run between its stages (rnnpipe/runner.py)
LEASE_SECONDS = 120.0  # a holder that has not renewed its lease for this long is gone (a lost machine or pod)
RENEW_SECONDS = 20.0


@dataclass(frozen=True)
class StoredArtifact:
    id: int
    name: str
    type: str
    uri: str
    fingerprint: str


class MetadataStore:
    """Records what ran, what it read and wrote, and finds finished executions to reuse."""

    def __init__(self, url: str) -> None:
        if url.startswith("sqlite:///"):
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        self.engine = sa.create_engine(url)
        for attempt in range(5):
            try:
                _meta.create_all(self.engine)
                break
            except sa.exc.DBAPIError:  # a shared database: another process created a table since our check
                if attempt == 4:
                    raise

    # runs -------------------------------------------------------------------------------------
    def start_run(self, pipeline: str, status: str = "RUNNING") -> str:
        run_id = uuid.uuid4().hex
        with self.engine.begin() as c:
            c.execute(runs.insert().values(id=run_id, pipeline=pipeline, started_at=time.time(), status=status))
        return run_id

    def get_run(self, run_id: str) -> dict | None:
        with self.engine.connect() as c:
            row = c.execute(runs.select().where(runs.c.id == run_id)).mappings().first()
        return dict(row) if row else None

    def run_executions(self, run_id: str) -> dict[str, tuple[str, int, int | None]]:
        """component -> (status, execution id, reused execution id) of the run's last COMPLETE or CACHED
        execution of each component."""
        with self.engine.connect() as c:
            rows = c.execute(executions.select().where(
                (executions.c.run_id == run_id) & executions.c.status.in_(("COMPLETE", "CACHED")))
                .order_by(executions.c.id)).mappings().all()
        return {r["component"]: (r["status"], r["id"], r["reused_execution_id"]) for r in rows}

    def run_outputs(self, run_id: str) -> dict[tuple[str, str], StoredArtifact]:
        """(component, output name) -> artifact, for what the run's stages produced or reused so far."""
        found = {}
        for component, (_, execution_id, reused) in self.run_executions(run_id).items():
            for name, art in self.outputs_of(reused or execution_id).items():
                found[(component, name)] = art
        return found

    def failed_in_run(self, run_id: str) -> list[str]:
        """The components with a FAILED or ABANDONED execution in the run, in the order they ran."""
        with self.engine.connect() as c:
            rows = c.execute(sa.select(executions.c.component).where(
                (executions.c.run_id == run_id) & executions.c.status.in_(("FAILED", "ABANDONED")))
                .order_by(executions.c.id)).all()
        return list(dict.fromkeys(r[0] for r in rows))

    def finish_run(self, run_id: str, status: str, *, cache_hits: list[str], metrics: dict,
                   mlflow_run_id: str | None, error: str | None = None) -> None:
        with self.engine.begin() as c:
            c.execute(runs.update().where(runs.c.id == run_id).values(
                finished_at=time.time(), status=status, cache_hits=json.dumps(cache_hits),
                metrics=json.dumps(metrics), mlflow_run_id=mlflow_run_id, error=error))

    def set_run_mlflow_id(self, run_id: str, mlflow_run_id: str) -> None:
        with self.engine.begin() as c:
            c.execute(runs.update().where(runs.c.id == run_id).values(mlflow_run_id=mlflow_run_id))

    def list_runs(self, pipeline: str, limit: int = 20) -> list[dict]:
        with self.engine.connect() as c:
            rows = c.execute(runs.select().where(runs.c.pipeline == pipeline)
                             .order_by(runs.c.started_at.desc()).limit(limit)).mappings().all()
        return [dict(r, cache_hits=json.loads(r["cache_hits"] or "[]"), metrics=json.loads(r["metrics"] or "{}"))
                for r in rows]

    def abandon_stale(self, pipeline: str) -> tuple[list[tuple[str, int]], list[str]]:
        """Marks runs and executions left RUNNING by a killed process (the caller holds the pipeline lock).

        Returns the abandoned executions as (component, id) and the MLflow run ids of the abandoned runs.
        """
        stale_exec = (executions.c.pipeline == pipeline) & (executions.c.status == "RUNNING")
        stale_runs = (runs.c.pipeline == pipeline) & (runs.c.status == "RUNNING")
        with self.engine.begin() as c:
            abandoned = [(r.component, r.id) for r in c.execute(
                sa.select(executions.c.component, executions.c.id).where(stale_exec))]
            mlflow_ids = [r[0] for r in c.execute(sa.select(runs.c.mlflow_run_id).where(stale_runs)) if r[0]]
            c.execute(executions.update().where(stale_exec).values(status="ABANDONED", finished_at=time.time()))
            c.execute(runs.update().where(stale_runs).values(status="ABANDONED", finished_at=time.time()))
        return abandoned, mlflow_ids

    # the lease ------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def lease(self, pipeline: str) -> Iterator[None]:
        """Holds the pipeline's lease in this store while the block runs: one run (or scheduled stage) of a
        pipeline at a time across every machine that shares the store, whatever its pipeline root. The lease is
        renewed in the background; one whose holder stopped renewing (a machine that died) or is a dead process
        on this host is taken over, so a killed run never blocks the next."""
        token = uuid.uuid4().hex
        self._take_lease(pipeline, token)
        stop = threading.Event()

        def renew() -> None:
            while not stop.wait(RENEW_SECONDS):
                with contextlib.suppress(sa.exc.SQLAlchemyError), self.engine.begin() as c:
                    c.execute(leases.update().where((leases.c.pipeline == pipeline) & (leases.c.token == token))
                              .values(renewed_at=database_clock()))

        renewer = threading.Thread(target=renew, name=f"rnnpipe-lease-{pipeline}", daemon=True)
        renewer.start()
        try:
            yield
        finally:
            stop.set()
            renewer.join()
            with self.engine.begin() as c:
                c.execute(leases.delete().where((leases.c.pipeline == pipeline) & (leases.c.token == token)))

    def _take_lease(self, pipeline: str, token: str) -> None:
        host = socket.gethostname()
        with self.engine.begin() as c:
            held = c.execute(sa.select(leases, (database_clock() - leases.c.renewed_at).label("age"))
                             .where(leases.c.pipeline == pipeline)).mappings().first()
            if held is not None:
                gone = held["age"] > LEASE_SECONDS or (held["host"] == host and not pid_alive(held["pid"]))
                if not gone:
                    raise PipelineLockedError(
                        f"another run of pipeline {pipeline} is in progress (host {held['host']}, pid {held['pid']}, "
                        f"its lease in the metadata store renewed {held['age']:.0f} s ago); wait for it "
                        f"to finish (a holder that stops renewing is taken over after {LEASE_SECONDS:.0f} s)")
                c.execute(leases.delete().where((leases.c.pipeline == pipeline) & (leases.c.token == held["token"])))
        try:  # the primary key lets one of two racing inserts through
            with self.engine.begin() as c:
                c.execute(leases.insert().values(pipeline=pipeline, host=host, pid=os.getpid(), token=token,
                                                 renewed_at=database_clock()))
        except sa.exc.IntegrityError:
            raise PipelineLockedError(f"another run of pipeline {pipeline} took its lease in the metadata store at "
                                      "the same moment; wait for it to finish") from None

    # executions -------------------------------------------------------------------------------
    def start_execution(self, run_id: str, pipeline: str, component: str, cache_key: str,
                        status: str = "RUNNING", reused: int | None = None) -> int:
        with self.engine.begin() as c:
            return c.execute(executions.insert().values(
                run_id=run_id, pipeline=pipeline, component=component, cache_key=cache_key, status=status,
                started_at=time.time(), reused_execution_id=reused)).inserted_primary_key[0]

    def finish_execution(self, execution_id: int, status: str, metrics: dict | None = None) -> None:
        with self.engine.begin() as c:
            c.execute(executions.update().where(executions.c.id == execution_id).values(
                status=status, finished_at=time.time(), metrics=json.dumps(metrics or {})))

    def record_outputs(self, execution_id: int, outputs: list[tuple[str, str, str, str]]) -> list[StoredArtifact]:
        """Records (name, type, uri, fingerprint) outputs of an execution and returns them."""
        stored = []
        with self.engine.begin() as c:
            for name, type_, uri, fingerprint in outputs:
                aid = c.execute(artifacts.insert().values(
                    execution_id=execution_id, name=name, type=type_, uri=uri, fingerprint=fingerprint
                )).inserted_primary_key[0]
                c.execute(events.insert().values(execution_id=execution_id, artifact_id=aid, kind="output", name=name))
                stored.append(StoredArtifact(aid, name, type_, uri, fingerprint))
        return stored

    def record_inputs(self, execution_id: int, inputs: dict[str, StoredArtifact]) -> None:
        with self.engine.begin() as c:
            for name, art in inputs.items():
                c.execute(events.insert().values(execution_id=execution_id, artifact_id=art.id, kind="input",
                                                 name=name))

    def outputs_of(self, execution_id: int) -> dict[str, StoredArtifact]:
        with self.engine.connect() as c:
            rows = c.execute(artifacts.select().where(artifacts.c.execution_id == execution_id)).mappings().all()
        return {r["name"]: StoredArtifact(r["id"], r["name"], r["type"], r["uri"], r["fingerprint"]) for r in rows}

    def execution_metrics(self, execution_id: int) -> dict:
        with self.engine.connect() as c:
            row = c.execute(sa.select(executions.c.metrics).where(executions.c.id == execution_id)).first()
        return json.loads(row[0] or "{}") if row else {}

    def unkept_executions(self, pipeline: str, keep_runs: int) -> list[tuple[str, int]]:
        """(component, id) of the COMPLETE executions whose outputs none of the pipeline's ``keep_runs`` latest
        finished runs, nor any run still going (a scheduled run stays OPEN between its stages), produced or
        reused: what `rnnpipe gc` deletes."""
        with self.engine.connect() as c:
            used = c.execute(sa.select(executions.c.id, executions.c.reused_execution_id).where(
                executions.c.run_id.in_(self._kept_runs(c, pipeline, keep_runs))
                & executions.c.status.in_(("COMPLETE", "CACHED")))).all()
            kept = {reused or own for own, reused in used}
            complete = c.execute(sa.select(executions.c.component, executions.c.id).where(
                (executions.c.pipeline == pipeline) & (executions.c.status == "COMPLETE"))
                .order_by(executions.c.id)).all()
        return [(component, i) for component, i in complete if i not in kept]

    def cache_keys_in_runs(self, pipeline: str, keep_runs: int) -> set[tuple[str, str]]:
        """(component, cache key) of every execution, whatever its status, of the runs ``unkept_executions`` keeps:
        a failed or killed one among them may be resumed from its scratch space."""
        with self.engine.connect() as c:
            return set(c.execute(sa.select(executions.c.component, executions.c.cache_key).where(
                executions.c.run_id.in_(self._kept_runs(c, pipeline, keep_runs)))).tuples())

    @staticmethod
    def _kept_runs(c: sa.Connection, pipeline: str, keep_runs: int) -> list[str]:
        """The pipeline's ``keep_runs`` latest finished runs and every run still going."""
        live = runs.c.status.in_(("RUNNING", OPEN_RUN))
        finished = c.execute(sa.select(runs.c.id).where((runs.c.pipeline == pipeline) & ~live)
                             .order_by(runs.c.started_at.desc()).limit(keep_runs)).scalars().all()
        going = c.execute(sa.select(runs.c.id).where((runs.c.pipeline == pipeline) & live)).scalars().all()
        return [*finished, *going]

    def fingerprints_in_use(self, excluding: Iterable[int] = ()) -> set[str]:
        """The fingerprints of the outputs of every COMPLETE execution, of every pipeline in the store, but those
        ``excluding``: content that a cache hit or a later step may still read."""
        query = sa.select(artifacts.c.fingerprint).join(executions, artifacts.c.execution_id == executions.c.id) \
            .where((executions.c.status == "COMPLETE") & executions.c.id.not_in(list(excluding)))
        with self.engine.connect() as c:
            return set(c.execute(query).scalars())

    def mark_collected(self, execution_id: int) -> None:
        with self.engine.begin() as c:
            c.execute(executions.update().where(executions.c.id == execution_id).values(status="COLLECTED"))

    def find_complete(self, pipeline: str, component: str, cache_key: str | None = None) -> int | None:
        """The latest COMPLETE execution of a component (with this cache key, if given) whose outputs exist."""
        q = executions.select().where(
            (executions.c.pipeline == pipeline) & (executions.c.component == component)
            & (executions.c.status == "COMPLETE"))
        if cache_key is not None:
            q = q.where(executions.c.cache_key == cache_key)
        with self.engine.connect() as c:
            rows = c.execute(q.order_by(executions.c.id.desc())).mappings().all()
        for row in rows:
            outs = self.outputs_of(row["id"])
            if outs and all(_published(a.uri) for a in outs.values()):
                return row["id"]
        return None

    def lineage(self, artifact_id: int) -> list[dict]:
        """The executions that produced an artifact and, recursively, their inputs (newest first)."""
        chain, frontier = [], [artifact_id]
        with self.engine.connect() as c:
            while frontier:
                aid = frontier.pop()
                row = c.execute(sa.select(artifacts.c.execution_id, artifacts.c.name, artifacts.c.uri)
                                .where(artifacts.c.id == aid)).first()
                if row is None:
                    continue
                ex = c.execute(executions.select().where(executions.c.id == row.execution_id)).mappings().first()
                chain.append({"artifact": row.name, "uri": row.uri, "component": ex["component"],
                              "execution": ex["id"]})
                frontier += [r.artifact_id for r in c.execute(sa.select(events.c.artifact_id).where(
                    (events.c.execution_id == ex["id"]) & (events.c.kind == "input")))]
        return chain


def _published(uri: str) -> bool:
    """Whether an artifact is still there: its folder (local), its execution's completion marker (remote)."""
    return Path(uri).exists() if storage.is_local(uri) else storage.complete(posixpath.dirname(uri))
