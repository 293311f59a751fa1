"""Gradient diagnostics for recurrent models: vanishing and exploding gradients, seen while training.

`GradientDiagnostics` is a Keras callback. Every `every_n_steps` training steps it computes, on one fixed
probe batch, the global gradient norm, the gradient norm of each layer, and for one chosen recurrent layer the
norm of dLoss/dh_t at every timestep t. That last quantity is the *total* derivative of the loss with respect
to the hidden state h_t, i.e. through the outputs of every later step as well as through h_t's own output;
it is the one whose decay over t (Pascanu et al., 2013) says how far back in time the layer can still learn.

The gradient with respect to the layer's output *tensor* is not that: for a model that reads only the last
output, it is zero at every t < T. So the callback (1) runs the model once, taking the gradient of the loss
with respect to the layer's output sequence (the direct part, g_s = dL/dy_s, whatever the layers after it
are), then (2) replays the layer's cell step by step on the same inputs, adding a zero perturbation e_t to
each h_t, and takes the gradient of sum_s <y_s, g_s> with respect to e: by the chain rule that is exactly
dL/dh_t. The replay supports the cells of `keras.layers.SimpleRNN/LSTM/GRU/RNN` and of
`rnnpipe.models.SimpleRNN/LSTM/GRU`, masks and `go_backwards`; it checks itself against the real layer
(`replay_error` in each record).
"""

from __future__ import annotations

import logging
import math
import os
import tempfile
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from ._validation import check_positive_float, check_positive_int

__all__ = ["GradientDiagnostics"]

_log = logging.getLogger(__name__)
_LOGGER_METHODS = ("log_metric", "set_tag", "log_artifact")


def _replay(layer: keras.layers.Layer, sequences: tf.Tensor, mask: tf.Tensor | None, perturbation: tf.Tensor) -> Any:
    """Outputs `[batch, time, units]` of `layer` recomputed with its cell, `perturbation[:, t]` added to h_t.

    Masked steps follow `keras.layers.RNN`: states keep their value, the output repeats the previous one
    (zeros with `zero_output_for_mask`). Outputs come in processing order, as the layer returns them.
    """
    cell = layer.cell
    batch = tf.shape(sequences)[0]
    states = [tf.zeros((batch, size), sequences.dtype) for size in tf.nest.flatten(cell.state_size)]
    inputs = tf.transpose(sequences, [1, 0, 2])
    keep = None if mask is None else tf.transpose(tf.cast(mask, tf.bool), [1, 0])
    if layer.go_backwards:
        inputs = tf.reverse(inputs, [0])
        keep = None if keep is None else tf.reverse(keep, [0])
    steps = tf.shape(inputs)[0]
    inputs_ta = tf.TensorArray(inputs.dtype, size=steps).unstack(inputs)
    perturb_ta = tf.TensorArray(perturbation.dtype, size=steps).unstack(tf.transpose(perturbation, [1, 0, 2]))
    keep_ta = None if keep is None else tf.TensorArray(tf.bool, size=steps).unstack(keep)
    zeros = tf.zeros_like(perturbation[:, 0])
    zero_fill = bool(getattr(layer, "zero_output_for_mask", False))

    def body(t: tf.Tensor, prev_output: tf.Tensor, prev_states: tuple, outputs_ta: tf.TensorArray) -> tuple:
        output, new_states = cell(inputs_ta.read(t), list(prev_states), training=False)
        # In every Keras-style cell the first state *is* the output h_t, so perturbing both perturbs h_t.
        output = output + perturb_ta.read(t)
        new_states = [output, *tf.nest.flatten(new_states)[1:]]
        if keep_ta is not None:
            valid = keep_ta.read(t)[:, None]
            output = tf.where(valid, output, zeros if zero_fill else prev_output)
            new_states = [tf.where(valid, new, old) for new, old in zip(new_states, prev_states, strict=True)]
        return t + 1, output, tuple(new_states), outputs_ta.write(t, output)

    result = tf.while_loop(
        lambda t, *_: t < steps,
        body,
        (tf.constant(0), zeros, tuple(states), tf.TensorArray(perturbation.dtype, size=steps)),
    )
    return tf.transpose(result[3].stack(), [1, 0, 2])


@keras.saving.register_keras_serializable(package="rnnpipe")
class GradientDiagnostics(keras.callbacks.Callback):
    """Track gradient norms of a recurrent model during `fit` and flag vanishing or exploding gradients.

    Every `every_n_steps` training steps (and once before the first), on the fixed `probe_data` batch and in
    inference mode (no dropout, so rows are comparable), the callback computes the global gradient norm, the
    gradient norm of each top-level layer, and ||dL/dh_t|| for every timestep t of the layer `layer_name`,
    summed over the batch (see the module docstring for how h_t's total derivative is obtained). Each probe
    appends a record to `history`; `timestep_grad_norms` stacks them into a `[probes, time]` matrix.

    A probe is flagged `vanishing` when ||dL/dh_1|| / ||dL/dh_T|| < `vanishing_ratio_threshold` (first vs
    last timestep in processing order: the probe batch should have no padding at either end), and
    `exploding` when the global norm exceeds `exploding_norm_threshold` or is not finite. Flags are warned
    about through the `logging` module.

    With a `logger` (anything with `log_metric(key, value, step)`, `set_tag(key, value)` and
    `log_artifact(path, artifact_path)`, e.g. the `mlflow` module inside an active run) every probe logs
    metrics `gradients/global_norm`, `gradients/first_last_ratio`, `gradients/vanishing`,
    `gradients/exploding` and `gradients/layer/<name>`; at the end of training it sets the tags
    `gradients.layer`, `gradients.vanishing` and `gradients.exploding` ("true" if any probe was flagged) and
    logs a heatmap of log10 ||dL/dh_t|| over (t, step) as `gradient_diagnostics/<layer>_grad_norms.png`.

    Requirements: the model is a compiled functional or Sequential model (its own loss is used); the layer
    has a `cell`, `return_sequences=True`, `return_state=False`, is called once, on one sequence (a mask is
    fine, an `initial_state` is not), and is not wrapped (for `Bidirectional`, diagnose a one-way copy).

    Args:
        every_n_steps: probe every this many training steps (optimizer iterations), >= 1.
        layer_name: name of the recurrent layer whose dL/dh_t is tracked.
        probe_data: `(x, y)`, one batch in the form `fit` takes.
        vanishing_ratio_threshold: flag `vanishing` below this first/last ratio, > 0.
        exploding_norm_threshold: flag `exploding` above this global gradient norm, > 0.
        logger: optional experiment logger, see above.

    Example:

    >>> import numpy as np, keras
    >>> from rnnpipe.models import GradientDiagnostics, SimpleRNN
    >>> inputs = keras.Input((20, 3))
    >>> h = SimpleRNN(8, return_sequences=True, name="rnn")(inputs)
    >>> model = keras.Model(inputs, keras.layers.Dense(1)(h[:, -1]))
    >>> model.compile("sgd", "mse")
    >>> x, y = np.ones((4, 20, 3), "float32"), np.zeros((4, 1), "float32")
    >>> diagnostics = GradientDiagnostics(1, "rnn", (x, y), 1e-3, 1e3)
    >>> _ = model.fit(x, y, epochs=2, verbose=0, callbacks=[diagnostics])
    >>> diagnostics.timestep_grad_norms.shape
    (3, 20)
    """

    def __init__(
        self,
        every_n_steps: int,
        layer_name: str,
        probe_data: tuple[Any, Any],
        vanishing_ratio_threshold: float = 1e-3,
        exploding_norm_threshold: float = 1e3,
        logger: Any = None,
    ) -> None:
        super().__init__()
        self.every_n_steps = check_positive_int("every_n_steps", every_n_steps)
        if not isinstance(layer_name, str) or not layer_name:
            raise ValueError(f"Argument `layer_name` must be a non-empty string. Received: layer_name={layer_name!r}")
        self.layer_name = layer_name
        if not isinstance(probe_data, (tuple, list)) or len(probe_data) != 2:
            received = f"{type(probe_data).__name__} of length {len(probe_data)}" if isinstance(
                probe_data, (tuple, list)) else type(probe_data).__name__
            raise ValueError(f"Argument `probe_data` must be a pair (x, y). Received: {received}")
        self.probe_data = tuple(probe_data)
        self.vanishing_ratio_threshold = check_positive_float("vanishing_ratio_threshold", vanishing_ratio_threshold)
        self.exploding_norm_threshold = check_positive_float("exploding_norm_threshold", exploding_norm_threshold)
        if logger is not None:
            missing = [m for m in _LOGGER_METHODS if not callable(getattr(logger, m, None))]
            if missing:
                raise ValueError(
                    f"Argument `logger` must have methods {', '.join(_LOGGER_METHODS)}. "
                    f"Received: {type(logger).__name__} without {', '.join(missing)}"
                )
        self.logger = logger
        self.history: list[dict[str, Any]] = []
        self._probe_fn: Any = None
        self._probe_model_id: int | None = None
        self._last_probe_step: int | None = None

    def get_config(self) -> dict[str, Any]:
        # Arrays and the logger are returned as objects: callbacks are cloned in process, never saved.
        return {
            "every_n_steps": self.every_n_steps,
            "layer_name": self.layer_name,
            "probe_data": self.probe_data,
            "vanishing_ratio_threshold": self.vanishing_ratio_threshold,
            "exploding_norm_threshold": self.exploding_norm_threshold,
            "logger": self.logger,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> GradientDiagnostics:
        return cls(**config)

    @property
    def timestep_grad_norms(self) -> np.ndarray:
        """`[probes, time]` matrix of ||dL/dh_t||, one row per probe, for a heatmap."""
        if not self.history:
            return np.zeros((0, 0), "float32")
        return np.stack([record["timestep_norms"] for record in self.history])

    @property
    def probe_steps(self) -> list[int]:
        """Training step of each row of `timestep_grad_norms`."""
        return [record["step"] for record in self.history]

    # -- the probe ----------------------------------------------------------

    def _build_probe(self) -> None:
        model = self.model
        if model is None:
            raise ValueError("GradientDiagnostics needs a model: pass it to fit() or call set_model() first.")
        try:
            layer = model.get_layer(self.layer_name)
        except ValueError:
            names = [layer.name for layer in model.layers]
            raise ValueError(
                f"Argument `layer_name` must name a layer of the model, one of {names}. "
                f"Received: layer_name={self.layer_name!r}"
            ) from None
        if not hasattr(layer, "cell") or not getattr(layer, "return_sequences", False):
            raise ValueError(
                "Expected `layer_name` to name a recurrent layer with a `cell` and return_sequences=True. "
                f"Received: {type(layer).__name__} {layer.name!r}"
                + ("" if hasattr(layer, "cell") else " (no `cell`)")
            )
        if getattr(layer, "return_state", False) or getattr(layer, "stateful", False):
            raise ValueError(
                f"Expected a layer with return_state=False and stateful=False. Received: {layer.name!r} with "
                f"return_state={layer.return_state}, stateful={getattr(layer, 'stateful', False)}"
            )
        try:
            model_input, layer_inputs, layer_output = model.input, keras.tree.flatten(layer.input), layer.output
        except (AttributeError, ValueError) as error:
            raise ValueError(
                "Expected a functional or Sequential model whose diagnosed layer is called exactly once. "
                f"Received: {type(model).__name__} ({error})"
            ) from None
        # A Keras mask travels into the layer's node as an extra bool input; anything else is an initial state.
        sequences = [t for t in layer_inputs if len(t.shape) == 3]
        masks = [t for t in layer_inputs if t.dtype == "bool" and len(t.shape) == 2]
        if len(sequences) != 1 or len(sequences) + len(masks) != len(layer_inputs):
            raise ValueError(
                "Expected the diagnosed layer to be called on one sequence (and optionally a mask). "
                f"Received inputs {[tuple(t.shape) for t in layer_inputs]}"
            )
        flat_outputs = keras.tree.flatten(model.output)
        probe_model = keras.Model(model_input, [sequences[0], *masks, layer_output, *flat_outputs])
        layer_of = {id(v): owner.name for owner in model.layers for v in owner.trainable_variables}
        has_mask = bool(masks)

        @tf.function(reduce_retracing=True)
        def probe(x: Any, y: Any) -> dict[str, Any]:
            variables = model.trainable_variables
            with tf.GradientTape() as tape:
                results = probe_model(x, training=False)
                seq, mask = results[0], (results[1] if has_mask else None)
                hidden = results[2 if has_mask else 1]
                y_pred = keras.tree.pack_sequence_as(model.output, results[3 if has_mask else 2 :])
                loss = model.compute_loss(x=x, y=y, y_pred=y_pred, training=False)
            direct, *grads = tape.gradient(loss, [hidden, *variables])
            if direct is None:
                direct = tf.zeros_like(hidden)
            perturbation = tf.zeros_like(hidden)
            with tf.GradientTape() as replay_tape:
                replay_tape.watch(perturbation)
                replayed = _replay(layer, tf.stop_gradient(seq), mask, perturbation)
                pulled_back = tf.reduce_sum(replayed * tf.stop_gradient(direct))
            total = replay_tape.gradient(pulled_back, perturbation)
            by_layer: dict[str, list[tf.Tensor]] = {}
            for variable, grad in zip(variables, grads, strict=True):
                if grad is not None:
                    by_layer.setdefault(layer_of.get(id(variable), "(other)"), []).append(grad)
            return {
                "loss": loss,
                "global_norm": tf.linalg.global_norm([g for g in grads if g is not None]),
                "layer_norms": {name: tf.linalg.global_norm(g) for name, g in by_layer.items()},
                "timestep_norms": tf.sqrt(tf.reduce_sum(tf.square(total), axis=[0, 2])),
                "replay_error": tf.reduce_max(tf.abs(replayed - hidden)),
            }

        self._probe_fn, self._probe_model_id = probe, id(model)

    def diagnose(self, step: int) -> dict[str, Any]:
        """Run one probe now, record it as training step `step`, warn and log; returns the record."""
        if self._probe_fn is None or self._probe_model_id != id(self.model):
            self._build_probe()
        x, y = (keras.tree.map_structure(tf.convert_to_tensor, part) for part in self.probe_data)
        raw = self._probe_fn(x, y)
        norms = raw["timestep_norms"].numpy().astype("float64")
        first, last = float(norms[0]), float(norms[-1])
        # 0/0 gives NaN, which never compares below the threshold: no gradient at all is not "vanishing".
        ratio = first / last if last > 0 else (math.inf if first > 0 else math.nan)
        global_norm = float(raw["global_norm"])
        record = {
            "step": int(step),
            "loss": float(raw["loss"]),
            "global_norm": global_norm,
            "layer_norms": {name: float(value) for name, value in raw["layer_norms"].items()},
            "timestep_norms": norms,
            "first_last_ratio": ratio,
            "vanishing": bool(ratio < self.vanishing_ratio_threshold),
            "exploding": bool(not math.isfinite(global_norm) or global_norm > self.exploding_norm_threshold),
            "replay_error": float(raw["replay_error"]),
        }
        self.history.append(record)
        if record["vanishing"]:
            _log.warning(
                "Vanishing gradients in %r at step %d: ||dL/dh_1|| / ||dL/dh_T|| = %.3g < %.3g",
                self.layer_name, step, ratio, self.vanishing_ratio_threshold,
            )
        if record["exploding"]:
            _log.warning(
                "Exploding gradients at step %d: global gradient norm %.3g (threshold %.3g)",
                step, global_norm, self.exploding_norm_threshold,
            )
        if self.logger is not None:
            metrics = {
                "gradients/global_norm": global_norm,
                "gradients/first_last_ratio": ratio,
                "gradients/vanishing": float(record["vanishing"]),
                "gradients/exploding": float(record["exploding"]),
                **{f"gradients/layer/{name}": value for name, value in record["layer_norms"].items()},
            }
            for key, value in metrics.items():
                self.logger.log_metric(key, value, step=int(step))
        return record

    # -- callback hooks -------------------------------------------------------

    def _optimizer_step(self) -> int:
        optimizer = getattr(self.model, "optimizer", None)
        return int(optimizer.iterations.numpy()) if optimizer is not None else 0

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        step = self._optimizer_step()
        self.diagnose(step)
        self._last_probe_step = step

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        # Optimizer iterations, not the batch index: it keeps counting across epochs, fits and
        # steps_per_execution > 1.
        step = self._optimizer_step()
        if self._last_probe_step is None or step - self._last_probe_step >= self.every_n_steps:
            self.diagnose(step)
            self._last_probe_step = step

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        if self.logger is None or not self.history:
            return
        self.logger.set_tag("gradients.layer", self.layer_name)
        self.logger.set_tag("gradients.vanishing", str(any(r["vanishing"] for r in self.history)).lower())
        self.logger.set_tag("gradients.exploding", str(any(r["exploding"] for r in self.history)).lower())
        with tempfile.TemporaryDirectory(prefix="rnnpipe-gradients-") as folder:
            path = os.path.join(folder, f"{self.layer_name}_grad_norms.png")
            self.plot_heatmap(path)
            self.logger.log_artifact(path, "gradient_diagnostics")

    def plot_heatmap(self, path: str) -> str:
        """Write a PNG heatmap of log10 ||dL/dh_t|| over (timestep, training step) to `path`; returns `path`."""
        # Lazy: only this method needs matplotlib. Figure + Agg canvas touches no global pyplot state.
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        norms = self.timestep_grad_norms
        finite = norms[np.isfinite(norms) & (norms > 0)]
        floor = finite.min() if finite.size else 1.0
        # Zeros (masked steps) sit at the floor rather than at -inf; the colour scale is log because
        # vanishing gradients span many orders of magnitude.
        image = np.log10(np.where(np.isfinite(norms) & (norms > 0), norms, floor))
        figure = Figure(figsize=(8, 4.5))
        FigureCanvasAgg(figure)
        axes = figure.add_subplot()
        steps = self.probe_steps
        shown = axes.imshow(
            image,
            aspect="auto",
            origin="lower",
            interpolation="nearest",
            extent=(0.5, norms.shape[1] + 0.5, -0.5, len(steps) - 0.5),
        )
        ticks = np.linspace(0, len(steps) - 1, num=min(len(steps), 8)).round().astype(int)
        axes.set_yticks(ticks, [str(steps[i]) for i in ticks])
        axes.set_xlabel("timestep t")
        axes.set_ylabel("training step")
        axes.set_title(f"log10 ||dL/dh_t|| of {self.layer_name!r} on the probe batch")
        figure.colorbar(shown, ax=axes)
        figure.savefig(path, format="png", dpi=100, bbox_inches="tight")
        return path
