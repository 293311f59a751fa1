"""The ``rnnpipe`` command line."""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import logging
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

from . import storage
from .app import Application, applications, load_application
from .artifacts import ModelEvaluation
from .compare import primary_metric
from .config import Config, load_config
from .dsl import ParamError, Pipeline
from .errors import EXIT_NOT_BLESSED, EXIT_OK, ConfigError, RnnpipeError
from .native_logs import mute_tensorflow_startup
from .serving import latest_champion, read_push_record

log = logging.getLogger("rnnpipe")


def _config(app: Application, args: argparse.Namespace) -> Config:
    sets = [*(getattr(args, "set", None) or [])]
    if getattr(args, "workers", None) is not None:  # `--workers N` is `--set distribution.workers=N`
        sets.append(f"distribution.workers={args.workers}")
    return load_config(app.config_file, getattr(args, "config", None), sets)


def cmd_list(args: argparse.Namespace) -> int:
    for name in sorted(applications()):
        app = load_application(name)
        print(f"{name:<14} {app.description.splitlines()[0]}\n{'':<14} default data: {app.default_data}")
    return 0


def cmd_fetch(args: argparse.Namespace) -> int:
    app = load_application(args.app)
    path = app.fetch_data(_config(app, args))
    print(f"{args.app}: data ready at {path}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from .runner import run_pipeline

    app = load_application(args.app)
    cfg = _config(app, args)
    _build(app, cfg)  # a bad config stops here, before any download
    app.fetch_data(cfg)  # once: a no-op when the cache is filled
    # Built again on the fetched files: a step's parameters may hold a fetched file's fingerprint (a lexicon),
    # which the first run of a fresh machine must key its cache with, as every later run does.
    pipeline = _build(app, cfg)
    with _config_keys(cfg):
        result = run_pipeline(pipeline, cfg, from_step=args.from_step, only=args.only)
    print(f"\n{args.app}: run {result.run_id[:8]} complete")
    return _summary(result, verbose=getattr(args, "verbose", False))


def _summary(result: Any, *, verbose: bool = False) -> int:
    """Prints what a run executed, reused and pushed; the exit code says whether the model was blessed."""
    from .runner import outcome

    print(f"  executed:   {', '.join(result.executed) or 'nothing'}")
    print(f"  cache hits: {', '.join(result.cache_hits) or 'none'}")
    for line in metric_lines(result.metrics, every=verbose):
        print(f"  {line}")
    for metrics in result.metrics.values():
        if "version" in metrics:
            print(f"  pushed: version {metrics['version']} -> {metrics.get('served_at', '?')}")
        elif "same_as_version" in metrics:
            print(f"  pushed: nothing new (this model is version {metrics['same_as_version']}, rolled back "
                  "or superseded since; `rnnpipe rollback` serves it again)")
        elif metrics.get("pushed") == 0:
            print("  pushed: nothing (the model was not blessed)")
    for step, metrics in result.metrics.items():
        if isinstance(metrics.get("note"), str):  # what a step wants the user to know about its outcome
            print(f"  note: {step}: {metrics['note']}")
        if metrics.get("gradients_exploding_unclipped"):
            print(f"  warning: {step} saw exploding gradients with clipping off: set trainer.clipnorm or "
                  "trainer.global_clipnorm (MLflow: gradients/global_norm, the gradient_diagnostics heatmaps)")
    print(f"  MLflow run: {result.mlflow_run_id} (see `rnnpipe ui`)")
    return EXIT_NOT_BLESSED if outcome(result) == "not_blessed" else EXIT_OK


def cmd_task(args: argparse.Namespace) -> int:
    """One task of a scheduled run, as an Airflow task runs it (rnnpipe/airflow_dag.py). The last line of
    stdout is a JSON object the task reads: what to run, the run id, the stage's or the run's outcome."""
    from . import runner

    if args.task in ("stage", "close") and not args.run_id:
        raise ConfigError(f"`rnnpipe task {args.app} {args.task}` needs --run-id (printed by `task {args.app} open`)")
    if (args.task == "stage") != bool(args.stage):
        raise ConfigError("name a stage with `task APP stage STAGE`, and only there")
    if (args.task == "gc") != (args.keep_runs is not None):
        raise ConfigError(f"`rnnpipe task {args.app} gc` needs --keep-runs N, and only it takes one")
    app = load_application(args.app)
    cfg = _config(app, args)
    pipeline = _build(app, cfg)
    try:
        with _config_keys(cfg):
            if args.task == "check":
                app.fetch_data(cfg)
                answer: dict[str, Any] = {"to_run": runner.stages_to_run(_build(app, cfg), cfg)}
            elif args.task == "open":
                answer = {"run_id": runner.open_scheduled_run(pipeline, cfg, tags=_pairs(args.tag, "--tag"))}
            elif args.task == "gc":
                done = runner.collect_garbage(cfg, pipeline.name, args.keep_runs)
                answer = {"collected": done.executions, "bytes": done.bytes}
            elif args.task == "stage":
                result = runner.run_scheduled_stage(pipeline, cfg, args.run_id, args.stage)
                answer = {"stage": args.stage, "cached": bool(result.cache_hits), "outcome": runner.outcome(result),
                          "metrics": result.metrics.get(args.stage, {})}
            else:
                result = runner.close_scheduled_run(pipeline, cfg, args.run_id)
                run = _run_row(cfg, args.run_id)
                answer = {"status": run["status"], "error": run["error"], "outcome": runner.outcome(result)
                          if run["status"] == "COMPLETE" else "failed", "executed": result.executed,
                          "cache_hits": result.cache_hits, "mlflow_run_id": result.mlflow_run_id}
    except RnnpipeError as e:
        print(json.dumps({"error": str(e), "kind": type(e).__name__, "exit_code": e.exit_code}))
        raise
    print(json.dumps(answer, default=str))
    return EXIT_OK


def _run_row(cfg: Config, run_id: str) -> dict:
    from .metadata import MetadataStore
    from .runner import metadata_url

    return MetadataStore(metadata_url(cfg)).get_run(run_id) or {}


def cmd_airflow_dag(args: argparse.Namespace) -> int:
    from .airflow_dag import dag_file

    load_application(args.app)  # an unknown name stops here, not when Airflow parses the file
    text = dag_file(args.app, schedule=args.schedule, workdir=Path.cwd(), config=args.config,
                    overrides=args.set or [], retries=args.retries, retry_delay_s=args.retry_delay,
                    keep_runs=args.keep_runs)
    if args.out is None:
        print(text, end="")
        return EXIT_OK
    out = Path(args.out)
    target = out / f"rnnpipe_{args.app}.py" if out.is_dir() else out
    tmp = target.with_name(f".{target.name}.tmp")  # Airflow parses the dags folder at any time: never half a file
    tmp.write_text(text)
    os.replace(tmp, target)
    print(f"{args.app}: DAG rnnpipe_{args.app} written to {target}")
    return EXIT_OK


def _fmt(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def describe_primary(m: dict, *, short: bool = False) -> str:
    """'mase 0.8123 (lower is better; baseline 1.0400; no champion)'; ``short``: 'mase 0.8123 (baseline 1.0400)'.
    Variants of the metric the Evaluator also reports follow ('bpc ... (...); bpc_adaptive 1.9345')."""
    value, baseline, champion = (m.get(k) for k in ("primary_value", "primary_baseline", "primary_champion"))
    text = f"{m['primary_metric']} {_fmt(value) if value is not None else 'n/a'}"
    if short:
        return text + (f" (baseline {_fmt(baseline)})" if baseline is not None else "")
    direction = "higher is better" if m.get("higher_is_better", True) else "lower is better"
    peers = [f"{key.split('/')[1]} {_fmt(v)}" for key, v in m.items()
             if key.startswith("peer/") and key.endswith(f"/{m['primary_metric']}")]
    variants = [f"{key.removeprefix('test_')} {_fmt(v)}" for key, v in m.items()
                if key.startswith(f"test_{m['primary_metric']}_") and "." not in key]
    return (f"{text} ({direction}; " + (f"baseline {_fmt(baseline)}" if baseline is not None else "no baseline")
            + "".join(f"; peer {p}" for p in peers)
            + "; " + (f"champion {_fmt(champion)}" if champion is not None else "no champion") + ")"
            + "".join(f"; {v}" for v in variants))


def metric_lines(metrics: dict[str, dict], *, every: bool = False) -> list[str]:
    """The primary metric as 'Step: ...'; with ``every``, also each step's other metrics as 'Step.key: value'."""
    found = primary_metric(metrics)
    lines = [f"{found[0]}: {describe_primary(found[1])}"] if found else []
    if every:
        lines += [f"{step}.{key}: {_fmt(value)}" for step, m in metrics.items()
                  for key, value in sorted(m.items()) if key not in ModelEvaluation.PRIMARY_KEYS]
    return lines


@contextlib.contextmanager
def _config_keys(cfg: Config) -> Iterator[None]:
    """A step parameter out of range, found when the pipeline is built or when its steps are checked before the
    first one runs, is reported as the config key that set it."""
    try:
        yield
    except ParamError as e:
        # Config sections are the stages' names in snake case (Trainer -> trainer, InfraValidator -> infra_validator).
        section = re.sub(r"(?<!^)(?=[A-Z])", "_", e.step).lower()
        if isinstance(cfg.get(section), dict) and e.param in cfg[section]:
            raise ConfigError(f"config key '{section}.{e.param}' {e.detail}; "
                              f"change it in your --config file or with --set {section}.{e.param}=VALUE") from None
        raise


def _build(app: Application, cfg: Config) -> Pipeline:
    with _config_keys(cfg):
        return app.build_pipeline(cfg)


def cmd_config(args: argparse.Namespace) -> int:
    import yaml

    app = load_application(args.app)
    print(yaml.safe_dump(_config(app, args).to_dict(), sort_keys=False, default_flow_style=None).rstrip())
    return EXIT_OK


def cmd_runs(args: argparse.Namespace) -> int:
    from .metadata import MetadataStore
    from .runner import metadata_url

    app = load_application(args.app)
    cfg = _config(app, args)
    rows = MetadataStore(metadata_url(cfg)).list_runs(args.app, args.limit)
    if not rows:
        print(f"no runs of {args.app} yet")
    for r in rows:
        when = dt.datetime.fromtimestamp(r["started_at"]).strftime("%Y-%m-%d %H:%M:%S")
        took = f"{r['finished_at'] - r['started_at']:.0f}s" if r["finished_at"] else "-"
        found = primary_metric(r["metrics"])
        shown = describe_primary(found[1], short=True) if found else "-"
        print(f"{when}  {r['id'][:8]}  {r['status']:<9} {took:>6}  cache hits {len(r['cache_hits'])}  {shown}  "
              f"mlflow {r['mlflow_run_id'] or '-'}")
        if args.all_metrics:
            for line in metric_lines(r["metrics"], every=True):
                print(f"    {line}")
    return 0


def cmd_gc(args: argparse.Namespace) -> int:
    from .runner import collect_garbage

    app = load_application(args.app)
    cfg = _config(app, args)
    done = collect_garbage(cfg, args.app, args.keep_runs, dry_run=args.dry_run)
    verb = "would delete" if args.dry_run else "deleted"
    parts = [f"{label}: {size / 1e6:.1f} MB" for label, size in (
        ("local copies of remote outputs", done.copies), ("scratch of steps no kept run tried", done.scratch)) if size]
    print(f"{args.app}: {verb} the outputs of {len(done.executions)} execution(s), {done.bytes / 1e6:.1f} MB"
          + (f" ({'; '.join(parts)})" if parts else "") + f", that none of the last {args.keep_runs} run(s) used")
    for component, execution_id in done.executions:
        print(f"  {component} {execution_id}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from mlflow.tracking import MlflowClient

    from . import compare
    from .metadata import MetadataStore
    from .runner import metadata_url
    from .tracking import experiment_id, tracking_uri

    app = load_application(args.app)
    cfg = _config(app, args)
    rows = MetadataStore(metadata_url(cfg)).list_runs(args.app, None if args.runs else args.limit)
    rows = compare.select_runs(rows, args.runs) if args.runs else rows
    if not rows:
        print(f"no runs of {args.app} yet")
        return EXIT_OK
    uri = tracking_uri(cfg.mlflow.tracking_uri)
    client = MlflowClient(tracking_uri=uri)

    def params(mlflow_run_id: str | None) -> dict[str, str]:
        try:
            return dict(client.get_run(mlflow_run_id).data.params) if mlflow_run_id else {}
        except Exception:  # noqa: BLE001  (a run deleted in the MLflow UI: compare what is left)
            return {}

    runs = [compare.describe(r, params(r["mlflow_run_id"])) for r in rows]
    ids = [r["mlflow_run_id"] for r in runs if r["mlflow_run_id"]]
    url = compare.compare_url(f"http://localhost:{args.port}", experiment_id(uri, cfg.mlflow.experiment or args.app),
                              ids)
    if args.json:
        print(json.dumps({"runs": runs, "differing": compare.differing_params(runs), "mlflow_compare_url": url}))
    else:
        print(compare.render(runs, url))
    if args.plot:
        print(f"plot: {compare.plot(runs, Path(args.plot))}")
    return EXIT_OK


def cmd_predict(args: argparse.Namespace) -> int:
    import tensorflow as tf
    import tensorflow_text  # noqa: F401  (registers the TF-Text ops the SavedModel uses)

    app = load_application(args.app)
    cfg = _config(app, args)
    base = storage.join(storage.resolve(cfg.serving_dir), args.model or args.app)
    champion = latest_champion(base)
    if champion is None:
        raise RnnpipeError(f"no pushed model under {base}; run `rnnpipe run {args.app}` first")
    fn = tf.saved_model.load(str(champion)).signatures["serving_default"]
    specs = fn.structured_input_signature[1]
    text_inputs = [n for n, s in specs.items() if s.dtype == tf.string]
    series_inputs = [n for n, s in specs.items() if s.dtype.is_floating and s.shape.rank == 2]
    if len(text_inputs) == 1:  # one request per text
        inputs, shown_as = {text_inputs[0]: tf.constant(args.inputs)}, [repr(text) for text in args.inputs]
    elif not text_inputs and len(series_inputs) == 1:  # the arguments are the values of one row
        name = series_inputs[0]
        values = _numbers(args.inputs)
        width = specs[name].shape[1]
        if width is not None and len(values) != width:
            raise RnnpipeError(f"the model's '{name}' takes {width} values per row; got {len(values)}")
        inputs, shown_as = {name: tf.constant([values], dtype=specs[name].dtype)}, [f"{len(values)} values"]
    else:
        raise RnnpipeError(f"`rnnpipe predict` sends text, or the numbers of one row; the model's inputs are "
                           f"{sorted(specs)}: query it through TF Serving or tf.saved_model.load instead")
    # The other inputs: --input NAME=VALUE, else the defaults the push recorded (what the InfraValidator sent).
    defaults = {**read_push_record(champion).get("request_defaults", {}), **_inputs(args.input)}
    for name, spec in specs.items():
        if name in inputs:
            continue
        if name not in defaults:
            raise RnnpipeError(f"the model also takes '{name}', and its push recorded no default for it: "
                               f"pass --input {name}=VALUE")
        value = defaults[name] if spec.shape.rank == 0 else [defaults[name]] * len(shown_as)
        inputs[name] = tf.constant(value, dtype=spec.dtype)
    out = {k: v.numpy() for k, v in fn(**inputs).items()}
    for i, request in enumerate(shown_as):
        fields = trim_padding({k: v[i] for k, v in out.items()})
        shown = ", ".join(f"{k}={v.decode() if isinstance(v, bytes) else v}" for k, v in sorted(fields.items()))
        print(f"{request}: {shown}")
    return 0


def _numbers(arguments: list[str]) -> list[float]:
    """The values of one row: numbers as separate arguments or separated by commas ('nan' for a missing one)."""
    values = []
    for argument in arguments:
        for token in filter(None, (t.strip() for t in argument.split(","))):
            try:
                values.append(float(token))
            except ValueError:
                raise RnnpipeError(f"the model takes a row of numbers; {token!r} is not a number") from None
    return values


def _inputs(pairs: list[str] | None) -> dict[str, Any]:
    """--input NAME=VALUE pairs; VALUE is read as YAML (12, 0.7, text)."""
    import yaml

    return {name: yaml.safe_load(value) for name, value in _pairs(pairs, "--input").items()}


def _pairs(pairs: list[str] | None, flag: str) -> dict[str, str]:
    out = {}
    for pair in pairs or []:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise ConfigError(f"{flag} expects NAME=VALUE, got {pair!r}")
        out[name] = value
    return out


def trim_padding(row: dict[str, Any]) -> dict[str, Any]:
    """One request's outputs without the trailing positions where every per-position text output is "":
    outputs padded to a fixed width (a tag per token) show only the real positions. Numeric outputs alone
    are never trimmed (0 is a value); outputs of different widths are left as they are."""
    import numpy as np

    positional = {k: v for k, v in row.items() if isinstance(v, np.ndarray) and v.ndim >= 1}
    texts = [v for v in positional.values() if v.dtype.kind in "SOU"]
    if not texts or len({len(v) for v in positional.values()}) != 1:
        return row
    real = np.zeros(len(texts[0]), dtype=bool)
    for v in texts:
        real |= (v.reshape(len(v), -1) != ("" if v.dtype.kind == "U" else b"")).any(axis=1)
    n = int(np.flatnonzero(real)[-1]) + 1 if real.any() else 0
    return {**row, **{k: v[:n] for k, v in positional.items()}}


def cmd_rollback(args: argparse.Namespace) -> int:
    from .serving import rollback
    from .tracking import move_alias_to_serving_version, tracking_uri

    app = load_application(args.app)
    cfg = _config(app, args)
    name = args.model or args.app
    base = storage.join(storage.resolve(cfg.serving_dir), name)
    target, parked = rollback(base, args.version)
    registry = move_alias_to_serving_version(tracking_uri(cfg.mlflow.tracking_uri), name, target, serving_path=base)
    print(f"{name}: serving version {target} again (parked {parked or 'nothing'} under .rolled_back/)")
    print("  MLflow: " + (f"'{name}' version {registry} is @champion" if registry
                           else f"no registry version was pushed as {target}; alias unchanged"))
    return 0


def cmd_ui(args: argparse.Namespace) -> int:
    from .tracking import experiment_id, tracking_uri

    uri = tracking_uri(None)
    # One worker: a local UI has one user, and every worker process would import MLflow's server again.
    cmd = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri, "--host", "127.0.0.1",
           "--port", str(args.port), "--workers", "1"]
    url = f"http://127.0.0.1:{args.port}"
    found = experiment_id(uri, args.app) if args.app else None
    print(f"MLflow UI on {uri}: {url}/#/experiments/{found}/runs" if found else
          f"MLflow UI on {uri}: {url}/#/experiments (runs are under each application's experiment)")
    # MLflow's GenAI job runners (huey consumers, one process each) serve nothing a pipeline logs.
    os.environ.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
    os.execv(sys.executable, cmd)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="rnnpipe", description="Production pipelines for recurrent neural networks.",
                                epilog="exit codes: 0 pushed or nothing new, 1 data or runtime error, "
                                       "2 usage or configuration error, 3 ran but not blessed (nothing pushed)")
    p.add_argument("-v", "--verbose", action="store_true", help="show INFO logs of TensorFlow, Beam and MLflow")
    # -v also after the subcommand; SUPPRESS keeps a -v given before it.
    verbose = argparse.ArgumentParser(add_help=False)
    verbose.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS)
    sub = p.add_subparsers(dest="command", required=True)

    def command(parent: Any, name: str, help: str, *, config: bool = True) -> argparse.ArgumentParser:
        sp = parent.add_parser(name, help=help, parents=[verbose])
        if config:
            sp.add_argument("app")
            sp.add_argument("--config", help="a YAML file overriding the application's defaults")
            sp.add_argument("--set", action="append", metavar="KEY=VALUE",
                            help="override one key, e.g. trainer.epochs=3")
        return sp

    command(sub, "list", "applications and their default data", config=False).set_defaults(fn=cmd_list)
    data = command(sub, "data", "datasets", config=False).add_subparsers(dest="data_command", required=True)
    command(data, "fetch", "download an application's default data").set_defaults(fn=cmd_fetch)
    run = command(sub, "run", "run an application's pipeline")
    run.add_argument("--from", dest="from_step", metavar="STAGE", help="re-run STAGE and everything after it")
    run.add_argument("--only", metavar="STAGE", help="re-run STAGE alone on the latest upstream outputs")
    run.add_argument("--workers", type=int, metavar="N", help="train on N localhost worker processes "
                     "(MultiWorkerMirroredStrategy; the same as --set distribution.workers=N)")
    run.set_defaults(fn=cmd_run)
    command(sub, "config", "print an application's resolved configuration").set_defaults(fn=cmd_config)
    runs = command(sub, "runs", "history of an application's runs")
    runs.add_argument("--limit", type=int, default=20)
    runs.add_argument("--all-metrics", action="store_true", help="also every step's metrics (slices, peers, ...)")
    runs.set_defaults(fn=cmd_runs)
    gc = command(sub, "gc", "delete the outputs of executions that no recent run used (their records stay)")
    gc.add_argument("--keep-runs", type=int, default=10, help="keep what the last N runs produced or reused")
    gc.add_argument("--dry-run", action="store_true", help="list what would go, delete nothing")
    gc.set_defaults(fn=cmd_gc)
    compare = command(sub, "compare", "an application's runs side by side: primary metric, baseline, champion, "
                                      "outcome, the config keys that differ, the MLflow comparison view")
    compare.add_argument("runs", nargs="*", metavar="RUN", help="run ids or prefixes (`rnnpipe runs APP`); "
                                                                "default: the last --limit runs")
    compare.add_argument("--limit", type=int, default=5)
    compare.add_argument("--plot", metavar="PNG", help="also draw the primary metric over the runs")
    compare.add_argument("--json", action="store_true", help="print the comparison as JSON")
    compare.add_argument("--port", type=int, default=5000, help="the MLflow UI's port, for the link")
    compare.set_defaults(fn=cmd_compare)
    predict = command(sub, "predict", "query the latest pushed model")
    predict.add_argument("--model", help="the served model's name, if pusher.model_name set one (default: APP)")
    predict.add_argument("--input", action="append", metavar="NAME=VALUE",
                         help="another input of the signature (a generation length, a temperature); default: the "
                              "value recorded when the model was pushed")
    predict.add_argument("inputs", nargs="+")
    predict.set_defaults(fn=cmd_predict)
    rollback = command(sub, "rollback", "serve an earlier pushed version again")
    rollback.add_argument("--model", help="the served model's name, if pusher.model_name set one (default: APP)")
    rollback.add_argument("version", nargs="?", type=int, help="default: the version before the latest")
    rollback.set_defaults(fn=cmd_rollback)
    task = command(sub, "task", "one task of a scheduled run (what each Airflow task runs)")
    task.add_argument("task", choices=("check", "open", "stage", "close", "gc"),
                      help="check: the stages a run would execute; open: start a run; stage: run STAGE in it; "
                           "close: end it; gc: `rnnpipe gc` after it")
    task.add_argument("stage", nargs="?", help="the stage, for `task stage`")
    task.add_argument("--run-id", help="the open run, for `task stage` and `task close`")
    task.add_argument("--keep-runs", type=int, help="for `task gc`: as `rnnpipe gc --keep-runs`")
    task.add_argument("--tag", action="append", metavar="KEY=VALUE",
                      help="an MLflow tag on the run, for `task open` (the scheduler's DAG and run ids)")
    task.set_defaults(fn=cmd_task)
    airflow = command(sub, "airflow", "Apache Airflow integration", config=False).add_subparsers(
        dest="airflow_command", required=True)
    dag = command(airflow, "dag", "write an Airflow DAG that runs the pipeline on a schedule, one task per stage")
    dag.add_argument("--schedule", default="@daily", help="a cron expression or preset; 'none': manual runs only")
    dag.add_argument("--retries", type=int, default=2, help="retries of each stage task (a killed stage resumes)")
    dag.add_argument("--retry-delay", type=float, default=120, metavar="SECONDS", help="between a stage's tries")
    dag.add_argument("--out", help="a file, or the dags/ folder (writes rnnpipe_APP.py there); default: stdout")
    dag.add_argument("--keep-runs", type=int, metavar="N",
                     help="end each DAG run with `rnnpipe gc --keep-runs N` (default: keep every output)")
    dag.set_defaults(fn=cmd_airflow_dag)
    ui = command(sub, "ui", "open the MLflow UI on the project's tracking store", config=False)
    ui.add_argument("app", nargs="?", help="print the URL of this application's runs")
    ui.add_argument("--port", type=int, default=5000)
    ui.set_defaults(fn=cmd_ui)
    return p


def setup_logging(verbose: bool) -> None:
    """rnnpipe's console: INFO lines of its own, warnings of the libraries (everything with ``verbose``)."""
    # TensorFlow's C++ start-up lines are printed before any Python logging is set up: mute them by default.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0" if verbose else "2")
    if not verbose:
        mute_tensorflow_startup()  # the lines TF_CPP_MIN_LOG_LEVEL does not reach
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    for noisy in ("absl", "apache_beam", "tensorflow", "alembic", "mlflow", "h5py", "matplotlib", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.INFO if verbose else logging.WARNING)


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:  # argparse: --help (0) or a usage error (2)
        return int(e.code or 0)
    setup_logging(args.verbose)
    try:
        return args.fn(args)
    except RnnpipeError as e:
        print(f"rnnpipe: error: {e}", file=sys.stderr)
        return e.exit_code


def console_main(argv: list[str] | None = None) -> NoReturn:
    """The `rnnpipe` command (and `python -m rnnpipe.cli`, as scheduler tasks run it): `main`, then exit at once.

    Everything is recorded and renamed by the time `main` returns. TensorFlow's and Beam's threads can crash the
    interpreter's teardown (SIGSEGV in the garbage collector, seen after a Transform on the full default data),
    which `make run` or a scheduler would take for a failed run: skip the teardown.
    """
    code = main(argv)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    console_main()
