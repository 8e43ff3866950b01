"""Tests for the DeepLabv3-lite segmenter: shapes, head wiring, stock layers, training."""
import numpy as np
import pytest
import tensorflow as tf
import tf_keras

import patchwork_tf as pw
from patchwork_tf.models import deeplab
from tests.models import stock_layers


@pytest.mark.parametrize("input_shape,alpha,output_stride,feature_hw", [
    ((64, 64, 3), 0.35, 16, (4, 4)),
    ((96, 128, 3), 0.35, 8, (12, 16)),
    ((72, 100, 3), 0.5, 16, (5, 7)),
])
def test_output_shape_and_feature_stride(input_shape, alpha, output_stride, feature_hw):
    model = deeplab.deeplabv3_mobilenet_v2(input_shape, alpha=alpha, output_stride=output_stride)
    out = model(tf.zeros((2,) + input_shape))
    assert set(out) == {"mask_logits"}
    assert out["mask_logits"].shape == (2,) + input_shape[:2] + (1,)
    assert model.get_layer("aspp_1x1").output_shape[1:3] == feature_hw
    tap = model.get_layer("aspp_1x1").inbound_nodes[0].inbound_layers.name
    assert tap == deeplab.FEATURE_LAYERS[output_stride]


def test_image_pooling_branch_broadcasts_the_global_mean():
    tf_keras.utils.set_random_seed(0)
    model = deeplab.deeplabv3_mobilenet_v2((64, 96, 3), alpha=0.35)
    probe = tf_keras.Model(model.input, [model.get_layer("block_13_expand_relu").output,
                                         model.get_layer("aspp_pool_broadcast").output])
    frames = tf.random.uniform((2, 64, 96, 3), -1.0, 1.0, seed=1)
    features, broadcast = probe(frames)
    assert broadcast.shape == (2, 4, 6, 256)
    conv = model.get_layer("aspp_pool_conv")
    bn = model.get_layer("aspp_pool_conv_bn")
    mean = tf.reduce_mean(features, axis=[1, 2], keepdims=True)
    want = tf.nn.relu(bn(conv(mean), training=False))
    np.testing.assert_allclose(broadcast.numpy(),
                               np.broadcast_to(want.numpy(), broadcast.shape), rtol=1e-5,
                               atol=1e-6)


def test_model_is_flat_and_built_from_stock_layers():
    model = deeplab.deeplabv3_mobilenet_v2((64, 64, 3), alpha=0.35)
    assert stock_layers.non_stock_layers(model) == []
    assert not any(isinstance(layer, tf_keras.Model) for layer in model.layers)


def test_from_config_rebuilds_the_same_function():
    tf_keras.utils.set_random_seed(0)
    model = deeplab.deeplabv3_mobilenet_v2((64, 64, 3), alpha=0.35, output_stride=8)
    clone = tf_keras.Model.from_config(model.get_config())
    clone.set_weights(model.get_weights())
    frames = tf.random.uniform((1, 64, 64, 3), -1.0, 1.0, seed=2)
    np.testing.assert_allclose(clone(frames)["mask_logits"].numpy(),
                               model(frames)["mask_logits"].numpy(), rtol=1e-5, atol=1e-6)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="output_stride must be one of \\[8, 16\\], got 32"):
        deeplab.deeplabv3_mobilenet_v2((64, 64, 3), output_stride=32)
    with pytest.raises(ValueError, match=r"input_shape must be \(H, W, 3\)"):
        deeplab.deeplabv3_mobilenet_v2((64, 64, 1))
    with pytest.raises(ValueError, match="dropout_rate"):
        deeplab.deeplabv3_mobilenet_v2((64, 64, 3), dropout_rate=1.0)


def test_a_few_gradient_steps_lower_the_loss_on_a_tiny_batch():
    tf_keras.utils.set_random_seed(0)
    model = deeplab.deeplabv3_mobilenet_v2((64, 64, 3), alpha=0.35, dropout_rate=0.0)
    frames = tf.random.uniform((2, 64, 64, 3), -1.0, 1.0, seed=3)
    yy, xx = np.mgrid[:64, :64]
    masks = np.stack([(yy < 32), (xx > 20) & (xx < 50)]).astype(np.float32)[..., None]
    optimizer = tf_keras.optimizers.Adam(1e-2)

    def loss_fn():
        logits = model(frames, training=True)["mask_logits"]
        return tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(masks, logits))

    first = float(loss_fn())
    for _ in range(10):
        optimizer.minimize(loss_fn, model.trainable_variables)
    assert float(loss_fn()) < 0.8 * first


@pytest.mark.parametrize("m,n,output_stride", [(1, 1, 16), (2, 1, 16), (2, 1, 8)])
def test_patchwork_twin_matches_the_model_on_a_static_frame(m, n, output_stride):
    """DESIGN.md invariants A and B for the segmenter: the converter accepts it and is exact."""
    tf_keras.utils.set_random_seed(0)
    model = deeplab.deeplabv3_mobilenet_v2((64, 64, 3), alpha=0.35, output_stride=output_stride)
    frames = tf.random.uniform((2, 64, 64, 3), -1.0, 1.0, seed=6)
    want = model(frames)["mask_logits"]
    twin = pw.patchwork_model(model, pw.WindowGrid((64, 64), m, n))
    twin.reset_states(2)
    twin.warm_start(frames)
    got = twin.step(frames, tf.constant([0, twin.grid.num_actions - 1], tf.int32))["mask_logits"]
    scale = float(tf.reduce_max(tf.abs(want)))
    assert scale > 0.0
    np.testing.assert_allclose(got.numpy(), want.numpy(), atol=1e-4 * scale)
