"""What an application tells the generic Trainer, exporter and Evaluator about its model."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class TrainingTask:
    """The application-specific half of training and serving.

    build_model(hparams, tft_output) -> an uncompiled keras.Model
    model_inputs(transformed_features) -> the model's input tensor(s), batched or not (TF ops: they also
        run inside the serving signature)
    postprocess(model_outputs, tft_output) -> dict of named serving outputs
    sequence_length(model_input) -> scalar length of one example's input, for length bucketing
    """

    label_key: str
    serving_features: tuple[str, ...]
    build_model: Callable[[dict, Any], Any]
    model_inputs: Callable[[dict], Any]
    postprocess: Callable[[Any, Any], dict]
    loss: str
    metrics: tuple[str, ...]
    sequence_length: Callable[[Any], Any] | None = None
