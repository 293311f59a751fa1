"""The Trainer's epoch backup (components/trainer.py AtomicBackupAndRestore): written atomically, resumed
from the last committed epoch, and a damaged backup is named in a warning and discarded, never fatal."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import keras
import numpy as np
import pytest

from rnnpipe import faults
from rnnpipe.components.trainer import _check_trained
from rnnpipe.components.training import BACKUP_STATE, AtomicBackupAndRestore, _sha256
from rnnpipe.errors import ConfigError, RnnpipeError

X = np.random.default_rng(0).normal(size=(32, 4)).astype("float32")
Y = X.sum(axis=1, keepdims=True)


class Interrupted(Exception):
    pass


class StopAt(keras.callbacks.Callback):
    """Interrupts fit() at the beginning of an epoch, like a kill after the previous epoch's backup."""

    def __init__(self, epoch: int) -> None:
        super().__init__()
        self.epoch = epoch

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        if epoch == self.epoch:
            raise Interrupted


def tiny_model() -> keras.Model:
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3), keras.layers.Dense(1)])
    model.compile(keras.optimizers.Adam(0.01), loss="mse")
    return model


def fit(backup_dir: Path, epochs: int = 3, stop_at: int | None = None, warnings: list[str] | None = None
        ) -> tuple[keras.Model, AtomicBackupAndRestore, keras.callbacks.History | None]:
    model = tiny_model()
    backup = AtomicBackupAndRestore(backup_dir, warn=(warnings if warnings is not None else []).append)
    callbacks = [backup] if stop_at is None else [backup, StopAt(stop_at)]
    try:
        history = model.fit(X, Y, batch_size=16, epochs=epochs, callbacks=callbacks, verbose=0)
    except Interrupted:
        history = None
    return model, backup, history


@pytest.fixture(scope="module")
def untouched(tmp_path_factory: pytest.TempPathFactory) -> list[np.ndarray]:
    """The weights of a 3-epoch fit that starts from scratch: what a discarded backup must lead to."""
    model, _, _ = fit(tmp_path_factory.mktemp("untouched") / "backup")
    return model.get_weights()


def committed(backup_dir: Path) -> dict:
    return json.loads((backup_dir / BACKUP_STATE).read_text())


def test_resumes_from_the_last_committed_epoch_and_cleans_up(tmp_path: Path) -> None:
    backup_dir = tmp_path / "backup"
    interrupted, _, _ = fit(backup_dir, stop_at=2)
    state = committed(backup_dir)
    assert state["epoch"] == 2 and sorted(p.name for p in backup_dir.iterdir()) == [state["weights"], BACKUP_STATE]
    model = tiny_model()
    model.load_weights(backup_dir / state["weights"])  # the backup is a complete weights file
    np.testing.assert_array_equal(model.get_weights()[0], interrupted.get_weights()[0])

    warnings: list[str] = []
    _, backup, history = fit(backup_dir, warnings=warnings)
    assert backup.restored_epoch == 2 and history.epoch == [2] and not warnings
    assert not backup_dir.exists()  # a finished fit removes its backup


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_a_damaged_weights_file_is_named_discarded_and_training_starts_over(tmp_path: Path, damage: str,
                                                                            untouched: list[np.ndarray]) -> None:
    backup_dir = tmp_path / "backup"
    fit(backup_dir, stop_at=2)
    weights = backup_dir / committed(backup_dir)["weights"]
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2] if damage == "truncate" else b"\x89HDF\r\n" + bytes(200))

    warnings: list[str] = []
    model, backup, history = fit(backup_dir, warnings=warnings)
    assert len(warnings) == 1 and str(weights) in warnings[0] and "damaged" in warnings[0]
    assert backup.restored_epoch == 0 and history.epoch == [0, 1, 2]  # trained from the start
    np.testing.assert_allclose(model.get_weights()[0], untouched[0], rtol=1e-5)


def test_unreadable_metadata_or_unloadable_weights_are_discarded(tmp_path: Path,
                                                                 untouched: list[np.ndarray]) -> None:
    backup_dir = tmp_path / "backup"
    fit(backup_dir, stop_at=1)
    (backup_dir / BACKUP_STATE).write_text('{"epoch": 1, "weig')  # as a kill mid-write would have left it
    warnings: list[str] = []
    _, backup, history = fit(backup_dir, warnings=warnings, stop_at=2)
    assert str(backup_dir / BACKUP_STATE) in warnings[0] and backup.restored_epoch == 0

    # Weights of another model, with a matching checksum: Keras loads the first layer, then fails on the second;
    # the restored initial weights must not keep that first layer.
    other = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3), keras.layers.Dense(2)])
    state = committed(backup_dir)
    other.save_weights(backup_dir / state["weights"])
    state["sha256"] = _sha256(backup_dir / state["weights"])
    (backup_dir / BACKUP_STATE).write_text(json.dumps(state))
    warnings.clear()
    model, backup, history = fit(backup_dir, warnings=warnings)
    assert "does not load" in warnings[0] and str(backup_dir / state["weights"]) in warnings[0]
    assert backup.restored_epoch == 0 and history.epoch == [0, 1, 2]
    np.testing.assert_allclose(model.get_weights()[0], untouched[0], rtol=1e-5)  # no half-loaded weights


@pytest.mark.parametrize("point", ["Trainer.backup", "Trainer.backup.commit"])
def test_a_failed_backup_write_keeps_the_previous_epoch_consistent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                    point: str) -> None:
    backup_dir = tmp_path / "backup"
    monkeypatch.setenv(faults.ENV, f"{point}#2=ENOSPC")  # the second epoch's backup runs out of space
    monkeypatch.setattr(faults, "_reached", Counter())
    with pytest.raises(OSError, match="No space left"):
        fit(backup_dir)
    state = committed(backup_dir)
    assert state["epoch"] == 1  # the metadata never claims the epoch whose weights were not committed
    assert sorted(p.name for p in backup_dir.iterdir()) == [state["weights"], BACKUP_STATE]  # no partial files

    monkeypatch.delenv(faults.ENV)
    warnings: list[str] = []
    _, backup, history = fit(backup_dir, warnings=warnings)
    assert backup.restored_epoch == 1 and history.epoch == [1, 2] and not warnings


def test_a_model_with_no_trained_epoch_or_a_nan_loss_is_not_exported() -> None:
    with pytest.raises(ConfigError, match=r"trainer\.epochs=0"):
        _check_trained({}, restored_epoch=0, epochs=0)
    assert _check_trained({}, restored_epoch=3, epochs=3) == 3  # every epoch finished before a kill
    with pytest.raises(RnnpipeError, match=r"loss became nan in epoch 2.*trainer\.learning_rate"):
        _check_trained({"loss": [1.0, float("nan")]}, restored_epoch=0, epochs=5)


def test_a_kept_model_comes_back_with_its_record_and_a_damaged_one_is_named_and_not_used(tmp_path: Path) -> None:
    from rnnpipe.components.training import FINISHED_RECORD, keep_finished_model, restore_finished_model

    trained = tiny_model()
    trained.fit(X, Y, batch_size=16, epochs=2, verbose=0)
    keep_finished_model(tmp_path, trained, {"epochs": 2, "hist": {"loss": [2.0, 1.0]}})
    fresh, warnings = tiny_model(), []
    assert restore_finished_model(tmp_path / "absent", fresh, warnings.append) is None and not warnings
    assert restore_finished_model(tmp_path, fresh, warnings.append) == {"epochs": 2, "hist": {"loss": [2.0, 1.0]}}
    for ours, theirs in zip(fresh.get_weights(), trained.get_weights(), strict=True):
        np.testing.assert_array_equal(ours, theirs)
    assert int(fresh.optimizer.iterations) == int(trained.optimizer.iterations) == 4  # its optimizer's state too

    weights = tmp_path / "model.weights.h5"
    weights.write_bytes(weights.read_bytes()[:-10])
    untouched_model = tiny_model()
    before = untouched_model.get_weights()
    assert restore_finished_model(tmp_path, untouched_model, warnings.append) is None
    [warning] = warnings
    assert f"not using the model trained before the interruption: {weights} is damaged" in warning
    for ours, theirs in zip(untouched_model.get_weights(), before, strict=True):
        np.testing.assert_array_equal(ours, theirs)
    (tmp_path / FINISHED_RECORD).write_text("{")
    assert restore_finished_model(tmp_path, untouched_model, warnings.append) is None
    assert "is unreadable" in warnings[-1]

    # Whole and as recorded, but another model's: the load fails part-way and every variable is put back.
    other = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3), keras.layers.Dense(2)])
    other.compile(keras.optimizers.Adam(0.01), loss="mse")
    keep_finished_model(tmp_path, other, {"epochs": 1})
    assert restore_finished_model(tmp_path, untouched_model, warnings.append) is None
    assert "does not load" in warnings[-1]
    for ours, theirs in zip(untouched_model.get_weights(), before, strict=True):
        np.testing.assert_array_equal(ours, theirs)
