"""SchemaGen: infers a tensorflow-metadata Schema from the training split's statistics.

A feature present in every example with exactly one value becomes a dense scalar (``shape {}``), with
the same number N > 1 of values a dense vector (``shape [N]``, e.g. a fixed-length window of a series);
otherwise a variable-length feature with its observed value counts. Features with few distinct values
(``max_string_domain``: a class label, a source column) get a domain, so the ExampleValidator can flag
unseen ones: strings their values, integers their observed range. An integer with many values (a count, a
rate, an id) gets none, as TFDV infers: a test value one past the train split's largest is no anomaly.
"""

from __future__ import annotations

import math
from pathlib import Path

from tensorflow_metadata.proto.v0 import schema_pb2

from rnnpipe.artifacts import ExampleStatistics, Schema
from rnnpipe.context import ExecutionContext
from rnnpipe.dsl import Artifact, Component, Param
from rnnpipe.fingerprint import fingerprint_dir

_TYPES = {"BYTES": schema_pb2.BYTES, "INT": schema_pb2.INT, "FLOAT": schema_pb2.FLOAT}


def infer_schema(train: dict, max_string_domain: int) -> schema_pb2.Schema:
    schema = schema_pb2.Schema()
    for name, f in train["features"].items():
        feature = schema.feature.add(name=name, type=_TYPES[f["type"]])
        feature.presence.min_fraction = f["present"] / train["num_examples"] if train["num_examples"] else 0.0
        feature.presence.min_count = 1
        if f["missing"] == 0 and f["min_values"] == 1 and f["max_values"] == 1:
            feature.shape.SetInParent()  # a dense scalar
        elif f["missing"] == 0 and f["min_values"] == f["max_values"] and f["max_values"] > 1:
            feature.shape.dim.add(size=f["max_values"])
        else:
            feature.value_count.min = f["min_values"] or 0
            feature.value_count.max = f["max_values"]
        if f["type"] == "INT" and f.get("min") is not None and f.get("unique", math.inf) <= max_string_domain:
            feature.int_domain.min, feature.int_domain.max = int(f["min"]), int(f["max"])
        # All-distinct strings (timestamps, ids) are identifiers, not categories: a domain of the train values
        # would make every eval/test value an anomaly.
        identifier = 1 < f.get("unique", 0) == f.get("top_values_of")
        if (f["type"] == "BYTES" and not f.get("unique_is_lower_bound") and f["unique"] <= max_string_domain
                and not identifier):
            feature.string_domain.name = name
            feature.string_domain.value.extend(sorted(v for v, _ in f["top_values"]))
    return schema


def run_schema_gen(inputs: dict[str, Artifact], outputs: dict[str, Artifact], params: dict,
                   ctx: ExecutionContext) -> dict:
    if params["curated_schema"]:
        schema = Schema.read(params["curated_schema"])
        ctx.log(f"using the curated schema {params['curated_schema']} instead of inferring one")
    else:
        stats = ExampleStatistics.read(inputs["statistics"])
        schema = infer_schema(stats["train"], params["max_string_domain"])
    out = Schema.write(outputs["schema"], schema)
    ctx.tracker.log_artifact(out, "schema")
    return {"features": len(schema.feature)}


class SchemaGen(Component):
    INPUTS = {"statistics": ExampleStatistics.TYPE}
    OUTPUTS = {"schema": Schema.TYPE}
    PARAMETERS = {
        "max_string_domain": Param(int, 20, doc="strings and integers with at most this many distinct values get "
                                   "a domain (an integer's: its [min, max])", min=0),
        "curated_schema": Param((str, type(None)), None, doc="a schema.pbtxt to use instead of inferring"),
    }
    executor = staticmethod(run_schema_gen)

    def external_fingerprint(self, inputs: dict[str, Artifact]) -> str:
        curated = self.params["curated_schema"]
        return fingerprint_dir(Path(curated)) if curated and Path(curated).exists() else ""
