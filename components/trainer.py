"""Trainer: Keras 3 training on the transformed examples under a tf.distribute strategy.

Length-bucketed batches keep padding low; a backup each epoch lets a killed Trainer resume from its
last finished epoch; gradients are clipped by global norm; early stopping restores the best weights.
The exported SavedModel's serving signature takes raw features (see export.py).
"""

from __future__ import annotations

import json
from typing import Any

import keras
import tensorflow as tf
import tensorflow_transform as tft

from rnnpipe.dsl import Artifact, Component, Param, Ref

from .distribute import make_strategy
from .example_io import file_pattern
from .export import export_serving_model
from .plots import plot_learning_curves
from .task import TrainingTask


def make_dataset(pattern: str, tft_output: Any, task: TrainingTask, *, batch_size: int, training: bool,
                 bucket_boundaries: list[int], seed: int, shuffle_buffer: int) -> tf.data.Dataset:
    spec = tft_output.transformed_feature_spec()
    files = tf.data.Dataset.list_files(pattern, shuffle=training, seed=seed)
    ds = tf.data.TFRecordDataset(files, compression_type="GZIP")
    if training:
        ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)

    def parse(serialized: tf.Tensor) -> tuple[Any, tf.Tensor]:
        features = tf.io.parse_single_example(serialized, spec)
        return task.model_inputs(features), task.labels(features)

    ds = ds.map(parse, num_parallel_calls=tf.data.AUTOTUNE)
    if task.sequence_length is not None and bucket_boundaries:
        ds = ds.bucket_by_sequence_length(
            lambda x, y: task.sequence_length(x), bucket_boundaries,
            [batch_size] * (len(bucket_boundaries) + 1), drop_remainder=False)
    else:
        ds = ds.batch(batch_size)
    return ds.prefetch(tf.data.AUTOTUNE)


def _fresh(obj: Any) -> Any:
    """A new instance of a Keras loss or metric object, created in the strategy's scope (names pass)."""
    return obj if isinstance(obj, str) else type(obj).from_config(obj.get_config())


class MetricsLogger(keras.callbacks.Callback):
    """Logs every epoch's training and validation metrics to the run's tracker as they happen."""

    def __init__(self, tracker: Any, prefix: str = "train") -> None:
        super().__init__()
        self.tracker, self.prefix = tracker, prefix

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        for key, value in (logs or {}).items():
            self.tracker.log_metric(f"{self.prefix}/{key}", float(value), step=epoch)


def run_trainer(inputs: dict[str, Artifact], outputs: dict[str, Artifact], params: dict, ctx: Any) -> dict:
    task: TrainingTask = Ref(params["task"]).resolve()
    tft_output = tft.TFTransformOutput(inputs["transform_graph"].uri)
    data = inputs["transformed_examples"].uri
    keras.utils.set_random_seed(params["seed"])
    ds_args = dict(batch_size=params["batch_size"], bucket_boundaries=params["bucket_boundaries"],
                   seed=params["seed"], shuffle_buffer=params["shuffle_buffer"])
    train_ds = make_dataset(file_pattern(data, "train"), tft_output, task, training=True, **ds_args)
    eval_ds = make_dataset(file_pattern(data, "eval"), tft_output, task, training=False, **ds_args)
    if params["steps_per_epoch"]:
        train_ds = train_ds.repeat().take(params["steps_per_epoch"])

    strategy = make_strategy(ctx.strategy)
    ctx.log(f"strategy {type(strategy).__name__} with {strategy.num_replicas_in_sync} replica(s)")
    with strategy.scope():
        model = task.build_model(params["hparams"], tft_output)
        model.compile(
            optimizer=keras.optimizers.Adam(params["learning_rate"], global_clipnorm=params["clipnorm"] or None),
            loss=_fresh(task.loss), metrics=[_fresh(m) for m in task.metrics])
    callbacks = [
        keras.callbacks.BackupAndRestore(str(ctx.scratch_dir / "backup"), save_freq="epoch"),
        keras.callbacks.EarlyStopping(monitor=params["monitor"], mode="auto", patience=params["patience"],
                                      restore_best_weights=True),
        keras.callbacks.TerminateOnNaN(),
        MetricsLogger(ctx.tracker),
    ]
    history = model.fit(train_ds, validation_data=eval_ds, epochs=params["epochs"], callbacks=callbacks,
                        verbose=2)

    run_dir = outputs["model_run"].path()
    model.save(run_dir / "model.keras")
    hist = {k: [float(v) for v in vs] for k, vs in history.history.items()}
    (run_dir / "history.json").write_text(json.dumps(hist, indent=1))
    if hist:
        ctx.tracker.log_artifact(plot_learning_curves(hist, run_dir / "learning_curves.png"), "plots")
    export_serving_model(model, tft_output, task, outputs["model"].uri)
    ctx.log(f"exported the serving model to {outputs['model'].uri}")
    ctx.tracker.log_artifact(outputs["model"].path(), "serving_model")
    monitored = hist.get(params["monitor"], [])
    best = (max if "acc" in params["monitor"] else min)(monitored) if monitored else float("nan")
    return {"epochs": len(next(iter(hist.values()), [])), f"best_{params['monitor']}": best,
            "parameters": int(model.count_params())}


class Trainer(Component):
    INPUTS = {"transformed_examples": "Examples", "transform_graph": "TransformGraph"}
    OUTPUTS = {"model": "Model", "model_run": "ModelRun"}
    CODE = ("rnnpipe.models",)
    PARAMETERS = {
        "task": Param(Ref, doc="'module:TASK', a TrainingTask"),
        "hparams": Param(dict, {}, doc="passed to task.build_model"),
        "epochs": Param(int, 5),
        "batch_size": Param(int, 64),
        "learning_rate": Param(float, 1e-3),
        "clipnorm": Param(float, 1.0, doc="clip gradients to this global norm; 0 disables"),
        "monitor": Param(str, "val_loss"),
        "patience": Param(int, 2, doc="early stopping patience in epochs"),
        "bucket_boundaries": Param(list, [10, 20, 40, 80]),
        "shuffle_buffer": Param(int, 10000),
        "steps_per_epoch": Param((int, type(None)), None, doc="cap per epoch (smoke tests); None = one pass"),
        "seed": Param(int, 42),
    }
    executor = staticmethod(run_trainer)
