"""Speech recognition: WAV audio -> transcript, a Conv2D + bidirectional RNN acoustic model trained with CTC
on spoken digit strings synthesized with espeak-ng and flite by default.

Feature extraction (log-mel with tf.signal, normalized by train-split statistics) runs inside the served
graph, which takes WAV bytes (or a float waveform) and returns text; the Evaluator scores word and
character error rates on held-out espeak voice variants and on the flite voices beside PocketSphinx.
"""

from __future__ import annotations

from pathlib import Path

from rnnpipe.app import Application
from rnnpipe.config import Config
from rnnpipe.data_cache import cache_dir
from rnnpipe.dsl import Pipeline

NAME = "speech"


def synthesis_settings(cfg: Config) -> dict:
    s = cfg.data.synthesis
    return {"utterances": s.utterances, "heldout": s.heldout, "flite": s.flite, "seed": s.seed,
            "min_digits": s.min_digits, "max_digits": s.max_digits, "noise_fraction": s.noise_fraction,
            "pitch_shift_cents": s.pitch_shift_cents, "band_limit_fraction": s.band_limit_fraction}


def default_path(cfg: Config) -> Path:
    from .data import dataset_folder

    return cache_dir(NAME, cfg.data.cache_dir) / dataset_folder(synthesis_settings(cfg))


def data_path(cfg: Config) -> Path:
    """A manifest (CSV/JSONL of path and transcript) or a folder holding one: the user's, else the synthesized."""
    return Path(cfg.data.path).expanduser() if cfg.data.path else default_path(cfg)


def fetch_data(cfg: Config) -> Path:
    """Synthesizes the default utterances once (cached by their settings); a user's manifest is read as it is."""
    if cfg.data.path:
        return data_path(cfg)
    from .data import synthesize

    return synthesize(cache_dir(NAME, cfg.data.cache_dir), workers=cfg.data.synthesis.workers,
                      **synthesis_settings(cfg))


def build_pipeline(cfg: Config) -> Pipeline:
    # The stages import TensorFlow and Beam: `rnnpipe list`, `runs` and `config` load this package without them.
    from rnnpipe.components import ExampleGen, standard_pipeline

    examples = ExampleGen(source=str(data_path(cfg)), reader=f"{__name__}.data:read_manifest",
                          partition_feature="split", splits={"train": 8, "eval": 1, "test": 1}, **cfg.example_gen)
    return standard_pipeline(
        NAME, cfg, examples, preprocessing_fn=f"{__name__}.features:preprocessing_fn", task=f"{__name__}.model:TASK",
        evaluator={"metrics": f"{__name__}.metrics:evaluate_speech"})


APPLICATION = Application(
    name=NAME,
    description=__doc__.strip(),
    default_data="spoken digit strings synthesized with espeak-ng (training voices and held-out variants) and "
                 "flite (held-out voices) through sox, 16 kHz mono",
    config_file=Path(__file__).with_name("config.yaml"),
    build_pipeline=build_pipeline,
    fetch_data=fetch_data,
)
