"""Scale-out throughput on this machine, each figure measured in the same run:

1. Preprocessing: the sentiment pipeline's StatisticsGen and Transform on N sentences (default 200,000, each two
   of the test sample's 800 sentences joined, drawn at random; a repeated pair may fall in two splits, so the
   cross-split duplicate check is relaxed) under each Beam engine rnnpipe can run by configuration.
   - the DirectRunner in one process;
   - the DirectRunner with 2 worker processes;
   - the PortableRunner with LOOPBACK workers;
   - the DaskRunner, which is refused before it runs (see README);
   - the baseline: a plain Python loop that does Transform's work on the train split (lowercase, split, count
     the vocabulary, map to ids).
   Prints records/s of each, and the ratio to the one-process DirectRunner.
2. Training: the sentiment Trainer on the default data with 1 and with 2 localhost workers
   (`--workers 2`, MultiWorkerMirroredStrategy) at the same global batch: examples/s and the overhead.

    .venv/bin/python benchmarks/scale_out.py [--sentences 200000] [--epochs 2] [--skip-preprocessing]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import tempfile
import time
from collections import Counter
from pathlib import Path

import sqlalchemy as sa

from rnnpipe.app import load_application
from rnnpipe.config import load_config
from rnnpipe.dsl import Pipeline
from rnnpipe.errors import ConfigError
from rnnpipe.metadata import executions
from rnnpipe.runner import metadata_url, run_pipeline

SAMPLE = Path(__file__).resolve().parent.parent / "tests" / "data" / "sentiment_sample.jsonl"
ENGINES = {
    "DirectRunner, 1 process": ["beam.runner=DirectRunner"],
    "DirectRunner, 2 processes": ["beam.runner=DirectRunner",
                                  'beam.options=["--direct_num_workers=2", "--direct_running_mode=multi_processing"]'],
    "PortableRunner, LOOPBACK": ["beam.runner=PortableRunner",
                                 'beam.options=["--job_endpoint=embed", "--environment_type=LOOPBACK"]'],
    "DaskRunner, 2 workers": ["beam.runner=DaskRunner", 'beam.options=["--dask_client_address=localhost:8786"]'],
}


def synthetic_sentences(n: int, path: Path) -> Path:
    rows, rng = [json.loads(line) for line in SAMPLE.open()], random.Random(0)
    with path.open("w") as f:
        for i in range(n):
            first, second = rng.choice(rows), rng.choice(rows)
            f.write(json.dumps({**first, "id": f"s{i}", "text": f"{first['text']} {second['text']}"}) + "\n")
    return path


def stage_seconds(cfg, run_id: str) -> dict[str, float]:
    with sa.create_engine(metadata_url(cfg)).connect() as c:
        rows = c.execute(sa.select(executions.c.component, executions.c.started_at, executions.c.finished_at)
                         .where(executions.c.run_id == run_id)).all()
    return {r.component: (r.finished_at or r.started_at) - r.started_at for r in rows}


def preprocessing(sentences: int) -> None:
    app = load_application("sentiment")
    work = Path(tempfile.mkdtemp(prefix="rnnpipe-bench-scale-"))
    data = synthetic_sentences(sentences, work / "sentences.jsonl")
    print(f"preprocessing {sentences} sentences ({data}):")
    print(f"  {'engine':<28}{'StatisticsGen s':>16}{'Transform s':>13}{'records/s':>11}{'ratio':>8}")
    base = None
    for label, sets in ENGINES.items():
        root = work / re.sub(r"\W+", "_", label)
        root.mkdir()
        os.chdir(root)
        cfg = load_config(app.config_file, None, [f"data.path={data}", "transform.min_frequency=1",
                                                  "example_validator.max_cross_split_duplicates=1.0", *sets])
        full = app.build_pipeline(cfg)
        upto = [s.id for s in full.steps].index("Transform") + 1
        try:
            result = run_pipeline(Pipeline(full.name, full.steps[:upto]), cfg)
        except ConfigError as e:
            print(f"  {label:<28}refused: {str(e)[:90]}...")
            continue
        seconds = stage_seconds(cfg, result.run_id)
        rate = sentences / seconds["Transform"]
        base = base or rate
        print(f"  {label:<28}{seconds['StatisticsGen']:>16.1f}{seconds['Transform']:>13.1f}{rate:>11.0f}"
              f"{rate / base:>8.2f}")
    started = time.perf_counter()
    texts = [json.loads(line)["text"] for line in data.open()]
    train = texts[: int(0.8 * len(texts))]
    counts = Counter(w for t in train for w in t.lower().split())
    vocab = {w: i for i, (w, _) in enumerate(counts.most_common(20000))}
    ids = [[vocab.get(w, len(vocab)) for w in t.lower().split()] for t in texts]
    seconds = time.perf_counter() - started
    rate = len(ids) / seconds
    print(f"  {'plain Python loop':<28}{'':>16}{seconds:>13.2f}{rate:>11.0f}{rate / (base or rate):>8.2f}")


def training(epochs: int) -> None:
    app = load_application("sentiment")
    work = Path(tempfile.mkdtemp(prefix="rnnpipe-bench-workers-"))
    os.chdir(work)
    print(f"\ntraining the default sentiment model, {epochs} epochs ({work}):")
    print(f"  {'workers':<10}{'Trainer s':>10}{'steps':>7}{'examples/s':>12}{'val_accuracy':>14}{'ratio':>8}")
    base = None
    for workers in (1, 2):
        cfg = load_config(app.config_file, None, [f"trainer.epochs={epochs}", "trainer.patience=100",
                                                  f"distribution.workers={workers}"])
        app.fetch_data(cfg)
        full = app.build_pipeline(cfg)
        upto = [s.id for s in full.steps].index("Trainer") + 1
        result = run_pipeline(Pipeline(full.name, full.steps[:upto]), cfg, **({"only": "Trainer"} if workers > 1
                                                                               else {}))
        seconds = stage_seconds(cfg, result.run_id)["Trainer"]
        metrics = result.metrics["Trainer"]
        train_examples = sum(1 for _ in _records(result.outputs["Transform"]["transformed_examples"]))
        rate = train_examples * metrics["epochs"] / seconds
        base = base or rate
        print(f"  {workers:<10}{seconds:>10.1f}{metrics['steps']:>7}{rate:>12.0f}"
              f"{metrics['best_val_accuracy']:>14.4f}{rate / base:>8.2f}")


def _records(examples):
    import tensorflow as tf

    from rnnpipe.artifacts import Examples

    files = tf.io.gfile.glob(Examples.file_pattern(examples, "train"))
    return tf.data.TFRecordDataset(files, compression_type="GZIP").as_numpy_iterator()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--sentences", type=int, default=200_000)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--skip-preprocessing", action="store_true")
    p.add_argument("--skip-training", action="store_true")
    args = p.parse_args()
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    if not args.skip_preprocessing:
        preprocessing(args.sentences)
    if not args.skip_training:
        training(args.epochs)


if __name__ == "__main__":
    main()
