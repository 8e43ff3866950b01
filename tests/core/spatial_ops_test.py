"""Padding geometry of spatial ops: TF SAME arithmetic and the ZeroPadding2D + VALID pattern."""
import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from patchwork_tf.core import spatial_ops


@pytest.mark.parametrize("size, kernel, stride, dilation, pad", [
    (8, 3, 1, 1, (1, 1)),
    (8, 3, 2, 1, (0, 1)),  # even size, stride 2: TF pads 0 before and 1 after
    (7, 3, 2, 1, (1, 1)),
    (8, 5, 1, 1, (2, 2)),
    (8, 3, 1, 2, (2, 2)),  # dilation 2: effective kernel 5
    (8, 1, 2, 1, (0, 0)),
])
def test_same_padding(size, kernel, stride, dilation, pad):
    layer = tf_keras.layers.Conv2D(4, kernel, stride, padding="same", dilation_rate=dilation)
    geometry = spatial_ops.layer_geometry(layer, (size, size))
    assert geometry.pad == (pad, pad)
    assert geometry.output_size((size, size)) == (-(-size // stride),) * 2


def test_zero_padding_valid_pattern_of_mobilenet_v2():
    layer = tf_keras.layers.DepthwiseConv2D(3, strides=2, padding="valid")
    geometry = spatial_ops.layer_geometry(layer, (16, 16), zero_padding=((0, 1), (0, 1)))
    assert geometry.pad == ((0, 1), (0, 1))
    assert geometry.tiles_windows((16, 16))
    assert geometry.crop_size((8, 8)) == (9, 9)


def test_tiling_needs_divisible_maps_and_same_like_padding():
    same = spatial_ops.layer_geometry(tf_keras.layers.Conv2D(1, 3, 2, padding="same"), (7, 7))
    assert not same.tiles_windows((7, 7))
    valid = spatial_ops.layer_geometry(tf_keras.layers.Conv2D(1, 3, 1, padding="valid"), (8, 8))
    assert not valid.tiles_windows((8, 8))
    pool = spatial_ops.layer_geometry(tf_keras.layers.MaxPooling2D(2), (8, 8))
    assert pool.tiles_windows((8, 8)) and pool.crop_size((4, 4)) == (4, 4)


def test_refuses_channels_first_and_causal():
    with pytest.raises(ValueError, match="channels_last"):
        spatial_ops.layer_geometry(
            tf_keras.layers.Conv2D(1, 3, padding="same", data_format="channels_first"), (8, 8))


@pytest.mark.parametrize("make_conv", [
    lambda: tf_keras.layers.Conv2D(6, 3, padding="valid", use_bias=True),
    lambda: tf_keras.layers.Conv2D(6, 1, padding="valid", use_bias=False),
    lambda: tf_keras.layers.DepthwiseConv2D(3, padding="valid", depth_multiplier=2),
])
@pytest.mark.parametrize("scale, center", [(True, True), (False, False)])
def test_fold_batch_norm_equals_conv_then_inference_batch_norm(make_conv, scale, center):
    rng = np.random.default_rng(0)
    inputs = tf.constant(rng.normal(size=(2, 9, 9, 4)), tf.float32)
    conv = make_conv()
    features = conv(inputs)
    batch_norm = tf_keras.layers.BatchNormalization(scale=scale, center=center, epsilon=1e-3)
    batch_norm.build(features.shape)
    channels = features.shape[-1]
    batch_norm.moving_mean.assign(rng.normal(0, 0.5, channels))
    batch_norm.moving_variance.assign(rng.uniform(0.2, 2.0, channels))
    if scale:
        batch_norm.gamma.assign(rng.normal(1, 0.5, channels))
    if center:
        batch_norm.beta.assign(rng.normal(0, 0.5, channels))
    expected = batch_norm(features, training=False)
    folded = spatial_ops.fold_batch_norm(conv, batch_norm)
    actual = spatial_ops.run_valid(conv, inputs, folded=folded)
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-5)
    shifted = spatial_ops.run_valid(conv, inputs, depthwise_as_shifts=True, folded=folded)
    np.testing.assert_allclose(shifted, expected, rtol=1e-5, atol=1e-5)
