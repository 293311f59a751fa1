"""Picks the tf.distribute strategy from configuration, so scaling out is a config change."""

from __future__ import annotations

import tensorflow as tf

from rnnpipe.errors import ConfigError, RnnpipeError

STRATEGIES = ("auto", "default", "mirrored", "multi_worker", "tpu")


def make_strategy(name: str) -> tf.distribute.Strategy:
    if name not in STRATEGIES:
        raise ConfigError(f"distribution.strategy must be one of {STRATEGIES}, got '{name}'")
    gpus = tf.config.list_logical_devices("GPU")
    if name == "auto":
        name = "mirrored" if len(gpus) > 1 else "default"
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
