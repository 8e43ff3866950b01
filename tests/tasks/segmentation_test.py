"""SegmentationTask: hand-worked masks, the flip merge, scoring at the annotation's size."""
import numpy as np
import pytest
import tensorflow as tf

from patchwork_tf.data import clips as clips_lib
from patchwork_tf.metrics import davis
from patchwork_tf.tasks import segmentation


def test_segmentation_mask_is_positive_logit():
    logits = tf.constant([[[[-2.0], [0.0]], [[0.5], [3.0]]]])
    out = segmentation.SegmentationTask()({"mask_logits": logits})
    assert sorted(out) == ["segmentation_mask", "segmentation_probability"]
    np.testing.assert_array_equal(out["segmentation_mask"], [[[0, 0], [1, 1]]])
    assert out["segmentation_mask"].dtype == tf.uint8
    np.testing.assert_allclose(out["segmentation_probability"],
                               1 / (1 + np.exp(-logits.numpy()[..., 0])), rtol=1e-6)
    with pytest.raises(ValueError, match="mask_logits"):
        segmentation.SegmentationTask()({"logits": logits})


def test_segmentation_mask_at_the_input_size_thresholds_the_resized_logits():
    # Row 0 of the 2x2 logits goes -2 -> 1; bilinearly doubled (half-pixel centres) the 4x4
    # row 0 is -2, -1.25, 0.25, 1: background, background, foreground, foreground.
    logits = tf.constant([[[[-2.0], [1.0]], [[-2.0], [1.0]]]])
    out = segmentation.SegmentationTask()({"mask_logits": logits}, tf.constant([4, 4]))
    np.testing.assert_array_equal(out["segmentation_mask"][0], [[0, 0, 1, 1]] * 4)
    np.testing.assert_allclose(out["segmentation_probability"][0, 0],
                               1 / (1 + np.exp(-np.array([-2.0, -1.25, 0.25, 1.0]))),
                               rtol=1e-6)


def test_flip_averages_the_mirrored_logits_back():
    logits = tf.constant([[[[2.0], [-4.0]]], [[[1.0], [3.0]]]])  # frame; mirror image
    out = segmentation.SegmentationTask().predictions({"mask_logits": logits}, flip=True)
    # Flipped back the mirror is [3, 1]: the means are 2.5 and -1.5.
    np.testing.assert_allclose(out["segmentation_probability"],
                               1 / (1 + np.exp(-np.array([[[2.5, -1.5]]]))), rtol=1e-6)
    np.testing.assert_array_equal(out["segmentation_mask"], [[[1, 0]]])


def test_reward_metric_is_frame_j_of_the_predicted_mask():
    logits = np.full((2, 2, 2, 1), -1.0, np.float32)
    logits[0, 0] = 1.0          # stream 0 predicts the top row
    ground_truth = {"mask": np.array([[[1, 1], [1, 1]], [[0, 0], [0, 0]]], np.uint8)}
    f = segmentation.SegmentationTask().reward_metric(ground_truth,
                                                      {"mask_logits": tf.constant(logits)})
    np.testing.assert_allclose(f, [0.5, 1.0])   # 2 / 4; both empty -> 1


def test_a_prediction_of_another_size_is_scored_by_its_resized_probability():
    task = segmentation.SegmentationTask(frame_selection=davis.ALL_FRAMES)
    # Probabilities .9 and .2: bilinearly doubled (half-pixel centres) the row is
    # .9, .725, .375, .2, above 0.5 in the first two pixels.
    prediction = task({"mask_logits": tf.math.log(
        tf.constant([[[[9.0], [0.25]]]]))})
    annotation = np.array([[1, 1, 0, 0]] * 2, np.uint8)
    np.testing.assert_array_equal(task.mask_at(prediction, (2, 4)), annotation.astype(bool))
    metric = task.new_metric()
    task.add_frame(metric, "seq", 0, {clips_lib.MASK: annotation}, prediction)
    assert task.result(metric)["J"] == pytest.approx(1.0)
