"""Tests for patchwork_tf.ops.box_coder: a hand-worked code, round trips, an independent formula."""
import numpy as np
import pytest

from patchwork_tf.ops import box_coder


def _random_boxes(rng, n):
    lo = rng.uniform(0.0, 0.6, (n, 2))
    size = rng.uniform(0.05, 0.4, (n, 2))
    return np.concatenate([lo, lo + size], -1).astype(np.float32)


def test_hand_worked_code():
    # Anchor centered at (0.5, 0.5), size 0.2 x 0.4; box centered at (0.52, 0.45),
    # size 0.4 x 0.2.
    anchor = [[0.4, 0.3, 0.6, 0.7]]
    box = [[0.32, 0.35, 0.72, 0.55]]
    expected = [[10 * 0.02 / 0.2, 10 * -0.05 / 0.4, 5 * np.log(2.0), 5 * np.log(0.5)]]
    np.testing.assert_allclose(box_coder.encode(box, anchor), expected, rtol=1e-6, atol=1e-5)


def test_box_equal_to_anchor_codes_zero():
    anchors = _random_boxes(np.random.default_rng(1), 6)
    np.testing.assert_allclose(box_coder.encode(anchors, anchors), np.zeros((6, 4)),
                               rtol=1e-6, atol=1e-5)


def test_round_trip_batched():
    rng = np.random.default_rng(2)
    anchors = _random_boxes(rng, 10)
    boxes = np.stack([_random_boxes(rng, 10) for _ in range(3)])
    codes = box_coder.encode(boxes, anchors)
    assert codes.shape == (3, 10, 4)
    np.testing.assert_allclose(box_coder.decode(codes, anchors), boxes, rtol=1e-6, atol=1e-6)


def test_decode_against_independent_corner_formula():
    # Written on corners rather than centers so it shares no code path with decode().
    rng = np.random.default_rng(3)
    anchors = _random_boxes(rng, 8).astype(np.float64)
    codes = rng.normal(0.0, 1.0, (8, 4))
    ha = anchors[:, 2] - anchors[:, 0]
    wa = anchors[:, 3] - anchors[:, 1]
    cy = anchors[:, 0] + ha / 2 + codes[:, 0] / 10 * ha
    cx = anchors[:, 1] + wa / 2 + codes[:, 1] / 10 * wa
    h = ha * np.exp(codes[:, 2] / 5)
    w = wa * np.exp(codes[:, 3] / 5)
    expected = np.stack([cy - h / 2, cx - w / 2, cy + h / 2, cx + w / 2], -1)
    np.testing.assert_allclose(
        box_coder.decode(codes.astype(np.float32), anchors.astype(np.float32)), expected,
        rtol=1e-6, atol=1e-5)


def test_custom_scale_factors_round_trip():
    rng = np.random.default_rng(4)
    anchors, boxes = _random_boxes(rng, 5), _random_boxes(rng, 5)
    codes = box_coder.encode(boxes, anchors, (1.0, 1.0, 1.0, 1.0))
    np.testing.assert_allclose(codes[:, 2:], np.log((boxes[:, 2:] - boxes[:, :2]) /
                                                    (anchors[:, 2:] - anchors[:, :2])),
                               rtol=1e-6, atol=1e-5)
    np.testing.assert_allclose(box_coder.decode(codes, anchors, (1.0, 1.0, 1.0, 1.0)), boxes,
                               rtol=1e-6, atol=1e-6)


def test_bad_scale_factors():
    with pytest.raises(ValueError, match="scale_factors must be four positive"):
        box_coder.encode([[0.0, 0.0, 1.0, 1.0]], [[0.0, 0.0, 1.0, 1.0]], (10.0, 10.0, 5.0))
