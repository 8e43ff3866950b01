"""Tests for the DeepLabv3-lite segmenter: shapes, head wiring, stock layers, training."""
import numpy as np
import pytest
import tensorflow as tf
import tf_keras

import patchwork_tf as pw
from patchwork_tf.models import backbone_weights
from patchwork_tf.models import deeplab
from tests.core import small_models
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
    assert tap == deeplab.FEATURE_LAYER


@pytest.mark.parametrize("output_stride, strided, dilations", [
    (16, {1, 3, 6}, {14: 2, 15: 2, 16: 2}),
    (8, {1, 3}, {7: 2, 8: 2, 9: 2, 10: 2, 11: 2, 12: 2, 13: 2, 14: 4, 15: 4, 16: 4}),
])
def test_backbone_runs_its_last_strides_as_dilations(output_stride, strided, dilations):
    """DeepLab's atrous MobileNetV2: each stride-2 block past the output stride keeps its
    rate and runs with stride 1; every later depthwise conv's rate doubles."""
    model = deeplab.deeplabv3_mobilenet_v2((64, 64, 3), alpha=0.35, output_stride=output_stride)
    for block in range(17):
        layer = model.get_layer(f"block_{block}_depthwise" if block else
                                "expanded_conv_depthwise")
        assert layer.strides == ((2, 2) if block in strided else (1, 1)), layer.name
        rate = dilations.get(block, 1)
        assert layer.dilation_rate == (rate, rate), layer.name
    assert model.get_layer(deeplab.FEATURE_LAYER).output_shape[1:] == (
        64 // output_stride, 64 // output_stride, 112)


def test_stock_mobilenet_v2_weights_copy_by_layer_name():
    """Every backbone layer with weights gets the stock model's; up to the first stride
    DeepLab removes the backbone is the stock network."""
    tf_keras.utils.set_random_seed(0)
    model = deeplab.deeplabv3_mobilenet_v2((64, 64, 3), alpha=0.35)
    stock = small_models.calibrate_batch_norm(tf_keras.applications.MobileNetV2(
        input_shape=(96, 96, 3), alpha=0.35, include_top=False, weights=None))
    copied = backbone_weights.copy_weights(stock, model)
    backbone = [layer.name for layer in model.layers
                if layer.weights and not layer.name.startswith(("aspp", "mask_logits"))]
    assert sorted(copied) == sorted(backbone)
    for name in ("block_16_depthwise", "block_16_project_BN", "Conv1"):
        for ours, theirs in zip(model.get_layer(name).weights, stock.get_layer(name).weights):
            np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
    frames = tf.random.uniform((1, 64, 64, 3), -1.0, 1.0, seed=4)
    ours = tf_keras.Model(model.input, model.get_layer("block_12_add").output)(frames)
    stock_64 = tf_keras.applications.MobileNetV2(input_shape=(64, 64, 3), alpha=0.35,
                                                 include_top=False, weights=None)
    stock_64.set_weights(stock.get_weights())
    theirs = tf_keras.Model(stock_64.input, stock_64.get_layer("block_12_add").output)(frames)
    assert float(tf.reduce_max(tf.abs(theirs))) > 0.1
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), atol=1e-5)
    wide = tf_keras.applications.MobileNetV2(input_shape=(64, 64, 3), alpha=0.5,
                                             include_top=False, weights=None)
    before = model.get_layer("Conv1").kernel.numpy()
    with pytest.raises(ValueError, match="block_1_project .* same alpha"):
        backbone_weights.copy_weights(wide, model)
    np.testing.assert_array_equal(model.get_layer("Conv1").kernel.numpy(), before)


def test_image_pooling_branch_broadcasts_the_global_mean():
    tf_keras.utils.set_random_seed(0)
    model = deeplab.deeplabv3_mobilenet_v2((64, 96, 3), alpha=0.35)
    probe = tf_keras.Model(model.input, [model.get_layer(deeplab.FEATURE_LAYER).output,
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


@pytest.mark.slow
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


@pytest.mark.parametrize("size, m, n, output_stride, write", [
    (64, 1, 1, 16, "window"), (128, 4, 2, 16, "window"), (128, 4, 1, 16, "bands"),
    (64, 4, 2, 8, "bands"),
])
def test_patchwork_twin_matches_the_model_on_a_static_frame(size, m, n, output_stride, write):
    """Invariants A (M = N = 1, from zero memories) and B (every window after a warm start;
    docs/design.md section 4) for the atrous segmenter: its dilated depthwise convs get halo cells with
    halos of `dilation` cells (wider than the window at OS8, M = 4) and the twin is exact."""
    tf_keras.utils.set_random_seed(0)
    model = small_models.calibrate_batch_norm(deeplab.deeplabv3_mobilenet_v2(
        (size, size, 3), alpha=0.35, output_stride=output_stride, dropout_rate=0.0))
    frames = tf.random.uniform((2, size, size, 3), -1.0, 1.0, seed=6)
    want = model(frames)["mask_logits"]
    other = model(tf.random.uniform((2, size, size, 3), -1.0, 1.0, seed=7))["mask_logits"]
    scale = float(tf.reduce_max(tf.abs(want)))
    assert float(tf.reduce_max(tf.abs(want - other))) > 0.1 * scale  # depends on its input
    grid = pw.WindowGrid((size, size), m, n)
    twin = pw.patchwork_model(model, grid, write=write,
                              full_memory_cells=[deeplab.OBSERVED_CELL])
    assert deeplab.OBSERVED_CELL in twin.halo_cells
    # The image-pooling branch is broadcast to the whole map, which is cropped to the window:
    # the head runs on the window.
    assert {n.layer.name: n.kind for n in twin._nodes}["aspp_projection"] == "pointwise"
    if m == 1:
        got, _ = twin.step_fn(frames, tf.constant([0, 0]), twin.initial_state(2))
        np.testing.assert_allclose(got["mask_logits"], want, atol=1e-5 * scale)
        return
    _, state = twin.warm_start_fn(frames)
    for action in range(grid.num_actions):
        actions = tf.constant([action, grid.num_actions - 1 - action])
        got, state = twin.step_fn(frames, actions, state)
        np.testing.assert_allclose(got["mask_logits"], want, atol=1e-4 * scale)
