"""Tests for patchwork_tf.ops.postprocess: a hand-worked frame and a numpy per-class greedy NMS."""
import numpy as np
import pytest
import tensorflow as tf

from patchwork_tf.ops import box_coder
from patchwork_tf.ops import postprocess as postprocess_lib


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _numpy_nms(boxes, scores, iou_threshold, score_threshold, max_detections):
    """Independent per-class greedy NMS for one frame; returns (score, class, box) rows."""
    def iou(a, b):
        inter = (max(0.0, min(a[2], b[2]) - max(a[0], b[0])) *
                 max(0.0, min(a[3], b[3]) - max(a[1], b[1])))
        return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)
    rows = []
    for c in range(scores.shape[1]):
        kept = []
        for i in np.argsort(-scores[:, c]):
            if scores[i, c] > score_threshold and all(iou(boxes[i], boxes[j]) <= iou_threshold
                                                      for j in kept):
                kept.append(i)
        rows += [(scores[i, c], c, boxes[i]) for i in kept]
    return sorted(rows, key=lambda r: -r[0])[:max_detections]


def test_hand_worked():
    anchors = np.array([[0, 0, .5, .5], [0, 0, .5, .55], [.5, .5, 1, 1]], np.float32)
    # Columns: background, class 0, class 1. a1's class 0 (0.73) overlaps a0's (0.88) with
    # IoU 0.91 and is suppressed; its class 1 (0.5) survives; the background never appears.
    logits = np.array([[[5, 2, -10], [-10, 1, 0], [-10, -10, 3]]], np.float32)
    out = tf.nest.map_structure(np.asarray, postprocess_lib.postprocess(
        np.zeros((1, 3, 4), np.float32), logits, anchors, max_detections=5,
        score_threshold=0.3))
    assert out["num_detections"][0] == 3
    np.testing.assert_array_equal(out["classes"][0], [1, 0, 1, 0, 0])
    np.testing.assert_allclose(out["scores"][0], [_sigmoid(3), _sigmoid(2), 0.5, 0, 0],
                               rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(out["boxes"][0, :3], anchors[[2, 0, 1]], rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(out["boxes"][0, 3:], np.zeros((2, 4)))
    assert out["classes"].dtype == np.int32


def test_decodes_and_clips():
    anchors = np.array([[0.8, 0.8, 1.0, 1.0]], np.float32)
    box = np.array([[[0.85, 0.85, 1.05, 1.05]]], np.float32)  # spills over the frame
    codes = box_coder.encode(box, anchors)
    out = postprocess_lib.postprocess(codes, np.array([[[0.0, 4.0]]], np.float32), anchors,
                                      max_detections=1)
    np.testing.assert_allclose(out["boxes"], [[[0.85, 0.85, 1.0, 1.0]]], rtol=1e-6, atol=1e-5)


def test_random_against_numpy_nms():
    rng = np.random.default_rng(0)
    lo = rng.uniform(-0.1, 0.8, (30, 2))
    anchors = np.concatenate([lo, lo + rng.uniform(0.1, 0.3, (30, 2))], -1).astype(np.float32)
    codes = rng.normal(0, 0.5, (2, 30, 4)).astype(np.float32)
    logits = rng.normal(-1, 2, (2, 30, 4)).astype(np.float32)
    fn = tf.function(postprocess_lib.postprocess)
    out = tf.nest.map_structure(np.asarray, fn(codes, logits, anchors, max_detections=12,
                                               iou_threshold=0.4, score_threshold=0.2))
    boxes = box_coder.decode(codes, anchors).numpy()
    assert np.mean((boxes < 0) | (boxes > 1)) > 0.05  # clipping is exercised
    for b in range(2):
        want = _numpy_nms(boxes[b], _sigmoid(logits[b, :, 1:]), 0.4, 0.2, 12)
        n = out["num_detections"][b]
        assert n == len(want)
        np.testing.assert_allclose(out["scores"][b, :n], [r[0] for r in want],
                                   rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(out["classes"][b, :n], [r[1] for r in want])
        # NMS runs on the decoded boxes; only the output is clipped to the frame.
        np.testing.assert_allclose(out["boxes"][b, :n],
                                   np.clip(np.stack([r[2] for r in want]), 0, 1),
                                   rtol=1e-6, atol=1e-5)


def test_missing_background_column():
    with pytest.raises(ValueError, match="needs a background column"):
        postprocess_lib.postprocess(np.zeros((1, 2, 4), np.float32),
                                    np.zeros((1, 2, 1), np.float32),
                                    np.zeros((2, 4), np.float32))


# Targets to post-processing, end to end.

def test_perfect_head_recovers_the_ground_truth():
    """Targets -> a head that predicts them exactly -> post-processing gives back the boxes."""
    from patchwork_tf.ops import target_assigner
    grid = (np.arange(4) + 0.5) / 4
    centers = np.stack(np.meshgrid(grid, grid, indexing="ij"), -1).reshape(-1, 2)
    anchors = np.concatenate([centers - 0.15, centers + 0.15], -1).astype(np.float32)
    gt = np.array([[[0.05, 0.1, 0.4, 0.35], [0.55, 0.6, 0.95, 0.9], [0, 0, 0, 0]]], np.float32)
    targets = target_assigner.assign_targets(anchors, gt, [[2, 0, -1]], [[True, True, False]])
    logits = np.where(np.eye(4)[targets["cls_targets"]] > 0, 8.0, -8.0).astype(np.float32)
    out = tf.nest.map_structure(np.asarray, postprocess_lib.postprocess(
        targets["reg_targets"], logits, anchors, score_threshold=0.5))
    # Every positive anchor decodes to its box exactly; NMS keeps one copy per box. The two
    # scores tie, so compare in the ground truth's order.
    assert out["num_detections"][0] == 2
    order = np.argsort(out["boxes"][0, :2, 0])
    np.testing.assert_allclose(out["boxes"][0, order], gt[0, :2], rtol=1e-6, atol=1e-5)
    np.testing.assert_array_equal(out["classes"][0, order], [2, 0])
