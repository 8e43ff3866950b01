"""Tests for patchwork_tf.ops.target_assigner: a hand-worked frame, a loop-based numpy matcher."""
import numpy as np
import pytest
import tensorflow as tf

from patchwork_tf.ops import box_coder
from patchwork_tf.ops import target_assigner

# IoUs worked by hand (rows: ground truth, columns: anchors a0..a6):
#   gt0 [0, 0, .5, .5]      : a0 1.0, a4 1/7, a5 0.6, a6 0.45
#   gt1 [.5, .5, 1, .9]     : a3 0.8, a4 0.161
#   gt2 (padding, box = a2) : ignored although its IoU with a2 is 1
#   gt3 [.1, .55, .4, .8]   : a1 0.3, a4 0.102  -> a1 only by force-match
ANCHORS = np.array([
    [0.0, 0.0, 0.5, 0.5],
    [0.0, 0.5, 0.5, 1.0],
    [0.5, 0.0, 1.0, 0.5],
    [0.5, 0.5, 1.0, 1.0],
    [0.25, 0.25, 0.75, 0.75],
    [0.0, 0.0, 0.5, 0.3],
    [0.0, 0.0, 0.5, 0.225],
], np.float32)
GT_BOXES = np.array([[
    [0.0, 0.0, 0.5, 0.5],
    [0.5, 0.5, 1.0, 0.9],
    [0.5, 0.0, 1.0, 0.5],
    [0.1, 0.55, 0.4, 0.8],
], [[0.0, 0.0, 0.5, 0.5]] * 4], np.float32)
GT_CLASSES = np.array([[3, 0, -1, 1], [-1, -1, -1, -1]], np.int32)
GT_VALID = np.array([[True, True, False, True], [False] * 4])


def _numpy_match(anchors, boxes, valid, matched, unmatched, force):
    """Independent matcher for one frame, written with loops."""
    def iou(a, b):
        inter = (max(0.0, min(a[2], b[2]) - max(a[0], b[0])) *
                 max(0.0, min(a[3], b[3]) - max(a[1], b[1])))
        union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
        return inter / union
    out = []
    for anchor in anchors:
        best, best_k = -1.0, -1
        for k, box in enumerate(boxes):
            if valid[k] and iou(box, anchor) > best:
                best, best_k = iou(box, anchor), k
        out.append(best_k if best >= matched else (-1 if best < unmatched else -2))
    if force:
        for k in reversed(range(len(boxes))):  # reversed: the first box wins a shared anchor
            if valid[k]:
                out[int(np.argmax([iou(boxes[k], a) for a in anchors]))] = k
    return np.array(out)


def test_hand_worked_with_ignore_band():
    t = target_assigner.assign_targets(ANCHORS, GT_BOXES, GT_CLASSES, GT_VALID,
                                       unmatched_threshold=0.4)
    np.testing.assert_array_equal(t["matches"], [[0, 3, -1, 1, -1, 0, -2], [-1] * 7])
    np.testing.assert_array_equal(t["cls_targets"], [[4, 2, 0, 1, 0, 4, 0], [0] * 7])
    np.testing.assert_array_equal(t["cls_weights"], [[1, 1, 1, 1, 1, 1, 0], [1] * 7])
    np.testing.assert_array_equal(t["reg_weights"], [[1, 1, 0, 1, 0, 1, 0], [0] * 7])
    np.testing.assert_array_equal(t["num_positives"], [4.0, 0.0])
    reg = t["reg_targets"].numpy()
    np.testing.assert_allclose(reg[0, 0], [0, 0, 0, 0], rtol=1e-6, atol=1e-5)
    np.testing.assert_allclose(reg[0, 3], [0, 10 * -0.05 / 0.5, 0, 5 * np.log(0.8)],
                               rtol=1e-6, atol=1e-5)
    np.testing.assert_allclose(reg[0, 1], box_coder.encode(GT_BOXES[0, 3:4], ANCHORS[1:2])[0],
                               rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(reg[0, [2, 4, 6]], np.zeros((3, 4)))
    np.testing.assert_array_equal(reg[1], np.zeros((7, 4)))


def test_no_ignore_band_and_no_force_match():
    m = target_assigner.match(ANCHORS, GT_BOXES, GT_VALID, 0.5, 0.5, force_match=False)
    np.testing.assert_array_equal(m, [[0, -1, -1, 1, -1, 0, -1], [-1] * 7])


def test_shared_best_anchor_goes_to_first_box():
    # Both boxes overlap a6 most (IoU 0.356 and 0.089) and no anchor reaches 0.5.
    boxes = [[[0.0, 0.0, 0.2, 0.2], [0.0, 0.0, 0.1, 0.1]]]
    m = target_assigner.match(ANCHORS, boxes, [[True, True]])
    np.testing.assert_array_equal(m, [[-1, -1, -1, -1, -1, -1, 0]])


def test_no_ground_truth_at_all():
    t = target_assigner.assign_targets(ANCHORS, np.zeros((2, 0, 4), np.float32),
                                       np.zeros((2, 0), np.int32), np.zeros((2, 0), bool))
    np.testing.assert_array_equal(t["matches"], -np.ones((2, 7)))
    np.testing.assert_array_equal(t["cls_weights"], np.ones((2, 7)))


def test_garbage_padding_gives_finite_targets():
    boxes = GT_BOXES.copy()
    boxes[0, 2] = [0.9, 0.9, 0.1, 0.1]  # inverted box under the padding mask
    t = target_assigner.assign_targets(ANCHORS, boxes, GT_CLASSES, GT_VALID)
    assert np.all(np.isfinite(t["reg_targets"].numpy()))


def test_random_against_numpy_matcher_in_graph_mode():
    rng = np.random.default_rng(0)
    lo = rng.uniform(0, 0.7, (40, 2))
    anchors = np.concatenate([lo, lo + rng.uniform(0.1, 0.3, (40, 2))], -1).astype(np.float32)
    lo = rng.uniform(0, 0.7, (3, 6, 2))
    boxes = np.concatenate([lo, lo + rng.uniform(0.1, 0.3, (3, 6, 2))], -1).astype(np.float32)
    valid = rng.uniform(size=(3, 6)) < 0.7
    fn = tf.function(target_assigner.match, input_signature=[
        tf.TensorSpec([None, 4]), tf.TensorSpec([None, None, 4]),
        tf.TensorSpec([None, None], tf.bool)])
    got = fn(anchors, boxes, valid).numpy()
    for b in range(3):
        want = _numpy_match(anchors, boxes[b], valid[b], 0.5, 0.5, True)
        np.testing.assert_array_equal(got[b], want)
    got = target_assigner.match(anchors, boxes, valid, 0.5, 0.3, False).numpy()
    for b in range(3):
        want = _numpy_match(anchors, boxes[b], valid[b], 0.5, 0.3, False)
        np.testing.assert_array_equal(got[b], want)


def test_bad_thresholds():
    with pytest.raises(ValueError, match="unmatched_threshold=0.6"):
        target_assigner.match(ANCHORS, GT_BOXES, GT_VALID, 0.5, 0.6)


def test_unbatched_ground_truth_is_refused():
    with pytest.raises(ValueError, match="Add a batch axis"):
        target_assigner.match(ANCHORS, GT_BOXES[0], GT_VALID[0])
