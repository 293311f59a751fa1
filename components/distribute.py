"""Picks the tf.distribute strategy from configuration, so scaling out is a config change."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rnnpipe.errors import ConfigError, RnnpipeError

if TYPE_CHECKING:
    import tensorflow as tf

STRATEGIES = ("auto", "default", "mirrored", "multi_worker", "tpu")


def resolve_strategy(name: str, workers: int) -> str:
    """The strategy to train with: ``auto`` with ``workers`` > 1 is ``multi_worker``; other strategies take
    one process. Raises ConfigError naming the key for a value that cannot work."""
    if name not in STRATEGIES:
        raise ConfigError(f"distribution.strategy must be one of {STRATEGIES}, got '{name}'")
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
        raise ConfigError(f"distribution.workers must be an integer of 1 or more, got {workers!r}")
    if workers > 1 and name not in ("auto", "multi_worker"):
        raise ConfigError(f"distribution.workers={workers} needs distribution.strategy multi_worker (or auto), "
                          f"got '{name}'")
    return "multi_worker" if workers > 1 else name


def make_strategy(name: str) -> tf.distribute.Strategy:
    import tensorflow as tf

    resolve_strategy(name, 1)
    if name == "auto":  # listing devices starts TensorFlow's runtime: never before a multi-worker strategy
        name = "mirrored" if len(tf.config.list_logical_devices("GPU")) > 1 else "default"
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":  # cluster from the TF_CONFIG environment variable
        return tf.distribute.MultiWorkerMirroredStrategy()
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
    except (ValueError, RuntimeError) as e:  # no TPU_NAME, not on a TPU VM
        raise RnnpipeError(f"distribution.strategy: tpu, but TPUClusterResolver found no TPU ({e}); run on a TPU "
                           "VM or set TPU_NAME, or use distribution.strategy: auto") from None
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    return tf.distribute.TPUStrategy(resolver)
