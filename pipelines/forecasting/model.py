"""The forecasting model: normalized history -> rnnpipe's recurrent forecaster -> the next H values.

Training fits the normalized targets; the serving signature takes the raw history (original units),
applies the transform graph, calls the model and maps its output back: ``forecast = y * scale + level``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import tensorflow as tf

from rnnpipe.components.task import Signature, TrainingTask
from rnnpipe.models import build_forecaster

from .features import HISTORY_KEY, HISTORY_NORM, LEVEL, SCALE, TARGET_NORM


def model_inputs(features: dict) -> tf.Tensor:
    return tf.expand_dims(features[HISTORY_NORM], -1)  # [..., L, 1]: one value per step


def targets(features: dict) -> tf.Tensor:
    return features[TARGET_NORM]


def forecaster_args(hparams: dict) -> dict:
    """The model section as ``build_forecaster``'s arguments: ``decoding`` is its ``strategy`` (named apart from
    ``distribution.strategy``)."""
    args = dict(hparams)
    args["strategy"] = args.pop("decoding")
    return args


def build_model(hparams: dict, tft_output: Any) -> Any:
    spec = tft_output.transformed_feature_spec()
    history, horizon = spec[HISTORY_NORM].shape[-1], spec[TARGET_NORM].shape[-1]
    return build_forecaster(history, horizon, **forecaster_args(hparams))


def serve(model: Any, transform: Callable[[dict], dict], inputs: dict, tft_output: Any) -> dict[str, tf.Tensor]:
    features = transform({HISTORY_KEY: inputs[HISTORY_KEY]})
    normalized = model(model_inputs(features), training=False)
    return {"forecast": normalized * features[SCALE] + features[LEVEL]}


TASK = TrainingTask(
    label_key=TARGET_NORM,
    serving_features=(HISTORY_KEY,),
    build_model=build_model,
    model_inputs=model_inputs,
    targets=targets,
    postprocess=lambda outputs, tft_output: {"forecast_normalized": outputs},
    loss="mae",  # MASE and MAE are what the Evaluator scores; MAE's minimizer is the median forecast
    metrics=("mse",),
    serve=Signature(serve, raw_features=(HISTORY_KEY,)),
)
