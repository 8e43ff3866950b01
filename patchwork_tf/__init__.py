"""patchwork_tf: Patchwork (Chai, ICCV 2019) in TensorFlow / tf_keras.

tf-agents needs Keras 2, so TF_USE_LEGACY_KERAS is set before TensorFlow is first imported.
"""
import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
