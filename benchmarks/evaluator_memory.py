"""Peak memory of the Evaluator's scoring on a test split and on one ten times larger, streamed against
materialized (every record and prediction held in lists, as the Evaluator did before it streamed).

A small sentiment pipeline is run once (untimed) for a real exported model and its examples; its test split is
repeated to N and 10 N records in fresh Examples folders beside the real train split. Each measurement is a
fresh process that scores one split with the classification metrics and reports its peak RSS (ru_maxrss),
so TensorFlow's own footprint is in every figure and the difference is what the split costs.

    .venv/bin/python benchmarks/evaluator_memory.py [--records 5000]
"""

from __future__ import annotations

import argparse
import itertools
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from small_sentiment import SMALL  # benchmarks/ is on the path of a script run from it

SCORE = """
import json, resource, sys, time
from pathlib import Path
from rnnpipe.components.evaluator import EvalContext, predict_raw
from rnnpipe.components.metrics import evaluate_classification
model, examples, out, mode = sys.argv[1:5]
config = {"label_key": "label", "class_names": ["negative", "positive"], "slice_keys": ["source"]}
started = time.perf_counter()
if mode == "streamed":
    ev = EvalContext(None, None, config, Path(out), examples, model_dir=model)
else:
    records = list(EvalContext(None, None, config, None, examples).iter_records("test"))
    ev = EvalContext(records, predict_raw(model, records), config, Path(out), examples, model_dir=model)
result = evaluate_classification(ev)
print(json.dumps({"peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "seconds": time.perf_counter() - started, "count": result["overall"]["model"]["count"],
                  "accuracy": result["overall"]["model"]["accuracy"]}))
"""


def run(command: list[str], cwd: Path) -> str:
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command[:4])} exited {done.returncode}:\n{done.stderr[-3000:]}")
    return done.stdout


def latest(work: Path, step: str) -> Path:
    return max((work / "pipeline_root" / "sentiment" / step).glob("[0-9]*"), key=lambda p: int(p.name))


def repeated_split(examples: Path, dest: Path, records: int) -> Path:
    """``examples``' train split and its test split repeated to ``records`` records, as an Examples folder."""
    from rnnpipe.artifacts import Examples
    from rnnpipe.components.evaluator import EvalContext
    from rnnpipe.components.example_io import write_examples

    shutil.copytree(Examples.split_dir(examples, "train"), Examples.split_dir(dest, "train"))
    test = list(EvalContext(None, None, {}, None, str(examples)).iter_records("test"))
    kinds = {k: "bytes" if isinstance(v, str) else "int" if isinstance(v, int) else "float" for k, v in test[0].items()}
    write_examples((("test", r) for r in itertools.islice(itertools.cycle(test), records)), kinds, dest, ["test"], 4)
    return dest


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--records", type=int, default=5000, help="the smaller test split; the larger has 10 times more")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        print("preparing: one small sentiment run (untimed) for a real model and examples")
        run([sys.executable, "-m", "rnnpipe.cli", "run", "sentiment", *SMALL], work)
        model, examples = latest(work, "Trainer") / "model", latest(work, "ExampleGen") / "examples"
        print(f"{'test records':>12} {'mode':>12} {'peak MB':>9} {'seconds':>8} {'accuracy':>9}")
        peaks = {}
        for n in (args.records, 10 * args.records):
            split = repeated_split(examples, work / f"examples-{n}", n)
            for mode in ("materialized", "streamed"):
                out = work / f"out-{n}-{mode}"
                out.mkdir()
                r = json.loads(run([sys.executable, "-c", SCORE, str(model), str(split), str(out), mode], work)
                               .strip().splitlines()[-1])
                assert r["count"] == n, r
                peaks[(n, mode)] = r["peak_mb"]
                print(f"{n:>12} {mode:>12} {r['peak_mb']:>9.0f} {r['seconds']:>8.1f} {r['accuracy']:>9.4f}")
        for mode in ("materialized", "streamed"):
            small, large = peaks[(args.records, mode)], peaks[(10 * args.records, mode)]
            print(f"{mode}: 10x the records -> peak RSS x{large / small:.2f} (+{large - small:.0f} MB)")


if __name__ == "__main__":
    main()
