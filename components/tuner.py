"""Tuner: KerasTuner's random, Bayesian or Hyperband search over a search space of the application's model keys
(and the learning rate and clipping), on the transformed examples, before the Trainer.

Each trial builds the application's model with ``task.build_model`` from the model section with the trial's
values in place, trains it on the train split and scores ``objective`` on the eval split; every trial is an MLflow
run nested under the pipeline's run (params, per-epoch metrics, the final objective). The output is the best
trial's values, which the Trainer takes in place of the config's. KerasTuner's oracle lives in the execution's
scratch folder, so a killed search resumes from its finished trials; an unchanged re-run is a cache hit.

Search space: ``{key: [v1, v2, ...]}`` (a choice) or ``{key: {min: a, max: b, step: s, sampling: log}}`` (an
int or float range, by the type of ``min``); keys are the model section's, or ``learning_rate``,
``global_clipnorm``, ``clipnorm``, ``clipvalue`` (the trainer's).
"""

from __future__ import annotations

import math
import time
from typing import Any

from rnnpipe.artifacts import Examples, HyperParameters, TransformGraph, WordEmbeddings
from rnnpipe.context import ExecutionContext
from rnnpipe.dsl import Artifact, Component, Param, Ref
from rnnpipe.errors import ConfigError
from rnnpipe.faults import fault_point

from .trainer import CLIPPING, LR_SCHEDULES, OPTIMIZER_NAMES, check_weight_decay_exclude

TRAINER_KEYS = ("learning_rate", "label_smoothing", *CLIPPING)
ALGORITHMS = ("random", "bayesian", "hyperband")


def check_search_space(space: dict, hparams: dict, objective: str = "val_loss") -> None:
    """Names the first key or range a search cannot use, before anything trains."""
    if not space:
        raise ConfigError("tuner.search_space is empty: give at least one key, e.g. {units: [32, 64, 128]}")
    if "label_smoothing" in space and "loss" in objective:
        # Smoothing raises the loss it is measured by, so a loss objective would always choose the least.
        raise ConfigError(f"tuner.search_space.label_smoothing: trials with more smoothing have a higher "
                          f"{objective} by construction; set tuner.objective to a metric such as val_accuracy")
    for key, spec in space.items():
        if key not in hparams and key not in TRAINER_KEYS:
            raise ConfigError(f"tuner.search_space.{key}: not a key of the model section {sorted(hparams)} nor one "
                              f"of {', '.join(TRAINER_KEYS)}")
        if isinstance(spec, list):
            if not spec:
                raise ConfigError(f"tuner.search_space.{key}: an empty list of choices")
        elif not (isinstance(spec, dict) and {"min", "max"} <= set(spec) and spec["min"] < spec["max"]
                  and set(spec) <= {"min", "max", "step", "sampling"}):
            raise ConfigError(f"tuner.search_space.{key}: expected a list of choices or {{min, max[, step, "
                              f"sampling]}} with min < max. Received: {spec!r}")


def _value(hp: Any, key: str, spec: Any) -> Any:
    """The trial's value of ``key`` from KerasTuner's HyperParameters ``hp``."""
    if isinstance(spec, list):
        if all(isinstance(v, (int, float, str, bool)) for v in spec):
            return hp.Choice(key, spec)
        # Lists and mappings (conv strides, SpecAugment settings): choose by index, report the value.
        return spec[hp.Choice(key, list(range(len(spec))))]
    sampling = spec.get("sampling", "linear")
    if isinstance(spec["min"], int) and isinstance(spec["max"], int):
        return hp.Int(key, spec["min"], spec["max"], step=spec.get("step", 1), sampling=sampling)
    return hp.Float(key, float(spec["min"]), float(spec["max"]), step=spec.get("step"), sampling=sampling)


def run_tuner(inputs: dict[str, Artifact], outputs: dict[str, Artifact], params: dict, ctx: ExecutionContext) -> dict:
    import keras
    import keras_tuner as kt

    from .trainer import optimizer, with_trainer_values
    from .training import (
        assign_embeddings,
        fresh,
        lr_schedule_callbacks,
        train_and_eval_datasets,
        training_loss,
        weight_averaging_callbacks,
    )

    task = Ref(params["task"]).resolve()
    space, hparams = params["search_space"], params["hparams"]
    check_search_space(space, hparams, params["objective"])
    tft_output = TransformGraph.load(inputs["transform_graph"])
    train_ds, eval_ds = train_and_eval_datasets(inputs["transformed_examples"], tft_output, task, params)
    objective = params["objective"]
    direction = params["objective_direction"]
    if direction == "auto":
        direction = "min" if "loss" in objective else "max"

    def values(hp: Any) -> dict[str, Any]:
        return {key: _value(hp, key, spec) for key, spec in space.items()}

    pretrained = WordEmbeddings.read(inputs["embeddings"]) if inputs.get("embeddings") is not None else None

    def build(hp: Any) -> keras.Model:
        chosen = values(hp)
        model = task.build_model({**hparams, **{k: v for k, v in chosen.items() if k not in TRAINER_KEYS}},
                                 tft_output)
        if pretrained is not None:  # as the Trainer starts: a trial of another width starts at random
            assign_embeddings(model, pretrained)
        trainer = with_trainer_values(params, {k: v for k, v in chosen.items() if k in TRAINER_KEYS})
        model.compile(optimizer=optimizer(trainer, trainer["learning_rate"]),
                      loss=training_loss(task, trainer["label_smoothing"]),
                      metrics=[fresh(m) for m in task.metrics])
        return model

    started = time.monotonic()
    budget = 60.0 * params["max_minutes"] if params["max_minutes"] else math.inf

    class TrialLogger(keras.callbacks.Callback):
        def __init__(self, run: Any) -> None:
            super().__init__()
            self.run = run

        def __deepcopy__(self, memo: dict) -> TrialLogger:
            return self  # KerasTuner copies a trial's callbacks; this one already belongs to the trial

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            for key, value in (logs or {}).items():
                self.run.log_metric(f"val/{key[4:]}" if key.startswith("val_") else f"train/{key}", value, epoch)

    algorithm = {"random": kt.RandomSearch, "bayesian": kt.BayesianOptimization, "hyperband": kt.Hyperband}

    class HyperModel(kt.HyperModel):
        def build(self, hp: Any) -> keras.Model:
            return build(hp)

    class Search(algorithm[params["algorithm"]]):
        def pre_create_trial(self) -> None:
            fault_point("Tuner.trial")  # tests: a kill between trials (the oracle has saved the finished ones)
            # The time budget: no new trial once it is spent (the oracle stops at max_trials).
            if time.monotonic() - started > budget and self.oracle.max_trials:
                ctx.log(f"tuner.max_minutes={params['max_minutes']:g} spent after {len(self.oracle.trials)} trials")
                self.oracle.max_trials = len(self.oracle.trials)

        def _configure_tensorboard_dir(self, callbacks: list, trial: Any, execution: int = 0) -> None:
            pass  # no TensorBoard callback here, and no tensorboard package to import

        def run_trial(self, trial: Any, *args: Any, **kwargs: Any) -> Any:
            run = ctx.tracker.child(f"trial-{trial.trial_id}", {"rnnpipe.tuner_trial": trial.trial_id})
            chosen = values(trial.hyperparameters)
            run.log_params({f"hp.{k}": v for k, v in chosen.items()})
            # A trial trains as the Trainer will (its learning-rate schedule, judged on the weights' average):
            # a learning rate that is best held constant need not be best decayed.
            learning_rate = chosen.get("learning_rate", params["learning_rate"])
            kwargs["callbacks"] = [
                *kwargs.get("callbacks", []),
                *weight_averaging_callbacks(params["ema_momentum"]),
                *lr_schedule_callbacks(params["lr_schedule"], learning_rate, params["epochs"], objective),
                TrialLogger(run),
            ]
            try:
                result = super().run_trial(trial, *args, **kwargs)
            except BaseException:
                run.finish("FAILED")
                raise
            history = result[-1] if isinstance(result, list) else result
            scores = history.history.get(objective, []) if hasattr(history, "history") else []
            if scores:
                run.log_metric(f"objective/{objective}", (min if direction == "min" else max)(scores))
            run.finish("FINISHED")
            return result

    # overwrite=False: a search killed before resumes from the trials its oracle folder records.
    options = dict(objective=kt.Objective(objective, direction=direction), seed=params["seed"],
                   directory=str(ctx.scratch_dir), project_name="oracle", overwrite=False)
    if params["algorithm"] == "hyperband":
        tuner = Search(HyperModel(), max_epochs=params["epochs"], **options)
        tuner.oracle.max_trials = params["max_trials"]  # Hyperband's own bound is its brackets
    else:
        tuner = Search(HyperModel(), max_trials=params["max_trials"], **options)
    tuner.search(train_ds, validation_data=eval_ds, epochs=params["epochs"], verbose=0)

    trials = [{"trial": t.trial_id, "status": str(t.status), "score": t.score,
               "values": values(t.hyperparameters)} for t in tuner.oracle.trials.values()]
    finished = [t for t in trials if t["score"] is not None and math.isfinite(t["score"])]
    if not finished:
        raise ConfigError(f"Tuner: no trial finished with a finite {objective}; nothing to choose from. Widen "
                          "tuner.max_minutes or tuner.max_trials, or check the search space")
    best = tuner.oracle.get_best_trials(1)[0]
    chosen = values(best.hyperparameters)
    HyperParameters.write(outputs["best_hyperparameters"], {
        "model": {k: v for k, v in chosen.items() if k not in TRAINER_KEYS},
        "trainer": {k: v for k, v in chosen.items() if k in TRAINER_KEYS},
        "objective": {"name": objective, "direction": direction, "best": best.score}, "trials": trials})
    ctx.log(f"best of {len(finished)} trials: {objective} {best.score:.4f} with {chosen}")
    for key, value in chosen.items():
        ctx.tracker.set_tag(f"rnnpipe.tuned.{key}", value)
    return {"trials": len(finished), f"best_{objective}": float(best.score), "seconds": time.monotonic() - started}


class Tuner(Component):
    INPUTS = {"transformed_examples": Examples.TYPE, "transform_graph": TransformGraph.TYPE,
              "embeddings": WordEmbeddings.TYPE}
    OPTIONAL_INPUTS = frozenset({"embeddings"})  # the EmbeddingPretrainer's vectors, when it runs
    OUTPUTS = {"best_hyperparameters": HyperParameters.TYPE}
    PARAMETERS = {
        "task": Param(Ref, doc="'module:TASK', a TrainingTask"),
        "hparams": Param(dict, {}, doc="the model section: each trial's values replace these"),
        "search_space": Param(dict, {}, doc="key -> [choices] or {min, max, step, sampling}"),
        "algorithm": Param(str, "random", choices=ALGORITHMS, doc="KerasTuner's RandomSearch, BayesianOptimization "
                                                                   "or Hyperband"),
        "max_trials": Param(int, 10, min=1),
        "max_minutes": Param((float, type(None)), None, min=0, min_exclusive=True,
                             doc="no new trial after this many minutes; null = no limit"),
        "epochs": Param(int, 2, min=1, doc="per trial (Hyperband: the most a trial trains)"),
        "objective": Param(str, "val_loss", doc="a Keras history key, e.g. val_loss or val_accuracy"),
        "objective_direction": Param(str, "auto", choices=("auto", "min", "max"),
                                     doc="auto: min for a loss, else max"),
        "batch_size": Param(int, 64, min=1),
        "learning_rate": Param(float, 1e-3, min=0, min_exclusive=True),
        "optimizer": Param(str, "adam", choices=OPTIMIZER_NAMES),
        "weight_decay": Param((float, type(None)), None, min=0, doc="as trainer.weight_decay"),
        "weight_decay_exclude": Param(list, [], doc="as trainer.weight_decay_exclude"),
        "lr_schedule": Param(str, "constant", choices=LR_SCHEDULES, doc="as trainer.lr_schedule, over tuner.epochs"),
        "ema_momentum": Param((float, type(None)), None, min=0, max=1, min_exclusive=True, max_exclusive=True,
                              doc="as trainer.ema_momentum: trials are judged on the weights' moving average"),
        "label_smoothing": Param(float, 0.0, min=0, max=1, max_exclusive=True),
        "global_clipnorm": Param(float, 1.0, min=0),
        "clipnorm": Param(float, 0.0, min=0),
        "clipvalue": Param(float, 0.0, min=0),
        "bucket_boundaries": Param(list, [10, 20, 40, 80]),
        "shuffle_buffer": Param(int, 10000, min=1),
        "steps_per_epoch": Param((int, type(None)), None, min=1),
        "seed": Param(int, 42, min=0, max=2**32 - 1),
    }
    executor = staticmethod(run_tuner)

    def check(self) -> None:
        check_weight_decay_exclude(self.params["weight_decay_exclude"], self.id)
