"""The serving export: one tf.Module whose ``serving_default`` takes RAW features.

The tensorflow-transform graph (a tf_keras object) and the Keras 3 model are called side by side
inside one tf.function instead of being mixed into one Keras model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import tensorflow as tf

from .task import TrainingTask

SIGNATURE = "serving_default"


class ServingModule(tf.Module):
    def __init__(self, model: Any, tft_output: Any, task: TrainingTask) -> None:
        super().__init__()
        self.model = model
        self.tft_layer = tft_output.transform_features_layer()
        self._tft_output = tft_output
        self._task = task

    def serve(self, **raw: tf.Tensor) -> dict[str, tf.Tensor]:
        transformed = self.tft_layer(raw)
        outputs = self.model(self._task.model_inputs(transformed), training=False)
        return self._task.postprocess(outputs, self._tft_output)


def raw_input_specs(tft_output: Any, names: tuple[str, ...]) -> dict[str, tf.TensorSpec]:
    spec = tft_output.raw_feature_spec()
    out = {}
    for name in names:
        feature = spec[name]
        if not isinstance(feature, tf.io.FixedLenFeature):
            raise ValueError(f"serving feature '{name}' must be a dense feature in the schema, got {feature}")
        out[name] = tf.TensorSpec([None, *feature.shape], feature.dtype, name=name)
    return out


def export_serving_model(model: Any, tft_output: Any, task: TrainingTask, path: str | Path) -> None:
    module = ServingModule(model, tft_output, task)
    serve = tf.function(module.serve, autograph=False)  # plain tensor code; no AutoGraph source reads
    concrete = serve.get_concrete_function(**raw_input_specs(tft_output, task.serving_features))
    tf.saved_model.save(module, str(path), signatures={SIGNATURE: concrete})
