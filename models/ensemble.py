"""An ensemble of trained models as one Keras model: the mean of their outputs."""

from __future__ import annotations

from collections.abc import Sequence

import keras

__all__ = ["mean_ensemble"]


def mean_ensemble(members: Sequence[keras.Model], name: str = "ensemble") -> keras.Model:
    """One functional model whose output is the mean of the members' outputs.

    The members must take the same inputs (the first member's input names,
    shapes and dtypes become the ensemble's) and give outputs of one shape,
    such as class probabilities: the mean of the members' probabilities is
    the ensemble's (Lakshminarayanan et al., 2017). Each member keeps its own
    weights, nested as the sub-model `member_<i>`, so the ensemble saves and
    loads like any functional model.

    Args:
        members: two or more built Keras models.
        name: the ensemble model's name.

    Returns:
        A `keras.Model`.

    Example:

    >>> import numpy as np
    >>> from rnnpipe.models import build_sequence_classifier, mean_ensemble
    >>> members = [build_sequence_classifier(20, 2, embedding_dim=4, units=4) for _ in range(2)]
    >>> x = np.array([[3, 5, 0]])
    >>> mean = mean_ensemble(members)(x).numpy()
    >>> bool(np.allclose(mean, (members[0](x).numpy() + members[1](x).numpy()) / 2))
    True
    """
    members = list(members)
    if len(members) < 2 or not all(isinstance(m, keras.Model) for m in members):
        raise ValueError(f"Argument `members` must be two or more Keras models. Received: {members!r}")
    shapes = {tuple(m.output.shape) if not isinstance(m.output, (list, tuple, dict)) else None for m in members}
    if len(shapes) != 1 or None in shapes:
        raise ValueError(f"Expected members with one output of one shape each, received output shapes "
                         f"{[getattr(m.output, 'shape', type(m.output).__name__) for m in members]}.")
    inputs = keras.tree.map_structure(
        lambda t: keras.Input(shape=t.shape[1:], dtype=t.dtype, name=t.name), members[0].input)
    outputs = [keras.Model(m.input, m.output, name=f"member_{i}")(inputs) for i, m in enumerate(members)]
    return keras.Model(inputs, keras.layers.Average(name="mean")(outputs), name=name)
