"""What an application tells the generic Trainer, exporter and Evaluator about its model."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rnnpipe.dsl import Ref


@dataclass(frozen=True)
class Signature:
    """One serving signature: ``fn(model, transform, inputs, tft_output) -> dict of output tensors``.

    ``transform(raw)`` applies the tensorflow-transform graph to a dict of raw features. ``inputs`` holds
    the ``raw_features`` (batched, specs from the raw schema) and the ``extra_inputs`` (name ->
    tf.TensorSpec: inputs that are not features of the data, such as a generation length). ``fn`` is
    traced without AutoGraph: loops are ``tf.while_loop``, branches ``tf.cond``.
    """

    fn: Callable[[Any, Callable[[dict], dict], dict, Any], dict]
    raw_features: tuple[str, ...] = ()
    extra_inputs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TrainingTask:
    """The application-specific half of training and serving.

    build_model(hparams, tft_output) -> an uncompiled keras.Model
    model_inputs(transformed_features) -> the model's input tensor(s), batched or not (TF ops: they also
        run inside the serving signature)
    targets(transformed_features) -> the training labels (default: the ``label_key`` feature)
    postprocess(model_outputs, tft_output) -> dict of named serving outputs
    sequence_length(model_input) -> scalar length of one example's input, for length bucketing
    loss, metrics: Keras names or objects (an object such as
        ``SparseCategoricalCrossentropy(ignore_class=0)`` handles padded sequence labels)
    serve: replaces the default ``serving_default`` (transform -> model_inputs -> model -> postprocess)
    extra_signatures: further named signatures, e.g. a scoring signature next to a generating one
    request_features(record) -> the record as a client sends it, for examples that store a reference to what
        is sent (the path of a WAV file, where clients send its bytes); the Evaluator and InfraValidator apply
        it before calling the model (default: the record as stored)
    averageable: the mean of several trained models' outputs is a better model's output (class probabilities),
        and the signatures only call the model: ``trainer.ensemble`` may then train several (models.mean_ensemble)
    fit_on_eval(model, eval_batches, train_batches) -> metrics: after training, sets what held-out windows
        decide rather than gradient descent (forecasting's share of the network's correction, chosen on the
        eval split: models.choose_correction_share)
    """

    label_key: str
    serving_features: tuple[str, ...]
    build_model: Callable[[dict, Any], Any]
    model_inputs: Callable[[dict], Any]
    postprocess: Callable[[Any, Any], dict]
    loss: Any
    metrics: tuple[Any, ...]
    sequence_length: Callable[[Any], Any] | None = None
    targets: Callable[[dict], Any] | None = None
    serve: Signature | None = None
    extra_signatures: dict[str, Signature] = field(default_factory=dict)
    request_features: Callable[[dict], dict] | None = None
    averageable: bool = False
    fit_on_eval: Callable[[Any, Any, Any], dict] | None = None

    def labels(self, transformed: dict) -> Any:
        return self.targets(transformed) if self.targets is not None else transformed[self.label_key]

    def as_request(self, record: dict) -> dict:
        return self.request_features(record) if self.request_features is not None else record

    def signatures(self) -> dict[str, Signature]:
        """Every signature the export gets, ``serving_default`` first."""
        default = self.serve or Signature(_default_serve(self), raw_features=self.serving_features)
        return {"serving_default": default, **self.extra_signatures}


def request_preparer(task: str | None) -> Callable[[dict], dict]:
    """The referenced task's ``as_request`` ('module:TASK'; None: records go as they are stored)."""
    if task is None:
        return lambda record: record
    return Ref(task).resolve().as_request


def dense(x: Any, dtype: Any = "int64", pad: int = 0) -> Any:
    """A variable-length transformed feature (tf.Transform gives a SparseTensor or a RaggedTensor) as a dense
    [batch, time] tensor right-padded with ``pad``, cast to ``dtype``; a dense one is only cast."""
    import tensorflow as tf

    if isinstance(x, tf.SparseTensor):
        x = tf.sparse.to_dense(x, default_value=tf.cast(pad, x.dtype))
    elif isinstance(x, tf.RaggedTensor):
        x = x.to_tensor(default_value=tf.cast(pad, x.dtype))
    return tf.cast(x, dtype)


def _default_serve(task: TrainingTask) -> Callable:
    def serve(model: Any, transform: Callable[[dict], dict], inputs: dict, tft_output: Any) -> dict:
        outputs = model(task.model_inputs(transform(inputs)), training=False)
        return task.postprocess(outputs, tft_output)
    return serve
