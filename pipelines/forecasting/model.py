"""The forecasting model: normalized history -> rnnpipe's recurrent forecaster -> the next H values.

Training fits the normalized targets; the serving signature takes the raw history (original units),
applies the transform graph, calls the model and maps its output back: ``forecast = y * scale + level``.
``SERIES_TASK`` (``model.skip: ets``) serves the whole series instead, of any length, and adds the ETS
forecast of it that the network corrects (and Theta's, which held-out windows may mix in).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import tensorflow as tf

from rnnpipe.components.task import Signature, TrainingTask
from rnnpipe.models import build_forecaster, choose_correction_share

from . import ets
from .features import (
    BASE_NORM,
    ETS_PARAMS,
    HISTORY_KEY,
    HISTORY_NORM,
    LEVEL,
    SCALE,
    SERIES_THETA_NORM,
    TARGET_NORM,
    series_theta,
)


def model_inputs(features: dict) -> tf.Tensor:
    return tf.expand_dims(features[HISTORY_NORM], -1)  # [..., L, 1]: one value per step


def series_model_inputs(features: dict) -> dict[str, tf.Tensor]:
    return {"history": model_inputs(features), "base": features[BASE_NORM], "series_theta": features[SERIES_THETA_NORM]}


def choose_shares(model: Any, eval_batches: Any, train_batches: Any) -> dict[str, Any]:
    """The shares of the network's correction and of the window's Theta and Holt-Winters forecasts, chosen on
    held-out windows, with a note for the run summary when the served model is not the network's whole
    correction on the ETS forecast alone."""
    chosen = choose_correction_share(model, eval_batches, alternative_batches=train_batches)
    note = share_note(chosen)
    return {**chosen, **({"note": note} if note else {})}


def share_note(chosen: dict) -> str | None:
    """What the served model forecasts, when it is not the network's whole correction on the ETS forecast."""
    share = chosen.get("correction_share")
    names = {"theta_share": "Theta of the window", "alternative_share": "Holt-Winters of the window",
             "series_theta_share": "Theta of the whole series"}
    mix = [f"{name} {chosen[key]:.0%}" for key, name in names.items() if chosen.get(key)]
    if share is None or (share and not mix):
        return None
    listed = ", ".join(mix[:-1]) + " and " + mix[-1] if len(mix) > 1 else "".join(mix)
    mixed = f"held-out windows mixed {listed} into the ETS forecast, and " if mix else ""
    spans = chosen.get("eval_horizons", 2.0)
    if spans < 2:
        kept = (f"the eval split's values span {spans:.2g} horizon{'' if spans == 1 else 's'}, under the two it "
                "takes to judge the network's correction, so none of it is kept")
    else:
        kept = f"the eval split kept {share:.0%} of the network's correction"
    return f"{mixed}{kept}: the pushed model serves {'that mix' if mix else 'the ETS forecast alone'}"


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


def serve_series(model: Any, transform: Callable[[dict], dict], inputs: dict, tft_output: Any) -> dict[str, tf.Tensor]:
    """The whole series (``[batch, time]``, any time; shorter rows left-padded with NaN) -> the forecast: the
    transform reads the end of the series as training's records held it, and the ETS filter and Theta run over
    all of it here, so a series longer than any in training is forecast from all its values."""
    series = tf.cast(inputs[HISTORY_KEY], tf.float32)
    width = tft_output.raw_feature_spec()[HISTORY_KEY].shape[-1]
    short = tf.maximum(width - tf.shape(series)[1], 0)
    padded = tf.concat([tf.fill([tf.shape(series)[0], short], float("nan")), series], axis=1)[:, -width:]
    features = transform({HISTORY_KEY: padded})
    params = features[ETS_PARAMS][0]
    season = params.shape[-1] - ets.SEASONS0
    horizon = tft_output.transformed_feature_spec()[TARGET_NORM].shape[-1]
    with tf.control_dependencies([ets.check_start(series, params)]):
        base = ets.forecast(series, params, horizon, season)
    theta = series_theta(series, horizon, season)
    normalized = model({"history": model_inputs(features), "base": (base - features[LEVEL]) / features[SCALE],
                        "series_theta": (theta - features[LEVEL]) / features[SCALE]}, training=False)
    return {"forecast": normalized * features[SCALE] + features[LEVEL]}


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

# model.skip=ets: records and requests hold the whole series before the origin. After training, held-out windows
# choose the shares of Theta and Holt-Winters of the window and of Theta of the whole series in the base, the eval
# split the share of the network's correction (all 0: the ETS forecast alone).
SERIES_TASK = dataclasses.replace(
    TASK, model_inputs=series_model_inputs,
    fit_on_eval=choose_shares,
    serve=Signature(serve_series, extra_inputs={HISTORY_KEY: tf.TensorSpec([None, None], tf.float32)}))
