"""Transform: tensorflow-transform on Beam. Analyzes the train split (vocabularies, statistics),
transforms every split, and keeps the transform graph so serving applies the very same function.
"""

from __future__ import annotations

import functools
import shutil
from typing import Any

from rnnpipe.artifacts import Examples, Schema, TransformGraph
from rnnpipe.context import ExecutionContext
from rnnpipe.dsl import Artifact, Component, Param, Ref, check_param

from .beam_options import pipeline_options


def run_transform(inputs: dict[str, Artifact], outputs: dict[str, Artifact], params: dict,
                  ctx: ExecutionContext) -> dict:
    # Beam and tf.Transform only here: a pipeline that finds this step cached never imports them.
    import apache_beam as beam
    import tensorflow_transform as tft
    import tensorflow_transform.beam as tft_beam
    from tensorflow_transform.tf_metadata import dataset_metadata, metadata_io
    from tfx_bsl.public import tfxio

    examples, graph_dir, out = inputs["examples"], outputs["transform_graph"], outputs["transformed_examples"]
    schema = Schema.read(inputs["schema"])
    info = Examples.read_info(examples)
    splits = info.splits
    preprocessing_fn = functools.partial(Ref(params["preprocessing_fn"]).resolve(), **params["config"])
    temp_dir = ctx.scratch_dir / "tft_tmp"
    ctx.log(f"analyzing 'train', transforming {splits} ({ctx.beam_args[0]})")

    def source(split: str) -> Any:
        return tfxio.TFExampleRecord(file_pattern=Examples.file_pattern(examples, split), schema=schema,
                                     telemetry_descriptors=["rnnpipe", "Transform"])

    with beam.Pipeline(options=pipeline_options(ctx.beam_args)) as p, tft_beam.Context(temp_dir=str(temp_dir)):
        train = source("train")
        raw_train = p | "Read[train]" >> train.BeamSource()
        transformed_train, transform_fn = (
            (raw_train, train.TensorAdapterConfig())
            | "AnalyzeAndTransform" >> tft_beam.AnalyzeAndTransformDataset(preprocessing_fn))
        _ = transform_fn | "WriteTransformFn" >> tft_beam.WriteTransformFn(graph_dir.uri)
        for split in splits:
            if split == "train":
                data, metadata = transformed_train
            else:
                src = source(split)
                raw = p | f"Read[{split}]" >> src.BeamSource()
                data, metadata = ((raw, src.TensorAdapterConfig()), transform_fn) | \
                    f"Transform[{split}]" >> tft_beam.TransformDataset()
            coder = tft.coders.ExampleProtoCoder(metadata.schema)
            Examples.split_dir(out, split).mkdir(parents=True, exist_ok=True)
            _ = (data
                 | f"Encode[{split}]" >> beam.Map(coder.encode)
                 | f"Write[{split}]" >> beam.io.WriteToTFRecord(
                     str(Examples.split_dir(out, split) / "data"), file_name_suffix=Examples.RECORD_SUFFIX))
    shutil.rmtree(temp_dir, ignore_errors=True)
    # The raw schema travels with the graph: the exporter reads the raw serving feature specs from it.
    metadata_io.write_metadata(dataset_metadata.DatasetMetadata(schema), TransformGraph.raw_metadata_dir(graph_dir))
    Examples.write_info(out, info)
    tft_output = TransformGraph.load(graph_dir)
    return {"transformed_features": len(tft_output.transformed_feature_spec())}


class Transform(Component):
    INPUTS = {"examples": Examples.TYPE, "schema": Schema.TYPE}
    OUTPUTS = {"transform_graph": TransformGraph.TYPE, "transformed_examples": Examples.TYPE}
    PARAMETERS = {
        "preprocessing_fn": Param(Ref, doc="'module:function' taking (inputs, **config)"),
        "config": Param(dict, {}, doc="keyword arguments for preprocessing_fn"),
    }
    executor = staticmethod(run_transform)

    def check(self) -> None:
        check_config(self.id, self.params["preprocessing_fn"], self.params["config"])


def check_config(step: str, preprocessing_fn: str, config: dict) -> None:
    """Checks ``config`` against what the preprocessing function declares as ``fn.config_params`` (name ->
    ``Param`` with its type and range), before the run's first step executes (the function's module imports
    TensorFlow): ``transform.vocab_size=0`` then stops with the key named instead of a tf.Transform traceback
    after Beam has started. Undeclared keys pass as they are.
    """
    try:
        declared = getattr(Ref(preprocessing_fn).resolve(), "config_params", {})
    except (ImportError, AttributeError):  # not importable here (yet): the executor reports it when it runs
        return
    for key, spec in declared.items():
        if key in config:
            check_param(step, key, spec, config[key])
