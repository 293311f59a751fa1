"""The served SavedModel as an MLflow pyfunc model, so that ``models:/<name>@champion`` loads and serves.

``ServingModel`` wraps the version folder TF Serving serves (logged as the model's artifact) and calls its
raw-input ``serving_default`` signature on a pandas DataFrame: one column per signature input, one row per
example; inputs a frame lacks (a generation length) come from the defaults recorded when the model was logged.

This file is also the logged model's code (MLflow's "models from code"): loading the model needs mlflow,
numpy, pandas, tensorflow and tensorflow_text, not rnnpipe. TensorFlow is imported only when a model loads
or is described, so importing this module stays cheap.
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

SIGNATURE = "serving_default"
ARTIFACT = "saved_model"  # the pyfunc artifact holding the served version folder
DEFAULTS = "request_defaults"  # model_config key: values for the inputs a frame may leave out
REQUIREMENTS = ("mlflow", "tensorflow", "tensorflow-text", "numpy", "pandas")

Spec = dict[str, dict[str, tuple[str, list[int] | None]]]  # {"inputs"|"outputs": {name: (dtype, shape)}}


class ServingModel(mlflow.pyfunc.PythonModel):
    """``predict(frame)`` -> a DataFrame with one row per input row and one column per signature output
    (per-row arrays as lists, strings decoded from UTF-8)."""

    def load_context(self, context: Any) -> None:
        import tensorflow as tf

        try:
            import tensorflow_text  # noqa: F401  (registers the TF-Text ops the serving graph uses)
        except ImportError:  # a graph without TF-Text ops loads without it; one with them says which op
            pass
        self._loaded = tf.saved_model.load(context.artifacts[ARTIFACT])  # owns the signature's variables
        self._fn = self._loaded.signatures[SIGNATURE]
        self._defaults = dict((context.model_config or {}).get(DEFAULTS) or {})

    # pd.DataFrame: a hint MLflow derives no signature from (the MLmodel has the signature) and does not convert.
    def predict(self, context: Any, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        frame = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
        specs = self._fn.structured_input_signature[1]
        outputs = self._fn(**{name: self._tensor(name, spec, frame) for name, spec in sorted(specs.items())})
        return pd.DataFrame({name: _column(value.numpy(), len(frame)) for name, value in sorted(outputs.items())})

    def _tensor(self, name: str, spec: Any, frame: pd.DataFrame) -> Any:
        """The input ``name`` from the frame's column of that name, else from the logged defaults."""
        scalar = spec.shape.rank == 0
        if name in frame.columns:
            values = frame[name].tolist()
            if scalar and len({repr(v) for v in values}) > 1:
                raise _error(f"column '{name}' must hold one value for the whole frame (the model takes a "
                             f"single {spec.dtype.name}); got {sorted({repr(v) for v in values})}")
            value = values[0] if scalar else values
        elif name in self._defaults:
            value = self._defaults[name] if scalar else [self._defaults[name]] * len(frame)
        else:
            raise _error(f"the model takes '{name}', which the input has no column for (columns: "
                         f"{', '.join(map(str, frame.columns)) or 'none'}); add a '{name}' column")
        return _convert(name, value, spec)


def _error(message: str) -> MlflowException:
    return MlflowException(message, error_code=INVALID_PARAMETER_VALUE)  # the scoring server answers 400


def _convert(name: str, value: Any, spec: Any) -> Any:
    """A column's values as a tensor of the signature's dtype; a column of lists becomes a 2-D tensor."""
    import tensorflow as tf

    text = spec.dtype == tf.string
    shape = spec.shape.as_list() if spec.shape.rank is not None else None
    try:
        array = np.asarray(value, dtype=object if text else spec.dtype.as_numpy_dtype)
    except (TypeError, ValueError) as e:
        raise _error(f"column '{name}' cannot be read as {spec.dtype.name} values of shape {shape}: {e}") from e
    if text and not all(isinstance(v, (str, bytes)) for v in array.ravel()):
        raise _error(f"column '{name}' must hold text; it holds {sorted({type(v).__name__ for v in array.ravel()})}")
    if not spec.shape.is_compatible_with(array.shape):
        raise _error(f"column '{name}' has shape {list(array.shape)} (rows first); the model takes {shape} "
                     "(None: any size)")
    return tf.constant(array, dtype=spec.dtype)


def _column(array: np.ndarray, rows: int) -> Any:
    if array.dtype == object:  # tf.string comes back as bytes
        array = np.array([v.decode("utf-8", "replace") for v in array.ravel()], dtype=object).reshape(array.shape)
    if array.ndim == 0:
        return [array.item()] * rows
    return array if array.ndim == 1 else [row.tolist() for row in array]


# Log time (the Pusher): describe the SavedModel, build the MLflow signature and input example, save.

def describe(model_dir: Path) -> Spec | None:
    """The inputs and outputs of the SavedModel's ``serving_default`` signature as dtype names and shapes
    (-1: any size; None: unknown rank), read from ``saved_model.pb`` without loading the model; None when
    ``model_dir`` holds no SavedModel with that signature."""
    import tensorflow as tf
    from google.protobuf.message import DecodeError
    from tensorflow.core.protobuf import saved_model_pb2

    try:
        saved = saved_model_pb2.SavedModel.FromString((Path(model_dir) / "saved_model.pb").read_bytes())
    except (OSError, DecodeError):
        return None
    for meta in saved.meta_graphs:
        if SIGNATURE in meta.signature_def:
            signature = meta.signature_def[SIGNATURE]
            return {part: {name: (tf.as_dtype(info.dtype).name,
                                  None if info.tensor_shape.unknown_rank else [d.size for d in info.tensor_shape.dim])
                           for name, info in sorted(getattr(signature, part).items())}
                    for part in ("inputs", "outputs")}
    return None


def _col_type(dtype: str, shape: list[int] | None, wide: bool) -> Any:
    """The MLflow column type of one row of a tensor. ``wide``: double and long, so that pandas' default
    float64 and int64 columns pass MLflow's schema check (``predict`` casts to the signature's dtype)."""
    from mlflow.types.schema import Array, DataType

    if dtype == "string":
        column: Any = DataType.string
    elif dtype == "bool":
        column = DataType.boolean
    elif dtype.startswith(("float", "bfloat")):
        column = DataType.double if wide or dtype == "float64" else DataType.float
    else:
        column = DataType.long if wide or dtype in ("int64", "uint32", "uint64") else DataType.integer
    for _ in (shape or [])[1:]:  # dimensions after the batch one
        column = Array(column)
    return column


def model_signature(spec: Spec, defaults: dict) -> Any:
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    inputs = [ColSpec(_col_type(dtype, shape, wide=True), name, required=name not in defaults)
              for name, (dtype, shape) in spec["inputs"].items()]
    outputs = [ColSpec(_col_type(dtype, shape, wide=False), name) for name, (dtype, shape) in spec["outputs"].items()]
    return ModelSignature(Schema(inputs), Schema(outputs))


def input_example(requests: list[dict[str, np.ndarray]], spec: Spec) -> pd.DataFrame | None:
    """A frame of the rows in ``requests`` (the InfraValidator's warmup requests: real examples, one
    ``{input: array}`` per request); None if there are none."""
    scalar = {name for name, (_, shape) in spec["inputs"].items() if shape == []}
    rows = []
    for request in requests:
        batched = [v for k, v in request.items() if k not in scalar]
        for i in range(len(batched[0]) if batched else 1):
            rows.append({name: _plain(value if name in scalar else value[i])
                         for name, value in sorted(request.items())})
    return pd.DataFrame(rows) if rows else None


def _plain(value: Any) -> Any:
    value = np.asarray(value)
    if value.dtype.kind in "OS":  # tf.string values are bytes
        value = np.vectorize(lambda v: v.decode("utf-8", "replace") if isinstance(v, bytes) else v,
                             otypes=[object])(value)
    return value.tolist()


def requirements() -> list[str]:
    """Pinned to what this process runs (no requirement inference: MLflow would load the model to guess)."""
    found = []
    for package in REQUIREMENTS:
        try:
            found.append(f"{package}=={importlib.metadata.version(package)}")
        except importlib.metadata.PackageNotFoundError:
            pass
    return found


def save(path: Path, version_dir: Path, spec: Spec, defaults: dict, example: pd.DataFrame | None,
         mlflow_model: Any = None) -> None:
    """Writes the MLflow model (MLmodel, this file as its code, ``version_dir`` as its artifact) to ``path``;
    ``mlflow_model``: the ``mlflow.models.Model`` that links it to a logged model and run."""
    mlflow.pyfunc.save_model(
        path=str(path), python_model=__file__, artifacts={ARTIFACT: str(version_dir)},
        model_config={DEFAULTS: dict(defaults)}, signature=model_signature(spec, defaults),
        input_example=example, pip_requirements=requirements(), mlflow_model=mlflow_model)


if __name__ != "rnnpipe.mlflow_model":  # run as a logged model's code: this is the model MLflow loads
    mlflow.models.set_model(ServingModel())
