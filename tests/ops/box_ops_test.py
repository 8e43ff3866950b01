"""Tests for patchwork_tf.ops.box_ops: hand-worked IoUs and a numpy double loop."""
import numpy as np
import pytest
import tensorflow as tf

from patchwork_tf.ops import box_ops


def _numpy_iou(a, b):
    """Independent IoU of two (ymin, xmin, ymax, xmax) boxes, written the scalar way."""
    ih = min(a[2], b[2]) - max(a[0], b[0])
    iw = min(a[3], b[3]) - max(a[1], b[1])
    inter = max(ih, 0.0) * max(iw, 0.0)
    union = ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)
    return 0.0 if union <= 0 else inter / union


def test_area():
    boxes = [[0.0, 0.0, 0.5, 0.5], [0.1, 0.2, 0.4, 0.3], [0.5, 0.5, 0.4, 0.6]]
    np.testing.assert_allclose(box_ops.area(boxes), [0.25, 0.03, 0.0], rtol=1e-6, atol=1e-6)


def test_hand_worked_iou():
    a = [[0.0, 0.0, 0.5, 0.5]]
    b = [[0.0, 0.25, 0.5, 0.75],   # half overlap: 0.125 / 0.375 = 1/3
         [0.0, 0.0, 0.5, 0.5],     # identical
         [0.5, 0.5, 1.0, 1.0],     # touching corner
         [0.1, 0.1, 0.2, 0.2]]     # contained: 0.01 / 0.25
    np.testing.assert_allclose(box_ops.pairwise_iou(a, b), [[1 / 3, 1.0, 0.0, 0.04]],
                               rtol=1e-6, atol=1e-6)


def test_degenerate_pair_is_zero_not_nan():
    zero = [[0.3, 0.3, 0.3, 0.3]]
    np.testing.assert_array_equal(box_ops.pairwise_iou(zero, zero), [[0.0]])


def test_batched_against_numpy():
    rng = np.random.default_rng(0)
    def random_boxes(shape):
        c = rng.uniform(0, 1, shape + (2, 2))
        return np.concatenate([c.min(-1), c.max(-1)], -1).astype(np.float32)
    boxes1 = random_boxes((3, 5))
    boxes2 = random_boxes((3, 7))
    iou = box_ops.pairwise_iou(boxes1, boxes2).numpy()
    assert iou.shape == (3, 5, 7)
    for b in range(3):
        for i in range(5):
            for j in range(7):
                np.testing.assert_allclose(iou[b, i, j], _numpy_iou(boxes1[b, i], boxes2[b, j]),
                                           rtol=1e-6, atol=1e-6)


def test_iou_in_graph_mode_with_unknown_sizes():
    fn = tf.function(box_ops.pairwise_iou, input_signature=[
        tf.TensorSpec([None, None, 4], tf.float32), tf.TensorSpec([None, None, 4], tf.float32)])
    out = fn(tf.constant([[[0.0, 0.0, 1.0, 1.0]]]), tf.constant([[[0.0, 0.0, 0.5, 1.0]] * 2]))
    np.testing.assert_allclose(out, [[[0.5, 0.5]]], rtol=1e-6, atol=1e-6)


def test_clip_to_frame_and_window():
    boxes = [[-0.2, 0.1, 0.7, 1.3], [0.8, 0.8, 0.9, 0.9]]
    np.testing.assert_allclose(box_ops.clip_to_window(boxes),
                               [[0.0, 0.1, 0.7, 1.0], [0.8, 0.8, 0.9, 0.9]], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(
        box_ops.clip_to_window(boxes, (0.0, 0.0, 0.5, 0.5)),
        [[0.0, 0.1, 0.5, 0.5], [0.5, 0.5, 0.5, 0.5]], rtol=1e-6, atol=1e-6)


def test_bad_shape_names_the_argument():
    with pytest.raises(ValueError, match="boxes2 must have shape"):
        box_ops.pairwise_iou([[0.0, 0.0, 1.0, 1.0]], [[0.0, 0.0, 1.0]])
