"""FLOPs counts (core/flops.py) on hand-worked layers and on the twin's traced step."""
import numpy as np
import pytest
import tf_keras

import patchwork_tf as pw
from patchwork_tf.core import flops
from patchwork_tf.core import folding
from tests.core import small_models

L = tf_keras.layers


def test_model_flops_by_hand():
    # conv 2*64*4*9*3 = 13824; BN 2*256; ReLU6 256; head 2*64*2*4 + 128 bias = 1152;
    # head BN 2*128.
    report = flops.model_flops(small_models.conv_bn_model())
    assert report.flops == 13824 + 512 + 256 + 1152 + 256
    assert report.conv_flops == 13824 + 1152


@pytest.mark.parametrize("fold", [False, True])
def test_single_window_step_counts_what_the_model_counts(fold):
    """An M = N = 1 twin runs every layer once on the whole frame, so its step FLOPs are the
    stock model's, or with folding the folded model's; folding saves one FLOP per batch-norm
    output element, and the folded model computes the stock model's outputs."""
    tf_keras.utils.set_random_seed(0)
    model = small_models.calibrate_batch_norm(tf_keras.applications.MobileNetV2(
        input_shape=(64, 64, 3), alpha=0.35, include_top=False, weights=None))
    folded = folding.fold_batch_norm_model(model)
    twin = pw.patchwork_model(model, pw.WindowGrid((64, 64), 1, 1), fold_batch_norm=fold)
    assert flops.step_flops(twin).flops == flops.model_flops(folded if fold else model).flops
    batch_norm_elements = sum(int(np.prod(layer.output_shape[1:])) for layer in model.layers
                              if isinstance(layer, L.BatchNormalization))
    assert flops.model_flops(model).flops - flops.model_flops(folded).flops == (
        batch_norm_elements)
    frames = np.random.default_rng(1).uniform(-1, 1, (1, 64, 64, 3)).astype(np.float32)
    expected = model(frames, training=False).numpy()
    np.testing.assert_allclose(folded(frames), expected, atol=1e-4 * np.abs(expected).max())


def test_elementwise_tf_ops_and_normalization_count_per_element():
    """`x / 127.5 - 1` on an 8x8x3 frame: 2 * 192; Normalization: 2 * 192; conv as above.
    An M = N = 1 twin counts the same (the preprocessing runs on the whole frame)."""
    inputs = L.Input((8, 8, 3))
    x = L.Normalization(mean=0.5, variance=2.0)(inputs / 127.5 - 1.0)
    x = L.Conv2D(4, 3, padding="same", use_bias=False)(x)
    model = tf_keras.Model(inputs, x)
    assert flops.model_flops(model).flops == 2 * 192 + 2 * 192 + 13824
    twin = pw.patchwork_model(model, pw.WindowGrid((8, 8), 1, 1))
    assert flops.step_flops(twin).flops == flops.model_flops(model).flops
