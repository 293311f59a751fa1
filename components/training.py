"""The Keras side of the Trainer: length-bucketed datasets of transformed examples, and the callbacks that log
each epoch to MLflow and back it up atomically. Apart from the Trainer's contract, so that building a pipeline
does not import TensorFlow or Keras.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from rnnpipe.faults import fault_point

from .task import TrainingTask

log = logging.getLogger("rnnpipe")


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
    # No autotuning: Keras deletes the train and eval iterators every epoch, and deleting one waits for its
    # autotuning thread to wake, which sleeps up to a minute once the iterator is old (TF 2.21): 58 s of every
    # 141-s epoch of the textgen default. The map runs at as many calls as there are cores instead.
    options = tf.data.Options()
    options.autotune.enabled = False
    return ds.prefetch(tf.data.AUTOTUNE).with_options(options)


def train_and_eval_datasets(data: Any, tft_output: Any, task: TrainingTask, params: dict
                            ) -> tuple[tf.data.Dataset, tf.data.Dataset]:
    """The train and eval splits of the transformed examples ``data`` as the trainer-style ``params`` say
    (batch size, bucketing, seed, shuffle buffer; ``steps_per_epoch`` caps the train split, repeated)."""
    from rnnpipe.artifacts import Examples

    args = dict(batch_size=params["batch_size"], bucket_boundaries=params["bucket_boundaries"],
                seed=params["seed"], shuffle_buffer=params["shuffle_buffer"])
    train = make_dataset(Examples.file_pattern(data, "train"), tft_output, task, training=True, **args)
    evaluation = make_dataset(Examples.file_pattern(data, "eval"), tft_output, task, training=False, **args)
    if params["steps_per_epoch"]:
        train = train.repeat().take(params["steps_per_epoch"])
    return train, evaluation


def fresh(obj: Any) -> Any:
    """A new instance of a Keras loss or metric object, created in the strategy's scope (names pass)."""
    return obj if isinstance(obj, str) else type(obj).from_config(obj.get_config())


def training_loss(task: TrainingTask, label_smoothing: float) -> Any:
    """A new instance of the task's loss, with ``trainer.label_smoothing`` of its target distribution; a loss
    that is not a cross-entropy (CTC, MSE) takes none, which is a ConfigError naming the key."""
    from rnnpipe.errors import ConfigError
    from rnnpipe.models import with_label_smoothing

    try:
        return with_label_smoothing(fresh(task.loss), label_smoothing)
    except ValueError as e:
        raise ConfigError(f"trainer.label_smoothing={label_smoothing:g}: this application's model does not train "
                          f"with a cross-entropy ({e}); set trainer.label_smoothing to 0") from None


class MetricsLogger(keras.callbacks.Callback):
    """Logs every epoch's training and validation metrics to the run's tracker as they happen."""

    def __init__(self, tracker: Any, prefix: str = "train") -> None:
        super().__init__()
        self.tracker, self.prefix = tracker, prefix

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        for key, value in (logs or {}).items():
            # Keras names validation metrics val_*: they get their own group in MLflow, val/<metric>.
            name = f"val/{key[4:]}" if key.startswith("val_") else f"{self.prefix}/{key}"
            self.tracker.log_metric(name, float(value), step=epoch)


def warm_start_from(model: keras.Model, champion: Path, tft_output: Any) -> str | None:
    """Loads the weights of the served model in ``champion`` (a SavedModel version folder) into ``model``.
    Returns why it could not (None: done): the vocabularies differ, or the architecture does. A failed attempt
    can leave some weights assigned: build the model again before training it from scratch."""
    ours = Path(tft_output.transform_savedmodel_dir) / "assets"
    changed = sorted(p.name for p in ours.glob("*") if p.is_file() and (
        not (champion / "assets" / p.name).is_file()
        or (champion / "assets" / p.name).read_bytes() != p.read_bytes()))
    if changed:
        return f"the vocabulary changed ({', '.join(changed)})"
    # The export tracks the Keras model as ServingModule.model: its weights are under "model" in the checkpoint.
    try:
        tf.train.Checkpoint(model=model).read(str(champion / "variables" / "variables")) \
            .assert_existing_objects_matched()
    except (AssertionError, ValueError, tf.errors.OpError) as e:
        return f"the architecture differs ({str(e).splitlines()[0][:300]})"
    return None


def assign_embeddings(model: keras.Model, pretrained: tuple[np.ndarray, np.ndarray, dict]) -> tuple[int, str]:
    """Starts the rows of the model's embedding layer that the EmbeddingPretrainer has vectors for (the others
    keep their random start): ``(rows, what was done)``; no rows where the layer's width differs from the vectors'
    (a tuned embedding_dim). ``pretrained`` is ``WordEmbeddings.read``'s ``(ids, vectors, info)``, read once for
    all the models a step builds."""
    from rnnpipe.errors import ConfigError

    ids, vectors, info = pretrained
    try:
        layer = model.get_layer(info["layer"])
    except ValueError:
        raise ConfigError(f"embedding_pretrainer.layer: the model has no layer {info['layer']!r}; name its "
                          "embedding layer, or set embedding_pretrainer.corpus: null") from None
    table = keras.ops.convert_to_numpy(layer.embeddings)
    if table.shape[1] != vectors.shape[1]:
        return 0, (f"pre-trained vectors not used: they are {vectors.shape[1]}-d and the embedding {layer.name!r} "
                   f"is {table.shape[1]}-d; training it from a random start")
    if len(ids) and ids.max() >= table.shape[0]:
        raise ConfigError(f"layer {layer.name!r} has {table.shape[0]} rows, but the pre-trained vectors reach id "
                          f"{ids.max()}: the embedding must have a row per id of the Transform's vocabulary")
    table[ids] = vectors
    layer.embeddings.assign(table)
    return len(ids), (f"embedding {layer.name!r}: {len(ids):,} of {table.shape[0]:,} rows start from vectors "
                      f"pre-trained on {info['corpus']} ({info['corpus_tokens']:,} tokens) and the train split")


def weights_digest(model: keras.Model) -> str:
    """A SHA-256 of the model's weights, in order: equal digests, equal weights."""
    digest = hashlib.sha256()
    for weight in model.weights:
        digest.update(keras.ops.convert_to_numpy(weight).tobytes())
    return digest.hexdigest()


def weight_averaging_callbacks(ema_momentum: float | None) -> list:
    """With trainer.ema_momentum, the optimizer keeps a moving average of the weights (``use_ema``): swap it into
    the model for validation and from each epoch's end to the next epoch's start, so that early stopping judges,
    and restores, the averaged weights. Averaging smooths the noise of the last steps at a high learning rate.
    Place it after the backup callback, which then saves the trained weights with their average beside them."""
    return [keras.callbacks.SwapEMAWeights(swap_on_epoch=True)] if ema_momentum else []


def lr_schedule_callbacks(schedule: str, learning_rate: float, epochs: int, monitor: str,
                          budget: TimeBudget | None = None) -> list:
    """Callbacks that vary the learning rate by epoch. Per epoch, not per step, because a bucketed dataset has no
    known length; and a resumed run (BackupAndRestore) continues the schedule at the restored epoch. With a
    ``budget`` (trainer.max_minutes), cosine decays over the epochs that fit in it when fewer than ``epochs`` do,
    as its epochs so far predict: a run cut by the clock still ends at the low rate, not halfway down."""
    if schedule == "cosine":
        floor = learning_rate * 0.05  # the last epochs still learn a little

        def cosine(epoch: int, _lr: float) -> float:
            last = budget.last_epoch() if budget is not None else None
            horizon = max(min(epochs, last + 1) if last is not None else epochs, 1)
            return floor + (learning_rate - floor) * 0.5 * (1 + math.cos(math.pi * min(epoch / horizon, 1.0)))

        return [keras.callbacks.LearningRateScheduler(cosine)]
    if schedule == "plateau":
        return [keras.callbacks.ReduceLROnPlateau(monitor=monitor, factor=0.5, patience=1,
                                                  min_lr=learning_rate / 64)]
    return []


def gradient_diagnostics(probe: tf.data.Dataset, every_n_steps: int | None, tracker: Any, plot_dir: Path) -> Any:
    """The Trainer's gradient-flow probe on the first batch of ``probe``: dL/dh_t of every recurrent layer before
    training and after each epoch, logged to MLflow (metrics gradients/*, a heatmap per epoch). A model it cannot
    probe is trained all the same, with a warning; None when ``probe`` has no batch."""
    from rnnpipe.models import GradientDiagnostics

    class TrainerDiagnostics(GradientDiagnostics):
        failed: str | None = None

        def diagnose(self, step: int) -> dict[str, Any]:
            if self.failed is None:
                try:
                    return super().diagnose(step)
                except (ValueError, TypeError, tf.errors.OpError) as e:
                    self.failed = str(e).splitlines()[0][:300]
                    log.warning("Trainer: gradient diagnostics off for this run: %s", self.failed)
            return {}

    batch = next(iter(probe.take(1)), None)
    if batch is None:
        log.warning("Trainer: gradient diagnostics off for this run: the probe split has no examples")
        return None
    return TrainerDiagnostics(every_n_steps, None, tuple(batch), logger=tracker, plot_dir=str(plot_dir))


class TimeBudget(keras.callbacks.Callback):
    """Stops ``fit`` after the epoch past which one more (as long as the longest so far) would end beyond
    ``max_minutes`` of fitting, so that a run's length does not depend on the machine's speed. The weights
    kept are EarlyStopping's best, restored when fit ends. ``stopped_after`` is that epoch's number, or None;
    ``last_epoch()`` predicts it from the epochs so far (for the learning-rate schedule)."""

    def __init__(self, max_minutes: float, clock: Callable[[], float] = time.monotonic,
                 agree: Callable[[float], float] = float) -> None:
        # agree: the mean of the workers' values, so that all stop after the same epoch and predict alike.
        super().__init__()
        self.seconds, self.clock, self.agree = 60.0 * max_minutes, clock, agree
        self.stopped_after: int | None = None
        self.durations: list[float] = []
        self.first_epoch: int | None = None

    def on_train_begin(self, logs: dict | None = None) -> None:
        self.started, self.durations, self.stopped_after, self.first_epoch = self.clock(), [], None, None

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.epoch_started = self.clock()
        if self.first_epoch is None:  # a resumed fit starts at the restored epoch, with the whole budget again
            self.first_epoch = epoch

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        now = self.clock()
        self.durations.append(self.agree(now - self.epoch_started))
        if self.agree(float(now - self.started + max(self.durations) > self.seconds)) > 0 \
                and not self.model.stop_training:
            self.model.stop_training, self.stopped_after = True, epoch + 1

    def last_epoch(self) -> int | None:
        """The 0-based number of the epoch after which the budget will stop ``fit`` if the epochs to come take
        as long as those so far on average (the stop itself allows for the longest); None before one ended."""
        if not self.durations:
            return None
        mean = sum(self.durations) / len(self.durations)
        return (self.first_epoch or 0) + max(0, int((self.seconds - max(self.durations)) // mean))


def fit_calibration(model: keras.Model, evaluation: tf.data.Dataset, log: Callable[[str], None]
                    ) -> dict[str, float]:
    """Temperature scaling on the eval split (models.calibration): the fitted temperature and the split's expected
    calibration error and NLL before and after, as the Trainer's metrics; {} when the split is empty. Raises
    ConfigError for a model whose output is not [batch, classes] probabilities of integer labels."""
    from rnnpipe.errors import ConfigError
    from rnnpipe.models.calibration import expected_calibration_error, fit_temperature, negative_log_likelihood, scale

    probabilities, labels = [], []
    for inputs, y in evaluation:
        p = model(inputs, training=False)
        if len(p.shape) != 2 or len(y.shape) != 1 or not y.dtype.is_integer:
            raise ConfigError(f"trainer.calibration: temperature needs a model that outputs [batch, classes] "
                              f"probabilities of integer labels [batch]; got outputs of shape {tuple(p.shape)} "
                              f"and labels of shape {tuple(y.shape)} ({y.dtype.name}). Set trainer.calibration: "
                              "none")
        probabilities.append(keras.ops.convert_to_numpy(p))
        labels.append(y.numpy())
    if not probabilities:
        log("no calibration: the eval split is empty")
        return {}
    p, y = np.concatenate(probabilities), np.concatenate(labels)
    temperature = fit_temperature(p, y)
    calibrated = scale(p, temperature)
    found = {"calibration_temperature": temperature,
             "eval_ece_uncalibrated": expected_calibration_error(p, y),
             "eval_ece": expected_calibration_error(calibrated, y),
             "eval_nll_uncalibrated": negative_log_likelihood(p, y), "eval_nll": negative_log_likelihood(calibrated, y)}
    log(f"calibration: temperature {temperature:.3f} on {len(y)} eval examples; ECE "
        f"{found['eval_ece_uncalibrated']:.4f} -> {found['eval_ece']:.4f}, NLL {found['eval_nll_uncalibrated']:.4f} "
        f"-> {found['eval_nll']:.4f}")
    return found


class BatchFaultPoint(keras.callbacks.Callback):
    """``fault_point(name)`` after every training batch: tests kill one worker of a multi-worker Trainer
    mid-epoch with ``RNNPIPE_FAULT=Trainer.worker1.batch#3``."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        fault_point(self.name)


def agree_across_workers(strategy: tf.distribute.Strategy) -> Callable[[float], float]:
    """A function of one worker's number that returns the mean of all workers' on every worker (an all-reduce
    under MultiWorkerMirroredStrategy; the number itself elsewhere): for a yes/no as 1/0, above 0 when any says
    yes. Decisions that end ``fit`` must be the same on every worker, or those still training wait for the
    others forever; and so must the learning rate, or the replicas' weights drift apart."""
    if not _multi_worker(strategy):
        return float

    def agree(value: float) -> float:
        # In a replica context: Strategy.reduce would take a plain tensor as every replica's value, unreduced.
        def mean() -> tf.Tensor:
            return tf.distribute.get_replica_context().all_reduce("MEAN", tf.constant(float(value)))

        return float(strategy.experimental_local_results(strategy.run(mean))[0])

    return agree


def _multi_worker(strategy: tf.distribute.Strategy) -> bool:
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) and strategy.extended._num_workers > 1


def fix_keras_multi_worker(model: keras.Model) -> None:
    """Works around Keras 3's TF trainer under MultiWorkerMirroredStrategy (keras-team/keras#20585, open in
    Keras 3.15): ``fit`` reduces the first batch's per-worker values to build the model and reduces the
    scalar step outputs along axis 0, and both raise. Here the build takes this worker's first local batch,
    and the step outputs (metrics, synchronized already) are averaged over the workers without an axis.
    A no-op under other strategies. The multi-worker tests of tests/test_sentiment_e2e.py (make test-slow) fail
    if a Keras upgrade breaks this."""
    if not _multi_worker(model.distribute_strategy):
        return
    import types

    from keras.src.backend.tensorflow import trainer as tf_trainer

    def local(value: Any) -> Any:
        if isinstance(value, tf.distribute.DistributedValues):
            return model.distribute_strategy.experimental_local_results(value)[0]
        return value

    def maybe_symbolic_build(self: keras.Model, iterator: Any = None, data_batch: Any = None) -> None:
        if iterator is not None:
            for _, _, it in iterator:
                data_batch = tf.nest.map_structure(local, next(it))
                break
        with self.distribute_strategy.scope():
            self._symbolic_build(data_batch=data_batch)

    model._maybe_symbolic_build = types.MethodType(maybe_symbolic_build, model)
    keras_reduce = getattr(tf_trainer.reduce_per_replica, "__wrapped__", tf_trainer.reduce_per_replica)

    def reduce_per_replica(values: Any, strategy: Any, reduction: str = "auto") -> Any:
        if reduction in ("auto", "mean") and _multi_worker(strategy):
            return tf.nest.map_structure(lambda v: strategy.reduce("MEAN", v, axis=None), values)
        return keras_reduce(values, strategy, reduction)

    reduce_per_replica.__wrapped__ = keras_reduce
    tf_trainer.reduce_per_replica = reduce_per_replica


BACKUP_STATE = "training_metadata.json"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _commit(tmp: Path, final: Path, fault: str) -> None:
    """Flushes ``tmp`` to disk and renames it to ``final``: a reader sees the old file or all of the new one."""
    fd = os.open(tmp, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    fault_point(fault, final)
    os.replace(tmp, final)


def _load_all_or_nothing(model: keras.Model, weights: Path) -> str | None:
    """Loads ``weights`` (a ``save_weights`` file) into the model and its optimizer's state; returns why not (None:
    done). A load that fails halfway puts every variable back, so the model is never a mix of two states."""
    optimizer = model.optimizer
    if optimizer is not None and not optimizer.built:
        optimizer.build(model.trainable_variables)  # so that its state is restored too
    variables = [*model.variables, *(optimizer.variables if optimizer is not None else [])]
    saved = [v.numpy() for v in variables]
    try:
        model.load_weights(str(weights))
    except Exception as e:  # h5py and Keras raise OSError, ValueError, KeyError... for an unloadable file
        for variable, value in zip(variables, saved, strict=True):
            variable.assign(value)
        return f"{weights} does not load ({type(e).__name__}: {e})"
    return None


def _save_committed(model: keras.Model, weights: Path, record: Path, fields: dict, fault: str) -> None:
    """Writes the model's weights, then ``record`` (``fields`` and the weights' sha256), each to a temporary file
    renamed in: a kill leaves the previous record, and what it names, intact. Fault points: ``<fault>`` (weights
    written, not yet renamed), ``<fault>.commit`` (weights renamed, record not yet)."""
    tmp_weights, tmp_record = weights.with_name(f".tmp-{weights.name}"), record.with_name(f".tmp-{record.name}")
    model.save_weights(str(tmp_weights), overwrite=True)
    fields = {**fields, "sha256": _sha256(tmp_weights)}
    _commit(tmp_weights, weights, fault)
    tmp_record.write_text(json.dumps(fields))
    _commit(tmp_record, record, f"{fault}.commit")


def _load_committed(model: keras.Model, weights: Path, digest: str, record: Path) -> str | None:
    """Loads ``weights`` as ``record`` committed them (``digest``: their sha256); returns why not (None: done)."""
    if not weights.is_file():
        return f"{weights}, named by {record}, is missing"
    if _sha256(weights) != digest:
        return f"{weights} is damaged (truncated or overwritten: not the sha256 {record.name} recorded)"
    return _load_all_or_nothing(model, weights)


FINISHED_RECORD = "fit.json"


def keep_finished_model(folder: Path, model: keras.Model, summary: dict) -> None:
    """Keeps a trained model's weights and what its fit reported (JSON-able) in ``folder``, so that a run killed
    later in the same step (an ensemble's next member) loads it instead of training it again. The record,
    written last and naming the weights' sha256, commits both. Fault points: ``Trainer.member`` and
    ``Trainer.member.commit``."""
    folder.mkdir(parents=True, exist_ok=True)
    _save_committed(model, folder / "model.weights.h5", folder / FINISHED_RECORD, summary, "Trainer.member")


def restore_finished_model(folder: Path, model: keras.Model, warn: Callable[[str], None] = log.warning
                           ) -> dict | None:
    """Loads what ``keep_finished_model`` kept in ``folder`` into ``model`` (built and compiled like the one
    kept) and returns the summary; None when nothing was committed there. A record that is unreadable, or
    weights that are missing, altered or unloadable, are named in a warning and the model is left as it was."""
    record_path = folder / FINISHED_RECORD
    if not record_path.is_file():
        return None
    try:
        record = json.loads(record_path.read_text())
        digest = str(record.pop("sha256"))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        problem = f"{record_path} is unreadable ({type(e).__name__}: {e})"
    else:
        problem = _load_committed(model, folder / "model.weights.h5", digest, record_path)
    if problem:
        warn(f"Trainer: not using the model trained before the interruption: {problem}; training it again")
        return None
    return record


class AtomicBackupAndRestore(keras.callbacks.BackupAndRestore):
    """Keras' BackupAndRestore made safe against a kill at any moment and against a damaged backup.

    Keras overwrites ``latest.weights.h5`` in place, so a kill while it writes leaves a file that every
    restart fails to open. Here an epoch's weights are written to a temporary file renamed to
    ``epoch-NNNN.weights.h5``; then ``training_metadata.json`` (the epoch, that file's name and sha256),
    written the same way, commits the epoch. A kill anywhere leaves the last committed pair intact, and
    files the metadata does not name are removed on the next start. A backup whose metadata is unreadable
    or whose weights are missing, altered or unloadable is named in a warning and discarded: training
    then starts from the first epoch. Fault points: ``Trainer.backup`` (weights written, not yet renamed),
    ``Trainer.backup.commit`` (weights renamed, metadata not yet).
    """

    def __init__(self, backup_dir: str | Path, warn: Callable[[str], None] = log.warning, *,
                 write: bool = True, delete_at_end: bool = True) -> None:
        # write=False: restore only (a multi-worker Trainer's other workers read the chief's backup).
        # delete_at_end=False: the caller deletes the backup once what replaces it is committed.
        super().__init__(str(backup_dir), save_freq="epoch", delete_checkpoint=write and delete_at_end)
        self.dir, self.warn, self.write = Path(backup_dir), warn, write
        self.restored_epoch = 0  # epochs finished before this fit, as restored from the backup
        self._committed: str | None = None  # the weights file the metadata names

    def on_train_begin(self, logs: dict | None = None) -> None:
        state_path = self.dir / BACKUP_STATE
        if state_path.exists():
            problem = self._restore(state_path)
            if problem:
                self.warn(f"Trainer: discarding the epoch backup: {problem}; training starts from the first epoch")
                if self.write:
                    state_path.unlink()
        if self.write:
            self._remove_uncommitted()

    def _restore(self, state_path: Path) -> str | None:
        try:
            state = json.loads(state_path.read_text())
            epoch, name, digest = int(state["epoch"]), str(state["weights"]), str(state["sha256"])
        except (OSError, ValueError, KeyError, TypeError) as e:
            return f"{state_path} is unreadable ({type(e).__name__}: {e})"
        problem = _load_committed(self.model, self.dir / name, digest, state_path)
        if problem:
            return problem
        self.model._initial_epoch = self.restored_epoch = epoch
        self._committed = name
        return None

    def _save_model(self) -> None:
        if not self.write:
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        name = f"epoch-{self._current_epoch:04d}.weights.h5"
        try:
            _save_committed(self.model, self.dir / name, self.dir / BACKUP_STATE,
                            {"epoch": self._current_epoch, "batch": self._last_batch_seen, "weights": name},
                            "Trainer.backup")
            self._committed = name
        finally:
            self._remove_uncommitted()

    def _remove_uncommitted(self) -> None:
        """Removes temporary files and weights the metadata does not name (an interrupted or superseded write)."""
        if self.dir.is_dir():
            for path in self.dir.iterdir():
                if path.name not in (BACKUP_STATE, self._committed):
                    path.unlink(missing_ok=True)
