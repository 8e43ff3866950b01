"""Tests for patchwork_tf.metrics.rewards: hand-worked frames and an independent numpy greedy
matcher that sorts all pairs once."""
import numpy as np
import pytest
import tensorflow as tf

from patchwork_tf.metrics import davis
from patchwork_tf.metrics import rewards

A = [0.0, 0.0, 0.5, 0.5]
B = [0.5, 0.5, 1.0, 1.0]


def _detections(boxes, scores, num=None):
    boxes = np.asarray(boxes, np.float32)
    return dict(boxes=boxes, scores=np.asarray(scores, np.float32),
                classes=np.zeros(boxes.shape[:2], np.int32),
                num_detections=np.asarray(num if num is not None else [boxes.shape[1]] *
                                          boxes.shape[0], np.int32))


def _numpy_overlap(gt, valid, det_boxes, scores, num, threshold=0.5):
    """Eq. 3 for one frame: rank all (gt, prediction) pairs by IoU once, take them greedily."""
    gt = gt[valid]
    keep = (scores > threshold) & (np.arange(len(scores)) < num)
    det = det_boxes[keep]
    if len(gt) == 0:
        return float(len(det) == 0)
    pairs = []
    for k, g in enumerate(gt):
        for d, p in enumerate(det):
            inter = (max(0, min(g[2], p[2]) - max(g[0], p[0])) *
                     max(0, min(g[3], p[3]) - max(g[1], p[1])))
            union = (g[2] - g[0]) * (g[3] - g[1]) + (p[2] - p[0]) * (p[3] - p[1]) - inter
            pairs.append((inter / union, k, d))
    used_gt, used_det, total = set(), set(), 0.0
    for iou, k, d in sorted(pairs, reverse=True):
        if k not in used_gt and d not in used_det:
            used_gt.add(k)
            used_det.add(d)
            total += iou
    return total / len(gt)


# Detection overlap (Eq. 3) and rewards.

def test_detection_overlap_hand_worked():
    # A found exactly (1.0); B half covered (0.5); a duplicate of A finds nothing new; an exact
    # B below the score threshold and a padded slot beyond num_detections do not count.
    det = _detections([[A, [0.5, 0.5, 1.0, 0.75], A, B, B]], [[0.9, 0.8, 0.7, 0.4, 0.99]], [4])
    f = rewards.detection_overlap([[A, B, B]], [[True, True, False]], det)
    np.testing.assert_allclose(f, [0.75], rtol=1e-6, atol=1e-6)


def test_greedy_by_iou_not_by_score():
    # The lower-scored prediction overlaps more (IoU 0.8 vs 0.6) and is matched first.
    det = _detections([[[0.0, 0.0, 0.5, 0.3], [0.0, 0.0, 0.5, 0.4]]], [[0.9, 0.6]])
    np.testing.assert_allclose(rewards.detection_overlap([[A]], [[True]], det), [0.8],
                               rtol=1e-6, atol=1e-6)


def test_greedy_is_not_the_optimal_assignment():
    # Full-height boxes, x-intervals: A [0, .5], B [.15, .65], p [.05, .55], q [0, .1].
    # IoUs: p-A 9/11, p-B 2/3, q-A 0.2, q-B 0. Greedy takes p-A first and leaves q nothing:
    # (9/11 + 0) / 2 = 0.409, although q-A plus p-B would give (0.2 + 2/3) / 2 = 0.433.
    a, b = [0.0, 0.0, 1.0, 0.5], [0.0, 0.15, 1.0, 0.65]
    p, q = [0.0, 0.05, 1.0, 0.55], [0.0, 0.0, 1.0, 0.1]
    det = _detections([[q, p]], [[0.9, 0.9]])
    f = rewards.detection_overlap([[a, b]], [[True, True]], det)
    np.testing.assert_allclose(f, [9 / 11 / 2], rtol=1e-6, atol=1e-6)


def test_detection_overlap_without_ground_truth():
    quiet = _detections([[A]], [[0.3]])
    false_alarm = _detections([[A]], [[0.6]])
    empty_gt = np.zeros((1, 0, 4), np.float32)
    np.testing.assert_array_equal(
        rewards.detection_overlap(empty_gt, np.zeros((1, 0), bool), quiet), [1.0])
    np.testing.assert_array_equal(rewards.detection_overlap([[B]], [[False]], false_alarm), [0.0])


def test_random_against_numpy_in_graph_mode():
    rng = np.random.default_rng(0)
    def boxes(shape):
        lo = rng.uniform(0, 0.7, shape + (2,))
        size = rng.uniform(0.05, 0.4, shape + (2,))
        return np.concatenate([lo, lo + size], -1).astype(np.float32)
    gt, valid = boxes((6, 5)), rng.uniform(size=(6, 5)) < 0.7
    det_boxes = np.concatenate([gt + rng.normal(0, 0.05, gt.shape), boxes((6, 3))], 1)
    scores = rng.uniform(0, 1, (6, 8)).astype(np.float32)
    num = rng.integers(0, 9, 6).astype(np.int32)
    fn = tf.function(rewards.detection_overlap, input_signature=[
        tf.TensorSpec([None, None, 4]), tf.TensorSpec([None, None], tf.bool),
        dict(boxes=tf.TensorSpec([None, None, 4]), scores=tf.TensorSpec([None, None]),
             num_detections=tf.TensorSpec([None], tf.int32))])
    got = fn(gt, valid, dict(boxes=det_boxes.astype(np.float32), scores=scores,
                             num_detections=num)).numpy()
    want = [_numpy_overlap(gt[b], valid[b], det_boxes[b], scores[b], num[b]) for b in range(6)]
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    assert np.std(want) > 0.05


def test_detection_reward_is_clipped_gain():
    gt, valid = [[A], [A]], [[True], [True]]
    good = _detections([[A], [[0.0, 0.0, 0.5, 0.25]]], [[0.9], [0.9]])
    worse = _detections([[[0.0, 0.0, 0.5, 0.25]], [A]], [[0.9], [0.9]])
    # Frame 0 improved from 0.5 to 1; frame 1 got worse, which earns 0, not -0.5.
    np.testing.assert_allclose(rewards.detection_reward(gt, valid, good, worse), [0.5, 0.0],
                               rtol=1e-6, atol=1e-6)


def test_the_difference_reward_is_the_unclipped_gain():
    np.testing.assert_allclose(rewards.improvement_reward([1.0, 0.5], [0.5, 1.0], "difference"),
                               [0.5, -0.5], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(rewards.improvement_reward([1.0, 0.5], [0.5, 1.0]), [0.5, 0.0],
                               rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="reward must be one of"):
        rewards.improvement_reward([1.0], [0.5], "squared")


# Segmentation overlap (DAVIS J) and rewards.

def test_segmentation_overlap_matches_davis_j_and_handles_empty():
    rng = np.random.default_rng(1)
    gt = (rng.uniform(size=(4, 9, 11)) < 0.4).astype(np.uint8)
    pred = rng.uniform(size=(4, 9, 11)) < 0.4
    gt[3] = 0
    pred[3] = False
    got = rewards.segmentation_overlap(gt, pred)
    np.testing.assert_allclose(got, davis.region_similarity(pred, gt), rtol=1e-6, atol=1e-6)
    assert got[3] == 1.0


def test_segmentation_reward_hand_worked():
    gt = np.zeros((1, 4, 4), np.uint8)
    gt[0, :2] = 1
    now = gt.astype(bool)             # J 1
    before = np.zeros((1, 4, 4), bool)
    before[0, :1] = True              # J 0.5
    np.testing.assert_allclose(rewards.segmentation_reward(gt, now, before), [0.5],
                               rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(rewards.segmentation_reward(gt, before, now), [0.0],
                               rtol=1e-6, atol=1e-6)


def test_float_masks_are_refused():
    with pytest.raises(ValueError, match="Threshold the logits"):
        rewards.segmentation_overlap(np.zeros((1, 2, 2), np.uint8),
                                     np.zeros((1, 2, 2), np.float32))
