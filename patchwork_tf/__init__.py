"""patchwork_tf: Patchwork (Chai, ICCV 2019) in TensorFlow / tf_keras.

tf-agents needs Keras 2, so TF_USE_LEGACY_KERAS is set before TensorFlow is first imported.
So is TF_ENABLE_ONEDNN_OPTS=1: TensorFlow turns its oneDNN kernels on by default only on CPUs
with AVX512-VNNI, AVX512-BF16, AVX-VNNI or AMX; on others (AMD Zen 1-3, older Intel) its own
kernels ran stage 1 several times slower (`tools/benchmark_stage1.py`). Set it to 0 to opt out.

Public API:
  WindowGrid       the (M, N) action space and its window arithmetic (Sec. 3.1)
  HaloCell         Patchwork Cell in front of an op with spatial context (Sec. 3.2)
  GlobalCell       Patchwork Cell in front of a global op
  patchwork_model  the Patchwork twin of a tf_keras functional CNN, sharing its weights
"""
import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

from patchwork_tf.core.cells import GlobalCell, HaloCell  # noqa: E402
from patchwork_tf.core.grid import Window, WindowGrid  # noqa: E402
from patchwork_tf.core.twin import PatchworkModel, patchwork_model  # noqa: E402

__all__ = [
    "GlobalCell", "HaloCell", "PatchworkModel", "Window", "WindowGrid", "patchwork_model",
]
