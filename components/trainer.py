"""Trainer: Keras 3 training on the transformed examples under a tf.distribute strategy.

Length-bucketed batches keep padding low; a backup each epoch lets a killed Trainer resume from its
last finished epoch; gradients are clipped by global norm; early stopping restores the best weights.
The exported SavedModel's serving signature takes raw features (see export.py).
"""

from __future__ import annotations

import math
import warnings

from rnnpipe.artifacts import Examples, Model, ModelRun, TransformGraph
from rnnpipe.context import ExecutionContext
from rnnpipe.dsl import Artifact, Component, Param, Ref
from rnnpipe.errors import ConfigError, RnnpipeError

from .task import TrainingTask


def run_trainer(inputs: dict[str, Artifact], outputs: dict[str, Artifact], params: dict,
                ctx: ExecutionContext) -> dict:
    # TensorFlow and Keras only here: a pipeline that finds this step cached never imports them.
    import keras

    from .distribute import make_strategy
    from .export import export_serving_model
    from .plots import plot_learning_curves
    from .training import AtomicBackupAndRestore, MetricsLogger, fresh, lr_schedule_callbacks, make_dataset

    task: TrainingTask = Ref(params["task"]).resolve()
    tft_output = TransformGraph.load(inputs["transform_graph"])
    data = inputs["transformed_examples"]
    keras.utils.set_random_seed(params["seed"])
    ds_args = dict(batch_size=params["batch_size"], bucket_boundaries=params["bucket_boundaries"],
                   seed=params["seed"], shuffle_buffer=params["shuffle_buffer"])
    train_ds = make_dataset(Examples.file_pattern(data, "train"), tft_output, task, training=True, **ds_args)
    eval_ds = make_dataset(Examples.file_pattern(data, "eval"), tft_output, task, training=False, **ds_args)
    if params["steps_per_epoch"]:
        train_ds = train_ds.repeat().take(params["steps_per_epoch"])

    strategy = make_strategy(ctx.strategy)
    ctx.log(f"strategy {type(strategy).__name__} with {strategy.num_replicas_in_sync} replica(s)")
    with strategy.scope():
        model = task.build_model(params["hparams"], tft_output)
        model.compile(
            optimizer=keras.optimizers.Adam(params["learning_rate"], global_clipnorm=params["clipnorm"] or None),
            loss=fresh(task.loss), metrics=[fresh(m) for m in task.metrics])
    backup = AtomicBackupAndRestore(ctx.scratch_dir / "backup")
    callbacks = [
        backup,
        keras.callbacks.EarlyStopping(monitor=params["monitor"], mode="auto", patience=params["patience"],
                                      restore_best_weights=True),
        keras.callbacks.TerminateOnNaN(),
        MetricsLogger(ctx.tracker),
        *lr_schedule_callbacks(params["lr_schedule"], params["learning_rate"], params["epochs"], params["monitor"]),
    ]
    with warnings.catch_warnings():
        # Keras warns at the end of the first epoch of a dataset of unknown length, which the bucketed one is.
        warnings.filterwarnings("ignore", message="Your input ran out of data")
        history = model.fit(train_ds, validation_data=eval_ds, epochs=params["epochs"], callbacks=callbacks,
                            shuffle=False, verbose=2)  # the dataset shuffles itself
    hist = {k: [float(v) for v in vs] for k, vs in history.history.items()}
    epochs = _check_trained(hist, backup.restored_epoch, params["epochs"])

    run_dir = outputs["model_run"].path()
    ModelRun.write(run_dir, model, hist)
    if hist:
        ctx.tracker.log_artifact(plot_learning_curves(hist, run_dir / "learning_curves.png"), "plots")
    export_serving_model(model, tft_output, task, outputs["model"].uri)
    ctx.log(f"exported the serving model to {outputs['model'].uri}")
    ctx.tracker.log_artifact(outputs["model"].path(), Model.MLFLOW_PATH)
    monitored = hist.get(params["monitor"], [])
    best = (max if "acc" in params["monitor"] else min)(monitored) if monitored else float("nan")
    return {"epochs": epochs, f"best_{params['monitor']}": best,
            "parameters": int(model.count_params())}


def _check_trained(hist: dict[str, list[float]], restored_epoch: int, epochs: int) -> int:
    """The number of finished epochs, restored ones included; raises unless the weights are worth exporting."""
    finished = restored_epoch + len(next(iter(hist.values()), []))
    if finished < 1:
        raise ConfigError(f"Trainer: no epoch was trained (trainer.epochs={epochs}); nothing is exported. "
                          "Set trainer.epochs to 1 or more")
    losses = hist.get("loss", [])
    if losses and not math.isfinite(losses[-1]):
        raise RnnpipeError(f"Trainer: the training loss became {losses[-1]} in epoch {finished}; nothing is "
                           "exported. Lower trainer.learning_rate or trainer.clipnorm, or look for extreme values "
                           "in the data")
    return finished


class Trainer(Component):
    INPUTS = {"transformed_examples": Examples.TYPE, "transform_graph": TransformGraph.TYPE}
    OUTPUTS = {"model": Model.TYPE, "model_run": ModelRun.TYPE}
    PARAMETERS = {
        "task": Param(Ref, doc="'module:TASK', a TrainingTask"),
        "hparams": Param(dict, {}, doc="passed to task.build_model"),
        "epochs": Param(int, 5, min=1),
        "batch_size": Param(int, 64, min=1),
        "learning_rate": Param(float, 1e-3, min=0, min_exclusive=True),
        "lr_schedule": Param(str, "constant", choices=("constant", "cosine", "plateau"),
                             doc="by epoch: constant; cosine decay to 5% over trainer.epochs; plateau halves it "
                                 "when the monitored metric stalls"),
        "clipnorm": Param(float, 1.0, doc="clip gradients to this global norm; 0 disables", min=0),
        "monitor": Param(str, "val_loss"),
        "patience": Param(int, 2, doc="early stopping patience in epochs", min=0),
        "bucket_boundaries": Param(list, [10, 20, 40, 80]),
        "shuffle_buffer": Param(int, 10000, min=1),
        "steps_per_epoch": Param((int, type(None)), None, doc="cap per epoch (smoke tests); None = one pass", min=1),
        "seed": Param(int, 42, doc="NumPy's range: 0 to 2**32 - 1", min=0, max=2**32 - 1),
    }
    executor = staticmethod(run_trainer)
