"""A tiny Patchwork twin and a synthetic clip shared by the visualization tests."""
import numpy as np
import pytest
import tf_keras

import patchwork_tf as pw
from patchwork_tf.data import synthetic

FRAME = 64
CELL = "block_6_depthwise"  # input at stride 8: an 8x8 memory, windows of 4x4 cells


@pytest.fixture(scope="session")
def twin():
    tf_keras.utils.set_random_seed(0)
    model = tf_keras.applications.MobileNetV2(
        input_shape=(FRAME, FRAME, 3), alpha=0.35, include_top=False, weights=None)
    return pw.patchwork_model(model, pw.WindowGrid((FRAME, FRAME), 2, 1))


@pytest.fixture(scope="session")
def clip():
    return next(synthetic.synthetic_clips("validation", num_clips=1, frame_size=FRAME,
                                          clip_length=10))


@pytest.fixture(scope="session")
def frames(clip):
    return np.asarray(clip["frames"])
