"""Tests for SSDLite on MobileNetV2: shapes, anchors, stock layers, serialisation, training."""
import numpy as np
import pytest
import tensorflow as tf
import tf_keras

import patchwork_tf as pw
from patchwork_tf.models import anchors
from patchwork_tf.models import ssdlite
from tests.models import stock_layers


@pytest.mark.parametrize("input_shape,alpha,num_extra_layers,want_maps", [
    ((64, 64, 3), 0.35, 1, [(4, 4), (2, 2), (1, 1)]),
    ((96, 128, 3), 0.35, 2, [(6, 8), (3, 4), (2, 2), (1, 1)]),
    ((128, 128, 3), 0.5, 2, [(8, 8), (4, 4), (2, 2), (1, 1)]),
    ((80, 80, 3), 0.75, 0, [(5, 5), (3, 3)]),
])
def test_output_shapes_and_anchor_count(input_shape, alpha, num_extra_layers, want_maps):
    model = ssdlite.ssdlite_mobilenet_v2(input_shape, num_classes=4, alpha=alpha,
                                         num_extra_layers=num_extra_layers)
    shapes = anchors.predictor_feature_map_shapes(model)
    assert [(h, w) for h, w, _ in shapes] == want_maps
    want_anchors = sum(h * w * k for (h, w), k in zip(want_maps, [3] + [6] * len(want_maps)))
    out = model(tf.zeros((2,) + input_shape))
    assert set(out) == {"class_logits", "box_encodings"}
    assert out["class_logits"].shape == (2, want_anchors, 5)
    assert out["box_encodings"].shape == (2, want_anchors, 4)
    assert anchors.anchors_for_model(model).shape == (want_anchors, 4)


def test_class_columns_follow_the_background_choice():
    model = ssdlite.ssdlite_mobilenet_v2((64, 64, 3), num_classes=4, alpha=0.35,
                                         num_extra_layers=1, add_background_class=False,
                                         class_bias_init=-4.6)
    out = model(tf.zeros((1, 64, 64, 3)))
    assert out["class_logits"].shape[-1] == 4
    np.testing.assert_allclose(model.get_layer("box_predictor_0_class").bias.numpy(), -4.6)


def test_per_column_class_bias_reaches_every_anchor():
    model = ssdlite.ssdlite_mobilenet_v2((64, 64, 3), num_classes=2, alpha=0.35,
                                         num_extra_layers=1, class_bias_init=[4.0, -1.0, -2.0])
    for layer in ("box_predictor_0_class", "box_predictor_1_class"):
        model.get_layer(layer).kernel.assign(tf.zeros_like(model.get_layer(layer).kernel))
    logits = model(tf.random.uniform((1, 64, 64, 3), -1.0, 1.0, seed=0))["class_logits"]
    np.testing.assert_allclose(logits.numpy()[0], np.tile([[4.0, -1.0, -2.0]], (78, 1)))
    with pytest.raises(ValueError, match="class_bias_init must be one number or 3"):
        ssdlite.ssdlite_mobilenet_v2((64, 64, 3), num_classes=2, alpha=0.35, num_extra_layers=1,
                                     class_bias_init=[1.0, 2.0])


def test_feature_maps_come_from_the_papers_layers():
    model = ssdlite.ssdlite_mobilenet_v2((128, 128, 3), num_classes=2, alpha=0.35,
                                         num_extra_layers=2)
    inbound = lambda name: model.get_layer(name).inbound_nodes[0].inbound_layers.name
    assert inbound("box_predictor_0_class_depthwise") == "block_13_expand_relu"
    assert inbound("box_predictor_1_box_depthwise") == "out_relu"
    assert inbound("box_predictor_2_box_depthwise") == "ssd_extra_1_project_relu"
    assert inbound("ssd_extra_1_1x1") == "out_relu"
    assert model.get_layer("ssd_extra_1_depthwise").strides == (2, 2)
    # SSDLite extra depths (512, 256) * alpha, the 1x1 at half depth.
    assert model.get_layer("ssd_extra_1_project").filters == 176
    assert model.get_layer("ssd_extra_2_1x1").filters == 44


def test_model_is_flat_and_built_from_stock_layers():
    model = ssdlite.ssdlite_mobilenet_v2((64, 64, 3), num_classes=3, alpha=0.35,
                                         num_extra_layers=1)
    assert stock_layers.non_stock_layers(model) == []
    assert not any(isinstance(layer, tf_keras.Model) for layer in model.layers)
    names = [layer.name for layer in model.layers]
    assert len(names) == len(set(names))


def test_from_config_rebuilds_the_same_function():
    tf_keras.utils.set_random_seed(0)
    model = ssdlite.ssdlite_mobilenet_v2((64, 64, 3), num_classes=3, alpha=0.35,
                                         num_extra_layers=1)
    clone = tf_keras.Model.from_config(model.get_config())
    clone.set_weights(model.get_weights())
    frames = tf.random.uniform((2, 64, 64, 3), -1.0, 1.0, seed=2)
    want, got = model(frames), clone(frames)
    for key in want:
        np.testing.assert_allclose(got[key].numpy(), want[key].numpy(), rtol=1e-5, atol=1e-6)


def test_too_many_extra_layers_are_refused_with_the_limit():
    assert ssdlite.max_extra_layers((64, 64, 3)) == 1
    assert ssdlite.max_extra_layers((320, 320, 3)) == 4
    with pytest.raises(ValueError, match=r"64x64 frame .* at most 1 stride-2 extra layers"):
        ssdlite.ssdlite_mobilenet_v2((64, 64, 3), num_classes=3, alpha=0.35, num_extra_layers=2)
    with pytest.raises(ValueError, match="at least 32x32"):
        ssdlite.ssdlite_mobilenet_v2((16, 64, 3), num_classes=3, num_extra_layers=0)
    with pytest.raises(ValueError, match="extra_layer_depths has 1 entries"):
        ssdlite.ssdlite_mobilenet_v2((128, 128, 3), num_classes=3, num_extra_layers=2,
                                     extra_layer_depths=(64,))


@pytest.mark.slow
def test_a_few_gradient_steps_lower_the_loss_on_a_tiny_batch():
    tf_keras.utils.set_random_seed(0)
    model = ssdlite.ssdlite_mobilenet_v2((64, 64, 3), num_classes=3, alpha=0.35,
                                         num_extra_layers=1)
    frames = tf.random.uniform((2, 64, 64, 3), -1.0, 1.0, seed=3)
    num_anchors = model.output_shape["box_encodings"][1]
    labels = tf.random.uniform((2, num_anchors), 0, 4, dtype=tf.int32, seed=4)
    targets = tf.random.normal((2, num_anchors, 4), seed=5)
    optimizer = tf_keras.optimizers.Adam(1e-2)

    def loss_fn():
        out = model(frames, training=True)
        ce = tf_keras.losses.sparse_categorical_crossentropy(labels, out["class_logits"],
                                                             from_logits=True)
        return tf.reduce_mean(ce) + tf.reduce_mean(tf.square(out["box_encodings"] - targets))

    first = float(loss_fn())
    for _ in range(10):
        optimizer.minimize(loss_fn, model.trainable_variables)
    assert float(loss_fn()) < 0.8 * first


@pytest.mark.slow
@pytest.mark.parametrize("m,n", [(1, 1), (2, 1)])
def test_patchwork_twin_matches_the_model_on_a_static_frame(m, n):
    """Invariants A and B (docs/design.md section 4) for SSDLite: the converter accepts it and is exact."""
    tf_keras.utils.set_random_seed(0)
    model = ssdlite.ssdlite_mobilenet_v2((128, 128, 3), num_classes=3, alpha=0.35,
                                         num_extra_layers=2)
    frames = tf.random.uniform((2, 128, 128, 3), -1.0, 1.0, seed=6)
    want = model(frames)
    twin = pw.patchwork_model(model, pw.WindowGrid((128, 128), m, n))
    twin.reset_states(2)
    twin.warm_start(frames)
    got = twin.step(frames, tf.constant([0, twin.grid.num_actions - 1], tf.int32))
    for key in want:
        scale = float(tf.reduce_max(tf.abs(want[key])))
        assert scale > 0.0
        np.testing.assert_allclose(got[key].numpy(), want[key].numpy(), atol=1e-4 * scale)
