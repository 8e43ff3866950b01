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


class DetectionLossTest(tf.test.TestCase):

    def test_focal_hand_worked(self):
        # Logit 0 -> p = 0.5, (1 - p_t)^2 = 0.25 in both columns; target column weighs 0.25, the
        # background column 0.75: (0.25 + 0.75) * 0.25 * ln 2.
        loss = detection.sigmoid_focal_loss([[[0.0, 0.0]]], [[1]], [[1.0]])
        self.assertAllClose(loss, [[0.25 * np.log(2.0)]])
        # A confident correct background anchor: logits (+inf-ish, -inf-ish) cost almost nothing.
        loss = detection.sigmoid_focal_loss([[[20.0, -20.0]]], [[0]], [[1.0]])
        self.assertAllClose(loss, [[0.0]], atol=1e-12)

    def test_smooth_l1_hand_worked(self):
        loss = detection.smooth_l1_loss(
            [[[0.5, -2.0, 0.0, 1.0]]], [[[0.0, 0.0, 0.0, 0.0]]], [[1.0]])
        self.assertAllClose(loss, [[0.125 + 1.5 + 0.0 + 0.5]])

    def test_against_numpy_and_tf_keras(self):
        rng = np.random.default_rng(0)
        logits = rng.normal(0, 3, (2, 6, 4)).astype(np.float32)
        targets = rng.integers(0, 4, (2, 6)).astype(np.int32)
        weights = (rng.uniform(size=(2, 6)) < 0.8).astype(np.float32)
        got = self.evaluate(detection.sigmoid_focal_loss(logits, targets, weights))
        self.assertAllClose(got, _numpy_focal(logits, targets, weights), rtol=1e-5, atol=1e-6)
        keras_focal = tf_keras.losses.BinaryFocalCrossentropy(
            apply_class_balancing=True, alpha=0.25, gamma=2.0, from_logits=True,
            reduction=tf_keras.losses.Reduction.NONE)
        # tf_keras averages over the class axis; ours sums.
        keras = keras_focal(np.eye(4, dtype=np.float32)[targets], logits) * 4 * weights
        self.assertAllClose(got, keras, rtol=1e-4, atol=1e-5)

    def test_detection_loss_normalizes_by_batch_positives(self):
        rng = np.random.default_rng(1)
        logits = rng.normal(0, 1, (2, 5, 3)).astype(np.float32)
        encodings = rng.normal(0, 1, (2, 5, 4)).astype(np.float32)
        targets = dict(
            cls_targets=np.array([[0, 2, 0, 1, 0], [0, 0, 0, 0, 0]], np.int32),
            cls_weights=np.array([[1, 1, 0, 1, 1], [1, 1, 1, 1, 1]], np.float32),
            reg_targets=rng.normal(0, 1, (2, 5, 4)).astype(np.float32),
            reg_weights=np.array([[0, 1, 0, 1, 0], [0, 0, 0, 0, 0]], np.float32))
        out = self.evaluate(detection.detection_loss(logits, encodings, targets, 2.0))
        cls = _numpy_focal(logits, targets["cls_targets"], targets["cls_weights"]).sum() / 2
        loc = _numpy_smooth_l1(encodings, targets["reg_targets"], targets["reg_weights"]).sum() / 2
        self.assertAllClose(out["classification"], cls, rtol=1e-5)
        self.assertAllClose(out["localization"], loc, rtol=1e-5)
        self.assertAllClose(out["total"], cls + 2.0 * loc, rtol=1e-5)
        self.assertEqual(out["num_positives"], 2.0)

    def test_no_positives_divides_by_one(self):
        targets = dict(cls_targets=np.zeros((1, 2), np.int32),
                       cls_weights=np.ones((1, 2), np.float32),
                       reg_targets=np.zeros((1, 2, 4), np.float32),
                       reg_weights=np.zeros((1, 2), np.float32))
        out = detection.detection_loss(np.zeros((1, 2, 2), np.float32),
                                       np.ones((1, 2, 4), np.float32), targets)
        # Two background anchors at p = 0.5: each 0.25 * ln 2, as in test_focal_hand_worked.
        self.assertAllClose(out["classification"], 2 * 0.25 * np.log(2.0))
        self.assertEqual(out["localization"], 0.0)

    def test_bad_rank(self):
        with pytest.raises(ValueError, match=r"class_logits must have shape \[B, N, C \+ 1\]"):
            detection.sigmoid_focal_loss(np.zeros((5, 3), np.float32), [[0]], [[1.0]])
