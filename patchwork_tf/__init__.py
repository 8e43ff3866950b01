"""patchwork_tf: Patchwork (Chai, ICCV 2019) in TensorFlow / tf_keras.

tf-agents needs Keras 2, so TF_USE_LEGACY_KERAS is set before TensorFlow is first imported.

Public API:
  WindowGrid       the (M, N) action space and its window arithmetic (Sec. 3.1)
  HaloCell         Patchwork Cell in front of an op with spatial context (Sec. 3.2)
  GlobalCell       Patchwork Cell in front of a global op
  patchwork_model  the Patchwork twin of a tf_keras functional CNN, sharing its weights
                   (`inference=True`: the fastest step options, `INFERENCE_OPTIONS`)
"""
import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

from patchwork_tf.core.cells import GlobalCell, HaloCell  # noqa: E402
from patchwork_tf.core.grid import Window, WindowGrid  # noqa: E402
from patchwork_tf.core.twin import (  # noqa: E402
    INFERENCE_OPTIONS, PatchworkModel, patchwork_model)

__all__ = [
    "GlobalCell", "HaloCell", "INFERENCE_OPTIONS", "PatchworkModel", "Window", "WindowGrid",
    "patchwork_model",
]
