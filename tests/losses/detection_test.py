"""Tests for patchwork_tf.losses.detection: hand-worked values, an independent numpy formula and
the focal loss of tf_keras."""
import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from patchwork_tf.losses import detection


def _numpy_focal(logits, targets, weights, alpha=0.25, gamma=2.0):
    """The focal loss written from the paper's case split, in float64."""
    p = 1.0 / (1.0 + np.exp(-logits.astype(np.float64)))
    y = np.eye(logits.shape[-1])[targets]
    loss = np.where(y == 1, -alpha * (1 - p) ** gamma * np.log(p),
                    -(1 - alpha) * p ** gamma * np.log(1 - p))
    return loss.sum(-1) * weights


def _numpy_smooth_l1(pred, target, weights):
    d = np.abs(pred.astype(np.float64) - target)
    return np.where(d < 1, 0.5 * d * d, d - 0.5).sum(-1) * weights


# Focal and smooth-L1 losses (RetinaNet).

def test_focal_hand_worked():
    # Logit 0 -> p = 0.5, (1 - p_t)^2 = 0.25 in both columns; target column weighs 0.25, the
    # background column 0.75: (0.25 + 0.75) * 0.25 * ln 2.
    loss = detection.sigmoid_focal_loss([[[0.0, 0.0]]], [[1]], [[1.0]])
    np.testing.assert_allclose(loss, [[0.25 * np.log(2.0)]], rtol=1e-6, atol=1e-6)
    # A confident correct background anchor: logits (+inf-ish, -inf-ish) cost almost nothing.
    loss = detection.sigmoid_focal_loss([[[20.0, -20.0]]], [[0]], [[1.0]])
    np.testing.assert_allclose(loss, [[0.0]], rtol=1e-6, atol=1e-12)


def test_smooth_l1_hand_worked():
    loss = detection.smooth_l1_loss(
        [[[0.5, -2.0, 0.0, 1.0]]], [[[0.0, 0.0, 0.0, 0.0]]], [[1.0]])
    np.testing.assert_allclose(loss, [[0.125 + 1.5 + 0.0 + 0.5]], rtol=1e-6, atol=1e-6)


def test_against_numpy_and_tf_keras():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, (2, 6, 4)).astype(np.float32)
    targets = rng.integers(0, 4, (2, 6)).astype(np.int32)
    weights = (rng.uniform(size=(2, 6)) < 0.8).astype(np.float32)
    got = detection.sigmoid_focal_loss(logits, targets, weights).numpy()
    np.testing.assert_allclose(got, _numpy_focal(logits, targets, weights), rtol=1e-5, atol=1e-6)
    keras_focal = tf_keras.losses.BinaryFocalCrossentropy(
        apply_class_balancing=True, alpha=0.25, gamma=2.0, from_logits=True,
        reduction=tf_keras.losses.Reduction.NONE)
    # tf_keras averages over the class axis; ours sums.
    keras = keras_focal(np.eye(4, dtype=np.float32)[targets], logits) * 4 * weights
    np.testing.assert_allclose(got, keras, rtol=1e-4, atol=1e-5)


def test_detection_loss_normalizes_by_batch_positives():
    rng = np.random.default_rng(1)
    logits = rng.normal(0, 1, (2, 5, 3)).astype(np.float32)
    encodings = rng.normal(0, 1, (2, 5, 4)).astype(np.float32)
    targets = dict(
        cls_targets=np.array([[0, 2, 0, 1, 0], [0, 0, 0, 0, 0]], np.int32),
        cls_weights=np.array([[1, 1, 0, 1, 1], [1, 1, 1, 1, 1]], np.float32),
        reg_targets=rng.normal(0, 1, (2, 5, 4)).astype(np.float32),
        reg_weights=np.array([[0, 1, 0, 1, 0], [0, 0, 0, 0, 0]], np.float32))
    out = tf.nest.map_structure(
        np.asarray, detection.detection_loss(logits, encodings, targets, 2.0))
    cls = _numpy_focal(logits, targets["cls_targets"], targets["cls_weights"]).sum() / 2
    loc = _numpy_smooth_l1(encodings, targets["reg_targets"], targets["reg_weights"]).sum() / 2
    np.testing.assert_allclose(out["classification"], cls, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out["localization"], loc, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out["total"], cls + 2.0 * loc, rtol=1e-5, atol=1e-6)
    assert out["num_positives"] == 2.0


def test_no_positives_divides_by_one():
    targets = dict(cls_targets=np.zeros((1, 2), np.int32),
                   cls_weights=np.ones((1, 2), np.float32),
                   reg_targets=np.zeros((1, 2, 4), np.float32),
                   reg_weights=np.zeros((1, 2), np.float32))
    out = detection.detection_loss(np.zeros((1, 2, 2), np.float32),
                                   np.ones((1, 2, 4), np.float32), targets)
    # Two background anchors at p = 0.5: each 0.25 * ln 2, as in test_focal_hand_worked.
    np.testing.assert_allclose(out["classification"], 2 * 0.25 * np.log(2.0),
                               rtol=1e-6, atol=1e-6)
    assert out["localization"] == 0.0


def test_bad_rank():
    with pytest.raises(ValueError, match=r"class_logits must have shape \[B, N, C \+ 1\]"):
        detection.sigmoid_focal_loss(np.zeros((5, 3), np.float32), [[0]], [[1.0]])


# Six disjoint anchors, a 2 x 3 grid over the frame: zero box codes decode to the anchors, so
# the miner's NMS (IoU > 0.99) drops none of them.
_GRID_ANCHORS = np.array([[y, x, y + 0.5, x + 1 / 3] for y in (0.0, 0.5)
                          for x in (0.0, 1 / 3, 2 / 3)], np.float32)
_NEG = -1  # target_assigner.NEGATIVE


def _logits_for_losses(ks, positive):
    """[1, 6, 2] logits whose sigmoid cross-entropy over both columns is ln(2 k) per anchor:
    the target column's logit 0 costs ln 2, the other column's logit ln(k - 1) costs
    softplus(ln(k - 1)) = ln k."""
    other = np.log(np.asarray(ks, np.float64) - 1.0)
    background, object_ = np.zeros(6), other.copy()
    background[positive], object_[positive] = other[positive], 0.0
    return np.stack([background, object_], -1)[None].astype(np.float32)


def _grid_targets(positive=None):
    matches = np.full((1, 6), _NEG, np.int32)
    cls_targets = np.zeros((1, 6), np.int32)
    reg_weights = np.zeros((1, 6), np.float32)
    if positive is not None:
        matches[0, positive], cls_targets[0, positive], reg_weights[0, positive] = 0, 1, 1.0
    return dict(cls_targets=cls_targets, cls_weights=np.ones((1, 6), np.float32),
                reg_targets=np.zeros((1, 6, 4), np.float32), reg_weights=reg_weights,
                matches=matches)


def _numpy_iou(a, b):
    inter = (np.clip(np.minimum(a[2], b[2]) - np.maximum(a[0], b[0]), 0, None)
             * np.clip(np.minimum(a[3], b[3]) - np.maximum(a[1], b[1]), 0, None))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union


def _numpy_mined(losses, matches, boxes, num_hard, iou_threshold, ratio, min_negatives):
    """The OD API's HardExampleMiner written out for one image: greedy NMS by loss, then all
    kept positives and the first max(min, floor(ratio * positives)) kept negatives."""
    kept = []
    for i in np.argsort(-losses, kind="stable"):
        if len(kept) < num_hard and all(_numpy_iou(boxes[i], boxes[j]) <= iou_threshold
                                        for j in kept):
            kept.append(i)
    num_positives = sum(matches[i] >= 0 for i in kept)
    allowed = max(min_negatives, int(np.floor(ratio * num_positives)))
    mask, negatives = np.zeros(len(losses)), 0
    for i in kept:
        if matches[i] >= 0:
            mask[i] = 1
        elif matches[i] == _NEG and negatives < allowed:
            mask[i], negatives = 1, negatives + 1
    return mask


# SSD loss: 3:1 hard example mining (the OD API's HardExampleMiner).

def test_hand_worked_three_negatives_per_positive():
    # Anchor 2 is the one positive; negatives 0, 1, 3, 4, 5 cost ln 4, ln 16, ln 10, ln 6,
    # ln 8 and the positive ln 4. 3:1 mining keeps max(3, 3 * 1) = 3 negatives, the hardest:
    # anchors 1, 3, 5. Classification: (ln 4 + ln 16 + ln 10 + ln 8) / 1 = ln 5120 = 8.5409.
    # The positive's codes (0.5, -2, 0, 1) against target 0: smooth-L1 0.125 + 1.5 + 0 + 0.5
    # = 2.125. Total 10.6659.
    logits = _logits_for_losses([2, 8, 2, 5, 3, 4], positive=2)
    encodings = np.zeros((1, 6, 4), np.float32)
    encodings[0, 2] = [0.5, -2.0, 0.0, 1.0]
    targets = _grid_targets(positive=2)
    cls_losses = detection.sigmoid_cross_entropy_loss(
        logits, targets["cls_targets"], targets["cls_weights"])
    np.testing.assert_allclose(cls_losses, np.log([[4.0, 16.0, 4.0, 10.0, 6.0, 8.0]]),
                               rtol=1e-6, atol=1e-6)
    mask = detection.hard_example_mask(cls_losses, targets["matches"], _GRID_ANCHORS[None])
    np.testing.assert_array_equal(mask, [[0, 1, 1, 1, 0, 1]])
    out = tf.nest.map_structure(np.asarray, detection.ssd_detection_loss(
        logits, encodings, targets, _GRID_ANCHORS))
    np.testing.assert_allclose(out["classification"], np.log(5120.0), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(out["localization"], 2.125, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(out["total"], np.log(5120.0) + 2.125, rtol=1e-6, atol=1e-6)
    assert out["num_positives"] == 1.0
    assert out["num_negatives"] == 3.0


def test_an_image_without_positives_keeps_the_minimum_of_three_negatives():
    # Negatives cost ln 4, ln 16, ln 6, ln 10, ln 6, ln 8: the hardest three are ln 16, ln 10,
    # ln 8 -> ln 1280 = 7.1546, divided by max(0 positives, 1).
    logits = _logits_for_losses([2, 8, 3, 5, 3, 4], positive=[])
    out = detection.ssd_detection_loss(logits, np.zeros((1, 6, 4), np.float32),
                                       _grid_targets(), _GRID_ANCHORS)
    np.testing.assert_allclose(out["classification"], np.log(1280.0), rtol=1e-6, atol=1e-6)
    assert out["num_negatives"] == 3.0


def test_nms_drops_a_near_duplicate_negative():
    # Anchor 5 (ln 8) is moved onto anchor 1 (ln 16): IoU 1 > 0.99, so NMS drops it and the
    # third negative mined is anchor 4 (ln 6): ln 4 + ln 16 + ln 10 + ln 6 = ln 3840.
    anchors = _GRID_ANCHORS.copy()
    anchors[5] = anchors[1]
    logits = _logits_for_losses([2, 8, 2, 5, 3, 4], positive=2)
    out = detection.ssd_detection_loss(logits, np.zeros((1, 6, 4), np.float32),
                                       _grid_targets(positive=2), anchors)
    np.testing.assert_allclose(out["classification"], np.log(3840.0), rtol=1e-6, atol=1e-6)


def test_num_hard_examples_caps_the_kept_anchors_positives_included():
    # The OD API's quirk, kept: NMS keeps only the 2 highest losses (anchors 1 and 3, ln 16
    # and ln 10), so the positive (ln 4) is dropped from both terms, yet still normalizes.
    logits = _logits_for_losses([2, 8, 2, 5, 3, 4], positive=2)
    encodings = np.zeros((1, 6, 4), np.float32)
    encodings[0, 2] = [0.5, -2.0, 0.0, 1.0]
    out = detection.ssd_detection_loss(logits, encodings, _grid_targets(positive=2),
                                       _GRID_ANCHORS, num_hard_examples=2)
    np.testing.assert_allclose(out["classification"], np.log(160.0), rtol=1e-6, atol=1e-6)
    assert out["localization"] == 0.0
    assert out["num_positives"] == 1.0


def test_ignored_anchors_are_never_mined():
    logits = _logits_for_losses([2, 8, 2, 5, 3, 4], positive=2)
    targets = _grid_targets(positive=2)
    targets["matches"][0, 1] = -2  # target_assigner.IGNORED
    targets["cls_weights"][0, 1] = 0.0
    mask = detection.hard_example_mask(
        detection.sigmoid_cross_entropy_loss(logits, targets["cls_targets"],
                                             targets["cls_weights"]),
        targets["matches"], _GRID_ANCHORS[None])
    # Negatives left: 0 (ln 4), 3 (ln 10), 4 (ln 6), 5 (ln 8) -> 3, 5, 4.
    np.testing.assert_array_equal(mask, [[0, 0, 1, 1, 1, 1]])


def test_against_a_numpy_miner():
    rng = np.random.default_rng(3)
    batch, num_anchors = 3, 40
    centers = rng.uniform(0.2, 0.8, (batch, num_anchors, 2))
    sizes = rng.uniform(0.1, 0.4, (batch, num_anchors, 2))
    boxes = np.concatenate([centers - sizes / 2, centers + sizes / 2], -1).astype(np.float32)
    losses = rng.uniform(0, 5, (batch, num_anchors)).astype(np.float32)
    matches = rng.choice([0, 1, _NEG, _NEG, _NEG, _NEG, -2], (batch, num_anchors))
    matches[2] = np.where(matches[2] >= 0, _NEG, matches[2])  # an image without positives
    settings = dict(num_hard_examples=25, iou_threshold=0.5, max_negatives_per_positive=1.5,
                    min_negatives_per_image=4)
    got = detection.hard_example_mask(losses, matches, boxes, **settings).numpy()
    for b in range(batch):
        np.testing.assert_array_equal(got[b], _numpy_mined(
            losses[b], matches[b], boxes[b], 25, 0.5, 1.5, 4))


def test_gradients_flow_only_through_mined_anchors():
    logits = tf.constant(_logits_for_losses([2, 8, 2, 5, 3, 4], positive=2))
    with tf.GradientTape() as tape:
        tape.watch(logits)
        out = detection.ssd_detection_loss(logits, np.zeros((1, 6, 4), np.float32),
                                           _grid_targets(positive=2), _GRID_ANCHORS)
    gradient = tape.gradient(out["total"], logits).numpy()
    np.testing.assert_array_equal(np.any(gradient != 0, axis=-1),
                                  [[False, True, True, True, False, True]])


def test_bad_miner_settings():
    with pytest.raises(ValueError, match="max_negatives_per_positive > 0"):
        detection.hard_example_mask(np.zeros((1, 2)), np.zeros((1, 2)),
                                    np.zeros((1, 2, 4)), max_negatives_per_positive=0)
