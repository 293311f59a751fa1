"""Gradient diagnostics for recurrent models: vanishing and exploding gradients, seen while training.

`GradientDiagnostics` is a Keras callback. Before training, at the end of every epoch and optionally every
`every_n_steps` training steps, it computes on one fixed probe batch the global gradient norm, the gradient
norm of each layer, and for each recurrent layer (each direction of a bidirectional one, each layer of a
stack, inside functional and subclassed models alike) the norm of dLoss/dh_t at every timestep t. That last
quantity is the *total* derivative of the loss with respect to the hidden state h_t, through the outputs of
every later step as well as through h_t's own output; its decay over t (Pascanu et al., 2013) says how far
back in time the layer can still learn.

The gradient with respect to the layer's output *tensor* is not that: for a model that reads only the last
output, it is zero at every t < T. So during the probe each recurrent layer's call is replaced by a replay of
its cell, step by step, that adds a zero perturbation e_t to each h_t; the gradient of the loss with respect
to e is exactly dL/dh_t. The replay supports the cells of `keras.layers.SimpleRNN/LSTM/GRU/RNN` and of
`rnnpipe.models.SimpleRNN/LSTM/GRU`, masks, initial states and `go_backwards`; the real call runs beside it
and the largest difference is kept as `replay_error`.
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

from ._validation import check_bool, check_positive_float, check_positive_int

__all__ = ["GradientDiagnostics", "recurrent_layers"]

_log = logging.getLogger(__name__)
_LOGGER_METHODS = ("log_metric", "set_tag", "log_artifact")


def _replay(layer: keras.layers.Layer, sequences: tf.Tensor, mask: Any, initial_state: Any,
            perturbation: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, list[tf.Tensor]]:
    """`layer` recomputed step by step with its cell, `perturbation[:, t]` added to h_t: the outputs
    `[batch, time, units]` in processing order (as the layer returns them), the last output and the final states.

    Masked steps follow `keras.layers.RNN`: states keep their value, the output repeats the previous one
    (zeros with `zero_output_for_mask`).
    """
    cell = layer.cell
    batch = tf.shape(sequences)[0]
    if initial_state is None:
        states = [tf.zeros((batch, size), sequences.dtype) for size in tf.nest.flatten(cell.state_size)]
    else:
        states = [tf.cast(s, sequences.dtype) for s in tf.nest.flatten(initial_state)]
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
    return tf.transpose(result[3].stack(), [1, 0, 2]), result[1], list(result[2])


def recurrent_layers(model: keras.Model) -> list[keras.layers.Layer]:
    """The layers of `model` that run a cell over a sequence, nested ones included (each direction of a
    `Bidirectional`, the layers of a subclassed model), in the order Keras tracks them."""
    return [layer for layer in model._flatten_layers(include_self=False, recursive=True)
            if hasattr(layer, "cell") and hasattr(layer, "return_sequences") and hasattr(layer, "go_backwards")]


class _Interception:
    """While active, each diagnosed layer's first call runs `_replay` with a zero perturbation of h_t that
    `tape` watches, so that the gradient of the loss with respect to the perturbation is dL/dh_t; the real
    call runs beside it, to check the replay (`errors`)."""

    def __init__(self, layers: list[keras.layers.Layer], tape: tf.GradientTape) -> None:
        self.layers, self.tape = layers, tape
        self.perturbations: dict[str, tf.Tensor] = {}
        self.errors: dict[str, tf.Tensor] = {}

    def _patched(self, layer: keras.layers.Layer) -> Any:
        real_call = type(layer).call.__get__(layer)

        def call(sequences: Any, *args: Any, **kwargs: Any) -> Any:
            real = real_call(sequences, *args, **kwargs)
            if layer.name in self.perturbations:  # a layer called again (a shared layer): diagnose the first call
                return real
            sequences = tf.convert_to_tensor(sequences)
            units = tf.nest.flatten(layer.cell.state_size)[0]
            perturbation = tf.zeros(tf.concat([tf.shape(sequences)[:2], [units]], 0), sequences.dtype)
            self.tape.watch(perturbation)
            outputs, last, states = _replay(layer, sequences, kwargs.get("mask"),
                                            kwargs.get("initial_state", args[0] if args else None), perturbation)
            replayed = outputs if layer.return_sequences else last
            result = (replayed, *states) if layer.return_state else replayed
            self.perturbations[layer.name] = perturbation
            self.errors[layer.name] = tf.reduce_max(
                [tf.reduce_max(tf.abs(a - b)) for a, b in zip(tf.nest.flatten(result), tf.nest.flatten(real),
                                                                strict=True)])
            return result

        return call

    def __enter__(self) -> _Interception:
        for layer in self.layers:
            object.__setattr__(layer, "call", self._patched(layer))  # Layer.__call__ reads self.call
        return self

    def __exit__(self, *exc: Any) -> None:
        for layer in self.layers:
            object.__delattr__(layer, "call")


def _first_last_ratio(norms: np.ndarray) -> float:
    """||dL/dh_first|| / ||dL/dh_last|| over the steps that reach the loss at all (padding does not)."""
    reached = np.flatnonzero(norms > 0)
    if reached.size == 0:
        return math.nan  # no gradient at all is not "vanishing"
    first, last = float(norms[reached[0]]), float(norms[reached[-1]])
    return first / last if last > 0 else math.inf


@keras.saving.register_keras_serializable(package="rnnpipe")
class GradientDiagnostics(keras.callbacks.Callback):
    """Track gradient norms of a recurrent model during `fit` and flag vanishing or exploding gradients.

    Once before training, at the end of every epoch and, with `every_n_steps`, every that many training steps,
    on the fixed `probe_data` batch and in inference mode (no dropout, so rows are comparable), the callback
    computes the global gradient norm, the gradient norm of each top-level layer, and ||dL/dh_t|| for every
    timestep t of each diagnosed recurrent layer, summed over the batch (see the module docstring). Each probe
    appends a record to `history`; `timestep_grad_norms` stacks one layer's into a `[probes, time]` matrix.

    A layer is flagged `vanishing` when ||dL/dh_first|| / ||dL/dh_last|| < `vanishing_ratio_threshold` (in
    processing order, over the steps the gradient reaches at all: padding does not count), a probe when any
    layer is; a probe is flagged `exploding` when the global norm exceeds `exploding_norm_threshold` or is not
    finite. Flags are warned about through the `logging` module.

    With a `logger` (anything with `log_metric(key, value, step)`, `set_tag(key, value)` and
    `log_artifact(path, artifact_path)`, e.g. the `mlflow` module inside an active run) every probe logs the
    metrics `gradients/global_norm`, `gradients/first_last_ratio` (the smallest over layers),
    `gradients/vanishing`, `gradients/exploding`, `gradients/layer/<name>` and, per recurrent layer,
    `gradients/first_last_ratio/<name>`; every epoch logs a heatmap of log10 ||dL/dh_t|| over (t, step), one
    panel per recurrent layer, as `gradient_diagnostics/epoch_<n>.png` (written to `plot_dir`, else to a
    temporary folder); the end of training sets the tags `gradients.layers`, `gradients.vanishing` ("true" if
    the last probe was flagged: at initialization most gated cells vanish over long spans, then learn to carry)
    and `gradients.exploding` ("true" if any probe was flagged).

    Args:
        every_n_steps: also probe every this many training steps (optimizer iterations), >= 1; None = only
            before training and at each epoch's end.
        layer_name: the recurrent layer to diagnose; None = every recurrent layer of the model.
        probe_data: `(x, y)`, one batch in the form `fit` takes (the model must be compiled with a loss).
        vanishing_ratio_threshold: flag `vanishing` below this first/last ratio, > 0.
        exploding_norm_threshold: flag `exploding` above this global gradient norm, > 0.
        logger: optional experiment logger, see above.
        plot_dir: optional folder for the heatmaps (kept there).
        compile_probe: trace the probe as a `tf.function` (seconds once, then fast: for long runs); False runs
            it eagerly (for a few probes of a small model, e.g. in a notebook).

    Example:

    >>> import numpy as np, keras
    >>> from rnnpipe.models import GRU, GradientDiagnostics, SimpleRNN
    >>> inputs = keras.Input((20, 3))
    >>> h = SimpleRNN(8, return_sequences=True, name="rnn")(inputs)
    >>> h = keras.layers.Bidirectional(GRU(4, name="gru"), name="bi")(h)
    >>> model = keras.Model(inputs, keras.layers.Dense(1)(h))
    >>> model.compile("sgd", "mse")
    >>> x, y = np.ones((4, 20, 3), "float32"), np.zeros((4, 1), "float32")
    >>> diagnostics = GradientDiagnostics(1, None, (x, y), 1e-3, 1e3)
    >>> _ = model.fit(x, y, epochs=2, verbose=0, callbacks=[diagnostics])
    >>> diagnostics.layer_names, diagnostics.timestep_grad_norms.shape
    (['rnn', 'forward_gru', 'backward_gru'], (3, 20))
    """

    def __init__(
        self,
        every_n_steps: int | None,
        layer_name: str | None,
        probe_data: tuple[Any, Any],
        vanishing_ratio_threshold: float = 1e-3,
        exploding_norm_threshold: float = 1e3,
        logger: Any = None,
        plot_dir: str | None = None,
        compile_probe: bool = True,
    ) -> None:
        super().__init__()
        self.every_n_steps = None if every_n_steps is None else check_positive_int("every_n_steps", every_n_steps)
        if layer_name is not None and (not isinstance(layer_name, str) or not layer_name):
            raise ValueError(f"Argument `layer_name` must be a non-empty string or None. "
                             f"Received: layer_name={layer_name!r}")
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
        self.plot_dir = plot_dir
        self.compile_probe = check_bool("compile_probe", compile_probe)
        self.history: list[dict[str, Any]] = []
        self._layers: list[keras.layers.Layer] | None = None
        self._layers_model_id: int | None = None
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
            "plot_dir": self.plot_dir,
            "compile_probe": self.compile_probe,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> GradientDiagnostics:
        return cls(**config)

    @property
    def layer_names(self) -> list[str]:
        """The diagnosed recurrent layers, in the order of each record's `layers` (known after a probe)."""
        return list(self.history[-1]["layers"]) if self.history else []

    def timestep_norms_of(self, name: str) -> np.ndarray:
        """`[probes, time]` matrix of ||dL/dh_t|| of layer `name`, one row per probe, for a heatmap."""
        rows = [record["layers"][name]["timestep_norms"] for record in self.history if name in record["layers"]]
        return np.stack(rows) if rows else np.zeros((0, 0), "float32")

    @property
    def timestep_grad_norms(self) -> np.ndarray:
        """`timestep_norms_of` the first diagnosed layer."""
        return self.timestep_norms_of(self.layer_names[0]) if self.history else np.zeros((0, 0), "float32")

    @property
    def probe_steps(self) -> list[int]:
        """Training step of each probe."""
        return [record["step"] for record in self.history]

    # -- the probe ----------------------------------------------------------

    def _diagnosed_layers(self) -> list[keras.layers.Layer]:
        model = self.model
        if model is None:
            raise ValueError("GradientDiagnostics needs a model: pass it to fit() or call set_model() first.")
        if self._layers is not None and self._layers_model_id == id(model):
            return self._layers
        if self.layer_name is None:
            layers = recurrent_layers(model)
            if not layers:
                raise ValueError("Expected a model with at least one recurrent layer (a layer with a `cell`). "
                                 f"Received: {type(model).__name__} {model.name!r}")
        else:
            named = {layer.name: layer for layer in model._flatten_layers(include_self=False, recursive=True)}
            if self.layer_name not in named:
                raise ValueError(f"Argument `layer_name` must name a layer of the model, one of {sorted(named)}. "
                                 f"Received: layer_name={self.layer_name!r}")
            layer = named[self.layer_name]
            if layer not in recurrent_layers(model):
                raise ValueError("Expected `layer_name` to name a recurrent layer with a `cell`. "
                                 f"Received: {type(layer).__name__} {layer.name!r}")
            layers = [layer]
        stateful = [layer.name for layer in layers if getattr(layer, "stateful", False)]
        if stateful:
            raise ValueError(f"Expected recurrent layers with stateful=False. Received: {stateful}")
        self._layers, self._layers_model_id = layers, id(model)
        return layers

    def _probe(self, x: Any, y: Any) -> dict[str, Any]:
        if not self.compile_probe:
            return self._probe_graph(x, y)
        # Traced once per model: for long sequences, replaying the cells eagerly costs seconds per probe.
        if self._probe_fn is None or self._probe_model_id != id(self.model):
            self._probe_fn = tf.function(self._probe_graph, reduce_retracing=True)
            self._probe_model_id = id(self.model)
        return self._probe_fn(x, y)

    def _probe_graph(self, x: Any, y: Any) -> dict[str, Any]:
        model = self.model
        variables = model.trainable_variables
        with tf.GradientTape() as tape:
            with _Interception(self._diagnosed_layers(), tape) as interception:
                y_pred = model(x, training=False)
            loss = model.compute_loss(x=x, y=y, y_pred=y_pred, training=False)
        names = list(interception.perturbations)
        if not names:
            raise ValueError("None of the diagnosed recurrent layers ran when the model was called on the probe "
                             "batch.")
        grads = tape.gradient(loss, [*(interception.perturbations[n] for n in names), *variables])
        timestep = {name: g if g is not None else tf.zeros_like(interception.perturbations[name])
                    for name, g in zip(names, grads[: len(names)], strict=True)}
        layer_of = {id(v): owner.name for owner in model.layers for v in owner.trainable_variables}
        by_layer: dict[str, list[tf.Tensor]] = {}
        for variable, grad in zip(variables, grads[len(names):], strict=True):
            if grad is not None:
                by_layer.setdefault(layer_of.get(id(variable), "(other)"), []).append(grad)
        return {
            "loss": loss,
            "global_norm": tf.linalg.global_norm([g for g in grads[len(names):] if g is not None]),
            "layer_norms": {name: tf.linalg.global_norm(g) for name, g in by_layer.items()},
            "timestep_norms": {n: tf.sqrt(tf.reduce_sum(tf.square(g), axis=[0, 2])) for n, g in timestep.items()},
            "replay_error": tf.reduce_max(tf.stack(list(interception.errors.values()))),
        }

    def diagnose(self, step: int) -> dict[str, Any]:
        """Run one probe now, record it as training step `step`, warn and log; returns the record."""
        x, y = (keras.tree.map_structure(tf.convert_to_tensor, part) for part in self.probe_data)
        raw = self._probe(x, y)
        layers = {}
        for name, norms in raw["timestep_norms"].items():
            norms = norms.numpy().astype("float64")
            ratio = _first_last_ratio(norms)
            layers[name] = {"timestep_norms": norms, "first_last_ratio": ratio,
                            "vanishing": bool(ratio < self.vanishing_ratio_threshold)}
        global_norm = float(raw["global_norm"])
        ratios = [layer["first_last_ratio"] for layer in layers.values() if not math.isnan(layer["first_last_ratio"])]
        record = {
            "step": int(step),
            "loss": float(raw["loss"]),
            "global_norm": global_norm,
            "layer_norms": {name: float(value) for name, value in raw["layer_norms"].items()},
            "layers": layers,
            "timestep_norms": next(iter(layers.values()))["timestep_norms"],
            "first_last_ratio": min(ratios) if ratios else math.nan,
            "vanishing": any(layer["vanishing"] for layer in layers.values()),
            "exploding": bool(not math.isfinite(global_norm) or global_norm > self.exploding_norm_threshold),
            "replay_error": float(raw["replay_error"]),
        }
        self.history.append(record)
        for name, layer in layers.items():
            if layer["vanishing"]:
                _log.warning(
                    "Vanishing gradients in %r at step %d: ||dL/dh_first|| / ||dL/dh_last|| = %.3g < %.3g",
                    name, step, layer["first_last_ratio"], self.vanishing_ratio_threshold,
                )
        if record["exploding"]:
            _log.warning(
                "Exploding gradients at step %d: global gradient norm %.3g (threshold %.3g)",
                step, global_norm, self.exploding_norm_threshold,
            )
        if self.logger is not None:
            metrics = {
                "gradients/global_norm": global_norm,
                "gradients/first_last_ratio": record["first_last_ratio"],
                "gradients/vanishing": float(record["vanishing"]),
                "gradients/exploding": float(record["exploding"]),
                **{f"gradients/layer/{name}": value for name, value in record["layer_norms"].items()},
                **{f"gradients/first_last_ratio/{name}": layer["first_last_ratio"] for name, layer in layers.items()},
            }
            for key, value in metrics.items():
                self.logger.log_metric(key, value, step=int(step))
        return record

    # -- callback hooks -------------------------------------------------------

    def _optimizer_step(self) -> int:
        optimizer = getattr(self.model, "optimizer", None)
        return int(optimizer.iterations.numpy()) if optimizer is not None else 0

    def _diagnose_once(self, step: int) -> None:
        if step != self._last_probe_step:
            self.diagnose(step)
            self._last_probe_step = step

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self._diagnose_once(self._optimizer_step())

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        # Optimizer iterations, not the batch index: it keeps counting across epochs, fits and
        # steps_per_execution > 1.
        step = self._optimizer_step()
        if self.every_n_steps is not None and step - (self._last_probe_step or 0) >= self.every_n_steps:
            self._diagnose_once(step)

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._diagnose_once(self._optimizer_step())
        if (self.logger is None and self.plot_dir is None) or not self.history:
            return
        name = f"epoch_{epoch + 1:03d}.png"
        if self.plot_dir is not None:
            os.makedirs(self.plot_dir, exist_ok=True)
            path = self.plot_heatmap(os.path.join(self.plot_dir, name))
            if self.logger is not None:
                self.logger.log_artifact(path, "gradient_diagnostics")
            return
        with tempfile.TemporaryDirectory(prefix="rnnpipe-gradients-") as folder:
            self.logger.log_artifact(self.plot_heatmap(os.path.join(folder, name)), "gradient_diagnostics")

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        if self.logger is None or not self.history:
            return
        self.logger.set_tag("gradients.layers", ",".join(self.layer_names))
        # Vanishing as the trained model stands (at initialization most gated cells vanish over long spans and
        # then learn to carry); exploding if it ever happened.
        self.logger.set_tag("gradients.vanishing", str(self.history[-1]["vanishing"]).lower())
        self.logger.set_tag("gradients.exploding", str(any(r["exploding"] for r in self.history)).lower())

    def plot_heatmap(self, path: str) -> str:
        """Write a PNG of log10 ||dL/dh_t|| over (timestep, training step), one panel per diagnosed layer, to
        `path`; returns `path`."""
        # Lazy: only this method needs matplotlib. Figure + Agg canvas touches no global pyplot state.
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        names = self.layer_names
        figure = Figure(figsize=(8, 1.2 + 2.6 * max(len(names), 1)))
        FigureCanvasAgg(figure)
        for index, name in enumerate(names):
            norms, steps = self.timestep_norms_of(name), self.probe_steps
            finite = norms[np.isfinite(norms) & (norms > 0)]
            floor = finite.min() if finite.size else 1.0
            # Zeros (masked steps) sit at the floor rather than at -inf; the colour scale is log because
            # vanishing gradients span many orders of magnitude.
            image = np.log10(np.where(np.isfinite(norms) & (norms > 0), norms, floor))
            axes = figure.add_subplot(len(names), 1, index + 1)
            shown = axes.imshow(image, aspect="auto", origin="lower", interpolation="nearest",
                                extent=(0.5, norms.shape[1] + 0.5, -0.5, len(steps) - 0.5))
            ticks = np.linspace(0, len(steps) - 1, num=min(len(steps), 6)).round().astype(int)
            axes.set_yticks(ticks, [str(steps[i]) for i in ticks])
            axes.set_ylabel("training step")
            axes.set_title(f"log10 ||dL/dh_t|| of {name!r} (t in processing order)", fontsize=10)
            figure.colorbar(shown, ax=axes)
        if names:
            axes.set_xlabel("timestep t")
        figure.tight_layout()
        figure.savefig(path, format="png", dpi=90)
        return path
