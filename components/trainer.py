"""Trainer: Keras 3 training on the transformed examples under a tf.distribute strategy.

Length-bucketed batches keep padding low; a backup each epoch lets a killed Trainer resume from its
last finished epoch; gradients are clipped by global norm; early stopping restores the best weights.
The exported SavedModel's serving signature takes raw features (see export.py).
"""

from __future__ import annotations

import math
import os
import shutil
import warnings
from typing import Any

from rnnpipe.artifacts import Examples, HyperParameters, Model, ModelRun, TransformGraph, WordEmbeddings
from rnnpipe.context import ExecutionContext
from rnnpipe.dsl import Artifact, Component, Param, ParamError, Ref
from rnnpipe.errors import ConfigError, RnnpipeError
from rnnpipe.serving import latest_champion, served_fingerprint

from .task import TrainingTask

CLIPPING = ("global_clipnorm", "clipnorm", "clipvalue")  # Keras' names: at most one may be set
LR_SCHEDULES = ("constant", "cosine", "plateau")  # training.lr_schedule_callbacks
# models.OPTIMIZERS' keys, written out: building the pipeline imports no Keras.
OPTIMIZER_NAMES = ("adam", "adamw", "sgd", "rmsprop", "adagrad", "adamax", "nadam", "lion")


def run_trainer(inputs: dict[str, Artifact], outputs: dict[str, Artifact], params: dict,
                ctx: ExecutionContext) -> dict:
    from .distribute import resolve_strategy

    strategy_name = resolve_strategy(ctx.strategy, ctx.workers)
    if strategy_name == "multi_worker" and "TF_CONFIG" not in os.environ:  # this process is not a worker yet
        from .multi_worker import run_on_workers

        return run_on_workers(f"{__name__}:run_trainer", inputs, outputs, params, ctx)
    # TensorFlow and Keras only here: a pipeline that finds this step cached never imports them.
    import keras

    from rnnpipe.models import mean_ensemble

    from .distribute import make_strategy
    from .export import export_serving_model
    from .plots import plot_learning_curves
    from .training import (
        AtomicBackupAndRestore,
        BatchFaultPoint,
        MetricsLogger,
        TimeBudget,
        agree_across_workers,
        assign_embeddings,
        fit_calibration,
        fix_keras_multi_worker,
        fresh,
        gradient_diagnostics,
        keep_finished_model,
        lr_schedule_callbacks,
        restore_finished_model,
        train_and_eval_datasets,
        training_loss,
        warm_start_from,
        weight_averaging_callbacks,
        weights_digest,
    )

    strategy = make_strategy(strategy_name)  # first: a multi-worker one must precede every TensorFlow op
    ctx.log(f"strategy {type(strategy).__name__} with {strategy.num_replicas_in_sync} replica(s)")
    task: TrainingTask = Ref(params["task"]).resolve()
    params = tuned(params, inputs.get("best_hyperparameters"), ctx)
    tft_output = TransformGraph.load(inputs["transform_graph"])
    members = params["ensemble"]
    if members > 1:
        _check_ensemble(task, params, strategy_name)
    run_dir = outputs["model_run"].path()
    pretrained = WordEmbeddings.read(inputs["embeddings"]) if inputs.get("embeddings") is not None else None

    def build(member: int) -> tuple[Any, int]:
        """A new model (the ``member``-th of an ensemble: its own seed) and how many embedding rows start
        pre-trained."""
        keras.utils.set_random_seed(params["seed"] + member)
        rows = 0
        with strategy.scope():
            model = task.build_model(params["hparams"], tft_output)
            if pretrained is not None:
                rows, message = assign_embeddings(model, pretrained)
                if member == 0:
                    ctx.log(message)
        return model, rows

    built = [build(member) for member in range(members)]
    learning_rate, warm = params["learning_rate"], None
    if params["warm_start"] == "champion":
        # An ensemble starts from the champion ensemble's members, each from the one in its place.
        target = built[0][0] if members == 1 else mean_ensemble([m for m, _ in built])
        champion = latest_champion(params["warm_start_dir"])
        reason = "nothing is served yet" if champion is None else warm_start_from(target, champion, tft_output)
        if reason is None:
            warm = {"from": str(champion), "version": int(champion.name), "digest": weights_digest(target)}
            learning_rate *= params["warm_start_lr_scale"]
            ctx.log(f"warm start from the served version {champion.name} ({champion}); learning rate "
                    f"{learning_rate:g}")
        else:
            ctx.log(f"warm start from {params['warm_start_dir']} not possible: {reason}; training from scratch")
            if champion is not None:  # a failed restore may have assigned some weights
                built = [build(member) for member in range(members)]
        ctx.tracker.set_tag("rnnpipe.warm_start", f"version {warm['version']}" if warm else f"none: {reason}")

    def fit(member: int) -> dict:
        """Trains the ``member``-th model (of an ensemble: its own seed and backup)."""
        model, pretrained_rows = built[member]
        member_params = {**params, "seed": params["seed"] + member}
        keras.utils.set_random_seed(member_params["seed"])
        train_ds, eval_ds = train_and_eval_datasets(inputs["transformed_examples"], tft_output, task, member_params)
        with strategy.scope():
            model.compile(optimizer=optimizer(params, learning_rate),
                          loss=training_loss(task, params["label_smoothing"]), metrics=[fresh(m) for m in task.metrics])
        fix_keras_multi_worker(model)
        # An ensemble keeps each trained member in the scratch space: a run killed during a later member resumes
        # there instead of training the finished ones again (their epochs' backups are gone by then).
        finished = ctx.scratch_dir / f"member-{member}" if members > 1 else None
        kept = restore_finished_model(finished, model) if finished else None
        if kept is not None:
            ctx.log(f"ensemble member {member + 1} of {members}: trained before the run was interrupted, loaded "
                    f"from {finished}")
            if member == 0:  # the run's curves are the first member's
                for epoch, logs in enumerate(zip(*kept["hist"].values(), strict=True), start=kept["first_epoch"]):
                    MetricsLogger(ctx.tracker).on_epoch_end(epoch, dict(zip(kept["hist"], logs, strict=True)))
            return {**kept, "model": model, "eval_ds": eval_ds, "train_ds": train_ds, "diagnostics": None}
        # Every worker restores the chief's backup (the same epoch for all); only the chief writes it.
        # A member's backup goes only once the member is kept: a kill in between resumes from its last epoch.
        backup = AtomicBackupAndRestore(ctx.scratch_dir / ("backup" if member == 0 else f"backup-{member}"),
                                        write=ctx.chief, delete_at_end=finished is None)
        budget = TimeBudget(params["max_minutes"] / members, agree=agree_across_workers(strategy)) \
            if params["max_minutes"] else None
        # The first member's epochs are the run's curves and gradient probes; the others report their best.
        diagnostics = gradient_diagnostics(eval_ds, params["diagnostics_every_n_steps"], ctx.tracker,
                                           run_dir / "gradient_diagnostics") \
            if params["gradient_diagnostics"] and member == 0 else None
        callbacks = [
            backup,  # before the swap: a backup holds the trained weights, their average is the optimizer's
            *weight_averaging_callbacks(params["ema_momentum"]),
            keras.callbacks.EarlyStopping(monitor=params["monitor"], mode="auto", patience=params["patience"],
                                          restore_best_weights=True),
            keras.callbacks.TerminateOnNaN(),
            *([MetricsLogger(ctx.tracker)] if member == 0 else []),
            *lr_schedule_callbacks(params["lr_schedule"], learning_rate, params["epochs"], params["monitor"], budget),
            *([budget] if budget else []),
            *([diagnostics] if diagnostics else []),
            *([BatchFaultPoint(f"Trainer.worker{ctx.worker_index}.batch")] if ctx.workers > 1 else []),
        ]
        if members > 1:
            ctx.log(f"ensemble member {member + 1} of {members} (seed {member_params['seed']})")
        with warnings.catch_warnings():
            # Keras warns at the end of the first epoch of a dataset of unknown length, which the bucketed one is.
            warnings.filterwarnings("ignore", message="Your input ran out of data")
            history = model.fit(train_ds, validation_data=eval_ds, epochs=params["epochs"], callbacks=callbacks,
                                shuffle=False, verbose=2)  # the dataset shuffles itself
        hist = {k: [float(v) for v in vs] for k, vs in history.history.items()}
        epochs = _check_trained(hist, backup.restored_epoch, params["epochs"])
        if budget and budget.stopped_after and epochs < params["epochs"]:  # not at the last epoch: it ended anyway
            ctx.log(f"stopped after epoch {epochs} of {params['epochs']}: another would have overrun "
                    f"trainer.max_minutes={params['max_minutes']:g}" + (f" / {members} members" if members > 1 else ""))
        monitored = hist.get(params["monitor"], [])
        summary = {"hist": hist, "epochs": epochs, "first_epoch": backup.restored_epoch,
                   "pretrained_rows": 0 if warm else pretrained_rows,  # a warm start replaces every weight
                   "best": (max if "acc" in params["monitor"] else min)(monitored) if monitored else float("nan"),
                   "steps": int(keras.ops.convert_to_numpy(model.optimizer.iterations)),
                   "stopped_by_time": bool(budget and budget.stopped_after)}
        if finished:
            keep_finished_model(finished, model, summary)
            shutil.rmtree(backup.dir, ignore_errors=True)
        return {**summary, "model": model, "eval_ds": eval_ds, "train_ds": train_ds, "diagnostics": diagnostics}

    fitted = [fit(member) for member in range(members)]
    first, eval_ds = fitted[0], fitted[0]["eval_ds"]
    model = first["model"] if members == 1 else mean_ensemble([f["model"] for f in fitted])
    ModelRun.write(run_dir, model, first["hist"], warm_start=warm)
    if first["hist"]:
        ctx.tracker.log_artifact(plot_learning_curves(first["hist"], run_dir / "learning_curves.png"), "plots")
    calibration = fit_calibration(model, eval_ds, ctx.log) if params["calibration"] == "temperature" else {}
    chosen = task.fit_on_eval(model, eval_ds, first["train_ds"]) if task.fit_on_eval is not None else {}
    if chosen:
        ctx.log("set on held-out windows: " + ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k}: {v}"
                                                         for k, v in chosen.items()))
    export_serving_model(model, tft_output, task, outputs["model"].uri, calibration.get("calibration_temperature"))
    ctx.log(f"exported the serving model to {outputs['model'].uri}")
    ctx.tracker.log_artifact(outputs["model"].path(), Model.MLFLOW_PATH)
    diagnostics = first["diagnostics"]
    return {"epochs": first["epochs"], "steps": sum(f["steps"] for f in fitted),
            f"best_{params['monitor']}": first["best"], "parameters": int(model.count_params()),
            "warm_started": int(warm is not None), "pretrained_embedding_rows": first["pretrained_rows"],
            "stopped_by_time_budget": int(any(f["stopped_by_time"] for f in fitted)),
            **(_ensemble_metrics(model, fitted, task, params) if members > 1 else {}),
            **calibration, **chosen,
            **(_gradient_flags(diagnostics.history, params, ctx) if diagnostics and diagnostics.history else {})}


def _check_ensemble(task: TrainingTask, params: dict, strategy: str) -> None:
    if not task.averageable:
        raise ConfigError(f"trainer.ensemble={params['ensemble']}: this application's model outputs do not average "
                          "into an ensemble's (its TrainingTask is not averageable); set trainer.ensemble: 1")
    if strategy == "multi_worker":
        raise ConfigError(f"trainer.ensemble={params['ensemble']} trains its members one after another in one "
                          "process; set trainer.ensemble: 1 or a distribution.strategy other than multi_worker")


def _ensemble_metrics(model: Any, fitted: list[dict], task: TrainingTask, params: dict) -> dict[str, float]:
    """Each member's best monitored value, and the ensemble's on the eval split."""
    from .training import fresh, training_loss

    model.compile(loss=training_loss(task, 0.0), metrics=[fresh(m) for m in task.metrics])
    scores = model.evaluate(fitted[0]["eval_ds"], return_dict=True, verbose=0)
    monitor = params["monitor"]
    found = {f"member_{i}_best_{monitor}": f["best"] for i, f in enumerate(fitted)}
    key = monitor[4:] if monitor.startswith("val_") else monitor
    if key in scores:
        found[f"ensemble_{monitor}"] = float(scores[key])
    return {"ensemble_members": len(fitted), **found}


def tuned(params: dict, best: Artifact | None, ctx: ExecutionContext) -> dict:
    """The Trainer's parameters with the Tuner's best values in place: model keys in ``hparams``, the learning
    rate and clipping (one clipping mode: a tuned one turns the others off)."""
    if best is None:
        return params
    chosen = HyperParameters.read(best)
    ctx.log(f"the Tuner's best values: {chosen['model']} {chosen['trainer']}")
    return with_trainer_values({**params, "hparams": {**params["hparams"], **chosen["model"]}}, chosen["trainer"])


def with_trainer_values(params: dict, values: dict) -> dict:
    """``params`` with ``values`` of the learning rate and clipping in place; a clipping mode among ``values``
    turns the other modes off (Keras takes one), as the Tuner's trials and the Trainer both need."""
    params = {**params, **values}
    if any(key in values for key in CLIPPING):
        params.update({key: params[key] if key in values else 0.0 for key in CLIPPING})
    return params


def _gradient_flags(history: list[dict], params: dict, ctx: ExecutionContext) -> dict[str, float]:
    """What the gradient probes saw, as the Trainer's metrics; exploding gradients with clipping off are
    also a warning in the run's summary (``gradients_exploding_unclipped``)."""
    exploding = any(record["exploding"] for record in history)
    unclipped = exploding and not any(params[key] for key in CLIPPING)
    if unclipped:
        ctx.log(f"exploding gradients (global norm up to {max(r['global_norm'] for r in history):.3g}) with "
                "clipping off: set trainer.clipnorm or trainer.global_clipnorm")
    ratios = [r["first_last_ratio"] for r in history if math.isfinite(r["first_last_ratio"])]
    return {"gradients_vanishing": int(history[-1]["vanishing"]), "gradients_exploding": int(exploding),
            "gradients_exploding_unclipped": int(unclipped),
            **({"gradients_first_last_ratio": ratios[-1]} if ratios else {})}


def optimizer(params: dict, learning_rate: float) -> Any:
    """The Keras optimizer that trainer.optimizer names, with the clipping trainer.* asks for (0 = off) and the
    moving average of the weights that trainer.ema_momentum asks for (null = off)."""
    from rnnpipe.models import make_optimizer

    clipping = {key: params[key] or None for key in CLIPPING}
    ema = {"use_ema": True, "ema_momentum": params["ema_momentum"]} if params.get("ema_momentum") else {}
    decay = {} if params.get("weight_decay") is None else {"weight_decay": params["weight_decay"]}
    exclude = check_weight_decay_exclude(params.get("weight_decay_exclude") or [])
    try:
        return make_optimizer(params["optimizer"], learning_rate, **clipping, **ema, **decay,
                              exclude_from_weight_decay=exclude)
    except ValueError as e:
        raise ConfigError(f"trainer: {e}. Set one of trainer.{', trainer.'.join(CLIPPING)} and the others to "
                          "0") from None


def check_weight_decay_exclude(patterns: list, step: str = "Trainer") -> list[str]:
    """trainer.weight_decay_exclude as a list of regular expressions, else a ParamError naming the key."""
    from rnnpipe.models._validation import check_patterns

    try:
        return check_patterns("weight_decay_exclude", patterns)
    except ValueError as e:
        raise ParamError(step, "weight_decay_exclude", f"holds regular expressions matched against variable "
                         f"names, e.g. [bias, embeddings]: {e}") from None


def _check_trained(hist: dict[str, list[float]], restored_epoch: int, epochs: int) -> int:
    """The number of finished epochs, restored ones included; raises unless the weights are worth exporting."""
    finished = restored_epoch + len(next(iter(hist.values()), []))
    if finished < 1:
        raise ConfigError(f"Trainer: no epoch was trained (trainer.epochs={epochs}); nothing is exported. "
                          "Set trainer.epochs to 1 or more")
    losses = hist.get("loss", [])
    if losses and not math.isfinite(losses[-1]):
        raise RnnpipeError(f"Trainer: the training loss became {losses[-1]} in epoch {finished}; nothing is "
                           "exported. Lower trainer.learning_rate or trainer.global_clipnorm, or look for extreme "
                           "values in the data")
    return finished


class Trainer(Component):
    INPUTS = {"transformed_examples": Examples.TYPE, "transform_graph": TransformGraph.TYPE,
              "best_hyperparameters": HyperParameters.TYPE, "embeddings": WordEmbeddings.TYPE}
    # The Tuner's choice, when tuner.enabled; the EmbeddingPretrainer's vectors, when it runs.
    OPTIONAL_INPUTS = frozenset({"best_hyperparameters", "embeddings"})
    OUTPUTS = {"model": Model.TYPE, "model_run": ModelRun.TYPE}
    PARAMETERS = {
        "task": Param(Ref, doc="'module:TASK', a TrainingTask"),
        "hparams": Param(dict, {}, doc="passed to task.build_model"),
        "epochs": Param(int, 5, min=1),
        "max_minutes": Param((float, type(None)), None, min=0, min_exclusive=True,
                             doc="stop after the epoch past which another would overrun this many minutes of "
                                 "training (best weights kept); null = no limit"),
        "batch_size": Param(int, 64, min=1),
        "learning_rate": Param(float, 1e-3, min=0, min_exclusive=True),
        "lr_schedule": Param(str, "constant", choices=LR_SCHEDULES,
                             doc="by epoch: constant; cosine decay to 5% over trainer.epochs; plateau halves it "
                                 "when the monitored metric stalls"),
        "warm_start": Param(str, "none", choices=("none", "champion"),
                            doc="champion: start from the served model's weights when its architecture and "
                                "vocabulary match (else say why and train from scratch)"),
        "warm_start_dir": Param((str, type(None)), None, doc="the served model's folder (serving_dir/<model>)"),
        "warm_start_lr_scale": Param(float, 0.1, doc="the learning rate of a warm start, as a fraction",
                                     min=0, max=1, min_exclusive=True),
        "optimizer": Param(str, "adam", choices=OPTIMIZER_NAMES, doc="a Keras optimizer (models.make_optimizer)"),
        "weight_decay": Param((float, type(None)), None, min=0,
                              doc="shrink every weight by learning_rate * this at each step, apart from the "
                                  "gradient (decoupled, Loshchilov & Hutter, 2019); null = the optimizer's own "
                                  "default (adamw 0.004, the others none); 0 = off"),
        "weight_decay_exclude": Param(list, [], doc="regular expressions: a variable whose name (kernel, "
                                      "recurrent_kernel, bias, embeddings, gamma, beta) contains a match is not "
                                      "decayed, e.g. [bias, embeddings]; [] = every variable"),
        "ema_momentum": Param((float, type(None)), None, min=0, max=1, min_exclusive=True, max_exclusive=True,
                              doc="keep an exponential moving average of the weights, updated at every step with "
                                  "this momentum once warmed up (0.998: about the last 500 steps, from step 4,490; "
                                  "models.warm_up_moving_average); validation, early stopping and the exported "
                                  "model use the average; null = off"),
        "label_smoothing": Param(float, 0.0, min=0, max=1, max_exclusive=True,
                                 doc="train against (1 - s) * one-hot + s / classes (cross-entropy losses only; "
                                     "models.with_label_smoothing); 0 = off"),
        "global_clipnorm": Param(float, 1.0, doc="rescale all gradients together to this global norm; 0 = off",
                                 min=0),
        "clipnorm": Param(float, 0.0, doc="rescale each variable's gradient to this norm; 0 = off", min=0),
        "clipvalue": Param(float, 0.0, doc="clip each gradient element to +-this; 0 = off", min=0),
        "gradient_diagnostics": Param(bool, True, doc="probe dL/dh_t of every recurrent layer on one eval batch "
                                      "before training and after each epoch (models.GradientDiagnostics): MLflow "
                                      "metrics gradients/*, tags and a heatmap per epoch"),
        "diagnostics_every_n_steps": Param((int, type(None)), None, min=1,
                                           doc="also probe every this many training steps; null = per epoch"),
        "calibration": Param(str, "none", choices=("none", "temperature"),
                             doc="temperature: fit one temperature on the eval split (NLL) that the exported model "
                                 "divides its logits by, for calibrated class probabilities; the model must output "
                                 "[batch, classes] probabilities"),
        "monitor": Param(str, "val_loss"),
        "patience": Param(int, 2, doc="early stopping patience in epochs", min=0),
        "bucket_boundaries": Param(list, [10, 20, 40, 80]),
        "shuffle_buffer": Param(int, 10000, min=1),
        "steps_per_epoch": Param((int, type(None)), None, doc="cap per epoch (smoke tests); None = one pass", min=1),
        "seed": Param(int, 42, doc="NumPy's range: 0 to 2**32 - 1", min=0, max=2**32 - 1),
        "ensemble": Param(int, 1, min=1, doc="train this many models, from seeds seed, seed + 1, ..., each with its "
                                            "own early stopping, and serve the mean of their outputs (an averageable "
                                            "task's models only; trainer.max_minutes is shared among them)"),
    }
    executor = staticmethod(run_trainer)

    def check(self) -> None:
        check_weight_decay_exclude(self.params["weight_decay_exclude"], self.id)

    def external_fingerprint(self, inputs: dict[str, Artifact]) -> str:
        # A warm start reads the served model: another one pushed since means another starting point.
        if self.params["warm_start"] != "champion":
            return ""
        served = served_fingerprint(self.params["warm_start_dir"])
        # Named by where it is served, not by a remote version's local copy: the same on every machine.
        return "" if served is None else ":".join(served)
