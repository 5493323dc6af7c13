"""Which tf.distribute strategy to train under: TPU, several GPUs, or one device.

  tpu       TPUStrategy over the TPU named by --tpu (a Cloud TPU name, a grpc:// address, or
            "local" on a TPU VM), found through a TPUClusterResolver.
  mirrored  MirroredStrategy over every GPU, or every (logical) CPU device when there is no GPU.
  default   the default strategy: one device (CPU or a single GPU).
  auto      tpu when --tpu (or the TPU_NAME environment variable) names one, else mirrored
            when there are 2+ GPUs, else default.
"""

from __future__ import annotations

import os

import tensorflow as tf

from trainer.config import STRATEGIES


def resolve_name(name: str, tpu: str | None) -> str:
    """The concrete strategy `name` stands for on this machine ("auto" picks one)."""
    if name != "auto":
        return name
    if tpu or os.environ.get("TPU_NAME"):
        return "tpu"
    return "mirrored" if len(tf.config.list_physical_devices("GPU")) > 1 else "default"


def make_strategy(name: str = "auto", tpu: str | None = None) -> tf.distribute.Strategy:
    """Creates the distribution strategy.

    Must run before any other TensorFlow op touches the devices (TPU initialization and
    logical device setup both need a fresh runtime).

    Args:
      name: one of STRATEGIES.
      tpu: TPU name or address for the tpu strategy; None or "" uses TPU_NAME or the local TPU.

    Returns:
      The strategy; build and compile the model under its scope().

    Raises:
      ValueError: an unknown strategy name.
    """
    name = resolve_name(name, tpu)
    if name == "tpu":
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu or None)
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    if name == "mirrored":
        devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
        return tf.distribute.MirroredStrategy([d.name for d in devices])
    if name == "default":
        return tf.distribute.get_strategy()
    raise ValueError(f"unknown strategy {name!r}; choose from {STRATEGIES}")
