"""patchwork_tf: Patchwork (Chai, ICCV 2019) in TensorFlow / tf_keras.

tf-agents needs Keras 2, so TF_USE_LEGACY_KERAS is set before TensorFlow is first imported.

Public API:
  WindowGrid       the (M, N) action space and its window arithmetic (Sec. 3.1)
  HaloCell         Patchwork Cell in front of an op with spatial context (Sec. 3.2)
  GlobalCell       Patchwork Cell in front of a global op
  patchwork_model  the Patchwork twin of a tf_keras functional CNN, sharing its weights
"""
import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

from patchwork_tf.core.cells import GlobalCell, HaloCell  # noqa: E402
from patchwork_tf.core.grid import Window, WindowGrid  # noqa: E402
from patchwork_tf.core.twin import PatchworkModel, patchwork_model  # noqa: E402

__all__ = [
    "GlobalCell", "HaloCell", "PatchworkModel", "Window", "WindowGrid", "patchwork_model",
]
