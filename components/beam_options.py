"""The Beam pipeline options of a preprocessing stage (StatisticsGen, Transform), from the config's
``beam.runner`` and ``beam.options``, with a clear refusal of a runner that cannot run these pipelines."""

from __future__ import annotations

from typing import Any

from rnnpipe.errors import ConfigError

# Runners that fail on every pipeline here, with what they lack (checked with Beam 2.77 on localhost).
UNSUPPORTED = {
    "DaskRunner": "Beam's DaskRunner translates only Create, ParDo, GroupByKey and Flatten: it has no Impulse, "
                  "which every file source starts from (tfx_bsl, through which tensorflow-transform reads the "
                  "examples, and ReadFromTFRecord alike), and it computes only the last PCollection of a graph, so "
                  "a pipeline that writes several outputs would lose all but one",
}


def pipeline_options(beam_args: list[str]) -> Any:
    """``PipelineOptions`` of ``beam_args`` (``--runner=NAME`` first); a ConfigError naming ``beam.runner`` for
    a runner in ``UNSUPPORTED``."""
    from apache_beam.options.pipeline_options import PipelineOptions

    runner = next((a.split("=", 1)[1] for a in beam_args if a.startswith("--runner=")), "")
    lacking = UNSUPPORTED.get(runner.rsplit(".", 1)[-1])
    if lacking:
        raise ConfigError(f"beam.runner={runner}: {lacking}. Use the PortableRunner (the path Flink and Spark "
                          "take; see README, Scaling out) or the DirectRunner")
    return PipelineOptions(beam_args)
