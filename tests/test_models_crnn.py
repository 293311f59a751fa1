"""rnnpipe.models.crnn: masked frames, padding invariance, augmentation only in training, serialization."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from rnnpipe.models import CTCLoss
from rnnpipe.models.crnn import BlankPaddedFrames, FrameMask, LineAugmentation, build_crnn


def tiny(**kwargs: object) -> keras.Model:
    return build_crnn(5, height=16, conv_filters=(4, 8), width_pooling=(2, 1), units=6, num_layers=2, **kwargs)


def test_a_line_padded_into_a_wider_batch_gets_the_same_frames_and_loss_as_alone() -> None:
    model = tiny(augment_shift=0.1, augment_noise=0.1)
    rng = np.random.default_rng(0)
    line = rng.normal(size=(1, 16, 14, 1)).astype("float32")
    wide = rng.normal(size=(1, 16, 30, 1)).astype("float32")
    alone = model({"image": line, "width": np.array([14])}).numpy()
    padded = np.concatenate([np.pad(line, [[0, 0], [0, 0], [0, 16], [0, 0]]), wide])
    batched = model({"image": padded, "width": np.array([14, 30])}).numpy()
    np.testing.assert_allclose(batched[0, :7], alone[0], atol=1e-5)
    assert (batched[0, 7:, -1] == 1.0).all()  # padded frames: certainly blank
    labels = np.array([[1, 2, 0]])
    loss = CTCLoss(pad_id=0, reduction=None)
    np.testing.assert_allclose(loss(labels, batched[:1]).numpy(), loss(labels, alone).numpy(), rtol=1e-4)


def test_augmentation_varies_training_batches_only() -> None:
    x = np.random.default_rng(1).normal(size=(4, 16, 10, 1)).astype("float32")
    layer = LineAugmentation(0.2, 0.1)
    np.testing.assert_array_equal(layer(x, training=False).numpy(), x)
    assert not np.allclose(layer(x, training=True).numpy(), x)


def test_model_round_trips_through_keras_saving(tmp_path: pytest.TempPathFactory) -> None:
    model = tiny(augment_shift=0.05)
    path = tmp_path / "crnn.keras"
    model.save(path)
    again = keras.saving.load_model(path, custom_objects={"CTCLoss": CTCLoss})
    inputs = {"image": np.ones((2, 16, 12, 1), "float32"), "width": np.array([12, 5])}
    np.testing.assert_allclose(again(inputs).numpy(), model(inputs).numpy(), atol=1e-6)
    assert FrameMask.from_config(FrameMask(4).get_config()).width_stride == 4
    assert BlankPaddedFrames.from_config(BlankPaddedFrames().get_config()).supports_masking


@pytest.mark.parametrize("kwargs, message", [
    ({"width_pooling": (2, 3)}, "width_pooling"),
    ({"width_pooling": (2,)}, "one entry of 1 or 2 per conv block"),
    ({"augment_noise": 1.5}, "Received: noise=1.5"),
    ({"conv_filters": ()}, "conv_filters"),
])
def test_bad_arguments_say_what_was_expected_and_received(kwargs: dict, message: str) -> None:
    args = {"height": 16, "conv_filters": (4, 8), "width_pooling": (2, 1), **kwargs}
    with pytest.raises(ValueError, match=message):
        build_crnn(5, **args)


def test_height_must_survive_the_poolings() -> None:
    with pytest.raises(ValueError, match="Argument `height` must be >= 8"):
        build_crnn(5, height=4, conv_filters=(4, 4, 4), width_pooling=(1, 1, 1))
