"""`tf.distribute` strategies by name, so training functions take a plain string argument."""
import tensorflow as tf

STRATEGIES = ("default", "mirrored", "multi_worker")


def get_strategy(name: str = "default") -> tf.distribute.Strategy:
    """The distribution strategy called `name`.

    Args:
      name: "default" (the no-op strategy: one device), "mirrored" (`MirroredStrategy`, all
        local GPUs, or the CPU) or "multi_worker" (`MultiWorkerMirroredStrategy`; the cluster
        comes from the `TF_CONFIG` environment variable).

    Returns:
      A `tf.distribute.Strategy`.
    """
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ValueError(f"strategy must be one of {STRATEGIES}, got {name!r}.")
