"""Tests for the SSD anchor generator: hand-worked boxes and the order of the model's outputs."""
import math

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from patchwork_tf.models import anchors
from patchwork_tf.models import ssdlite


def test_box_specs_match_the_od_api_ssd_defaults():
    specs = anchors.anchor_box_specs(6)
    assert [len(s) for s in specs] == [3, 6, 6, 6, 6, 6]
    assert specs[0] == [(0.1, 1.0), (0.2, 2.0), (0.2, 0.5)]
    scales = [0.2, 0.35, 0.5, 0.65, 0.8, 0.95]
    for k in range(1, 6):
        assert [r for _, r in specs[k][:5]] == pytest.approx([1.0, 2.0, 0.5, 3.0, 1.0 / 3.0])
        assert all(s == pytest.approx(scales[k]) for s, _ in specs[k][:5])
        scale_next = scales[k + 1] if k < 5 else 1.0
        assert specs[k][5] == pytest.approx((math.sqrt(scales[k] * scale_next), 1.0))


def test_box_specs_without_reduction_or_interpolation():
    specs = anchors.anchor_box_specs(
        2, aspect_ratios=(1.0, 2.0), interpolated_scale_aspect_ratio=0.0,
        reduce_boxes_in_lowest_layer=False)
    assert specs == [[(0.2, 1.0), (0.2, 2.0)], [(0.95, 1.0), (0.95, 2.0)]]


def test_hand_worked_grid_on_a_square_frame():
    got = anchors.grid_anchors([(2, 2)], [[(0.5, 1.0), (0.5, 4.0)]], (64, 64)).numpy()
    # Cell centers (0.25, 0.25), (0.25, 0.75), (0.75, 0.25), (0.75, 0.75); ratio 4 is 0.25 high
    # and 1.0 wide.
    want = np.array([
        [0.0, 0.0, 0.5, 0.5], [0.125, -0.25, 0.375, 0.75],
        [0.0, 0.5, 0.5, 1.0], [0.125, 0.25, 0.375, 1.25],
        [0.5, 0.0, 1.0, 0.5], [0.625, -0.25, 0.875, 0.75],
        [0.5, 0.5, 1.0, 1.0], [0.625, 0.25, 0.875, 1.25],
    ])
    np.testing.assert_allclose(got, want, atol=1e-6)
    assert got.dtype == np.float32


def test_ratio_one_anchor_is_square_in_pixels_on_a_wide_frame():
    got = anchors.grid_anchors([(1, 3)], [[(0.6, 1.0)]], (100, 200)).numpy()
    heights_px = (got[:, 2] - got[:, 0]) * 100
    widths_px = (got[:, 3] - got[:, 1]) * 200
    np.testing.assert_allclose(heights_px, 60.0, rtol=1e-5)
    np.testing.assert_allclose(widths_px, 60.0, rtol=1e-5)
    np.testing.assert_allclose((got[:, 1] + got[:, 3]) / 2, [1 / 6, 0.5, 5 / 6], atol=1e-6)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="num_feature_maps"):
        anchors.anchor_box_specs(0)
    with pytest.raises(ValueError, match="one list of specs per feature map"):
        anchors.grid_anchors([(2, 2), (1, 1)], [[(0.2, 1.0)]], (64, 64))
    with pytest.raises(ValueError, match="box_predictor_0_box"):
        anchors.anchors_for_model(tf_keras.Sequential([tf_keras.layers.Dense(1, input_shape=(2,))]))


@pytest.mark.parametrize("input_shape,num_extra_layers", [((64, 64, 3), 1), ((96, 128, 3), 2)])
def test_anchor_order_matches_model_predictions(input_shape, num_extra_layers):
    """Traces every row of `box_encodings` back to (map, y, x, box spec) and checks its anchor."""
    tf_keras.utils.set_random_seed(0)
    model = ssdlite.ssdlite_mobilenet_v2(input_shape, num_classes=3, alpha=0.35,
                                         num_extra_layers=num_extra_layers)
    got_anchors = anchors.anchors_for_model(model).numpy()
    shapes = anchors.predictor_feature_map_shapes(model)
    specs = anchors.anchor_box_specs(len(shapes))
    probe = tf_keras.Model(model.input, [model.get_layer(f"box_predictor_{k}_box").output
                                         for k in range(len(shapes))] + [model.output])
    frames = tf.random.uniform((1,) + input_shape, -1.0, 1.0, seed=1)
    *per_map, outputs = probe(frames)
    encodings = outputs["box_encodings"].numpy()[0]
    assert encodings.shape[0] == got_anchors.shape[0]
    shorter = min(input_shape[:2])
    row = 0
    for (h, w, k), raw, layer_specs in zip(shapes, per_map, specs):
        raw = raw.numpy()[0].reshape(h, w, k, 4)
        for y in range(h):
            for x in range(w):
                for j, (scale, ratio) in enumerate(layer_specs):
                    np.testing.assert_allclose(encodings[row], raw[y, x, j], rtol=1e-6)
                    ymin, xmin, ymax, xmax = got_anchors[row]
                    assert (ymin + ymax) / 2 == pytest.approx((y + 0.5) / h, abs=1e-6)
                    assert (xmin + xmax) / 2 == pytest.approx((x + 0.5) / w, abs=1e-6)
                    height_px = (ymax - ymin) * input_shape[0]
                    width_px = (xmax - xmin) * input_shape[1]
                    assert height_px == pytest.approx(scale / math.sqrt(ratio) * shorter, rel=1e-5)
                    assert width_px == pytest.approx(scale * math.sqrt(ratio) * shorter, rel=1e-5)
                    row += 1
    assert row == encodings.shape[0]


def test_anchor_arguments_that_disagree_with_the_model_are_refused():
    model = ssdlite.ssdlite_mobilenet_v2((64, 64, 3), num_classes=2, alpha=0.35,
                                         num_extra_layers=0)
    with pytest.raises(ValueError, match="predicts 6 boxes per location"):
        anchors.anchors_for_model(model, aspect_ratios=(1.0, 2.0),
                                  reduce_boxes_in_lowest_layer=True)


def test_reduced_lowest_layer_is_read_from_the_model():
    specs_kwargs = dict(num_classes=2, alpha=0.35, num_extra_layers=0)
    reduced = ssdlite.ssdlite_mobilenet_v2((64, 64, 3), **specs_kwargs)
    full = ssdlite.ssdlite_mobilenet_v2((64, 64, 3), reduce_boxes_in_lowest_layer=False,
                                        **specs_kwargs)
    np.testing.assert_array_equal(
        anchors.anchors_for_model(reduced).numpy(),
        anchors.anchors_for_model(reduced, reduce_boxes_in_lowest_layer=True).numpy())
    np.testing.assert_array_equal(
        anchors.anchors_for_model(full).numpy(),
        anchors.anchors_for_model(full, reduce_boxes_in_lowest_layer=False).numpy())
    assert anchors.anchors_for_model(full).shape == (4 * 4 * 6 + 2 * 2 * 6, 4)
    with pytest.raises(ValueError, match="predicts 6 boxes per location"):
        anchors.anchors_for_model(full, reduce_boxes_in_lowest_layer=True)
    ambiguous = ssdlite.ssdlite_mobilenet_v2((64, 64, 3), aspect_ratios=(1.0, 2.0), **specs_kwargs)
    with pytest.raises(ValueError, match="Cannot tell"):
        anchors.anchors_for_model(ambiguous, aspect_ratios=(1.0, 2.0))
