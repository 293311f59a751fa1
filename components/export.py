"""The serving export: one tf.Module whose signatures take RAW features.

The tensorflow-transform graph (a tf_keras object) and the Keras 3 model are called side by side
inside one tf.function per signature instead of being mixed into one Keras model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import tensorflow as tf

from .task import Signature, TrainingTask


class ServingModule(tf.Module):
    """The exported module. With a ``temperature`` (trainer.calibration), the signatures see a model whose class
    probabilities are temperature-scaled; the Keras model itself stays ``model`` in the checkpoint, so a warm
    start reads it as before."""

    def __init__(self, model: Any, tft_output: Any, temperature: float | None = None) -> None:
        super().__init__()
        self.model = model
        self.tft_layer = tft_output.transform_features_layer()
        self._tft_output = tft_output
        self.temperature = None if temperature is None else tf.Variable(
            float(temperature), trainable=False, name="calibration_temperature")

    def transform(self, raw: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        return self.tft_layer(raw)

    def calibrated(self, inputs: Any, training: bool = False) -> Any:
        from rnnpipe.models.calibration import scale_tensor

        return scale_tensor(self.model(inputs, training=training), self.temperature)

    def concrete(self, signature: Signature) -> Any:
        model = self.model if self.temperature is None else self.calibrated

        def fn(**inputs: tf.Tensor) -> dict[str, tf.Tensor]:
            return signature.fn(model, self.transform, inputs, self._tft_output)

        specs = {**raw_input_specs(self._tft_output, signature.raw_features), **signature.extra_inputs}
        specs = {name: tf.TensorSpec(s.shape, s.dtype, name=name) for name, s in specs.items()}
        # Plain tensor code: no AutoGraph source reads, so what is traced is what is written.
        return tf.function(fn, autograph=False).get_concrete_function(**specs)


def raw_input_specs(tft_output: Any, names: tuple[str, ...]) -> dict[str, tf.TensorSpec]:
    spec = tft_output.raw_feature_spec()
    out = {}
    for name in names:
        feature = spec[name]
        if not isinstance(feature, tf.io.FixedLenFeature):
            raise ValueError(f"serving feature '{name}' must be a dense feature in the schema, got {feature}")
        out[name] = tf.TensorSpec([None, *feature.shape], feature.dtype, name=name)
    return out


def export_serving_model(model: Any, tft_output: Any, task: TrainingTask, path: str | Path,
                         temperature: float | None = None) -> None:
    module = ServingModule(model, tft_output, temperature)
    signatures = {name: module.concrete(sig) for name, sig in task.signatures().items()}
    tf.saved_model.save(module, str(path), signatures=signatures)
