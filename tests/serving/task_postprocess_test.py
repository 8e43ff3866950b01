"""Task post-processing callables: a hand-worked mask and SSD decoding with NMS."""
import numpy as np
import pytest
import tensorflow as tf

from patchwork_tf.models import ssdlite
from patchwork_tf.serving import task_postprocess


def test_segmentation_mask_is_positive_logit():
    logits = tf.constant([[[[-2.0], [0.0]], [[0.5], [3.0]]]])
    out = task_postprocess.segmentation_postprocess({"mask_logits": logits})
    assert sorted(out) == ["segmentation_mask", "segmentation_probability"]
    np.testing.assert_array_equal(out["segmentation_mask"], [[[0, 0], [1, 1]]])
    assert out["segmentation_mask"].dtype == tf.uint8
    np.testing.assert_allclose(out["segmentation_probability"],
                               1 / (1 + np.exp(-logits.numpy()[..., 0])), rtol=1e-6)
    with pytest.raises(ValueError, match="mask_logits"):
        task_postprocess.segmentation_postprocess({"logits": logits})


def test_segmentation_mask_at_the_input_size_thresholds_the_resized_logits():
    # Row 0 of the 2x2 logits goes -2 -> 1; bilinearly doubled (half-pixel centres) the 4x4
    # row 0 is -2, -1.25, 0.25, 1: background, background, foreground, foreground.
    logits = tf.constant([[[[-2.0], [1.0]], [[-2.0], [1.0]]]])
    out = task_postprocess.segmentation_postprocess({"mask_logits": logits},
                                                    tf.constant([4, 4]))
    np.testing.assert_array_equal(out["segmentation_mask"][0], [[0, 0, 1, 1]] * 4)
    np.testing.assert_allclose(out["segmentation_probability"][0, 0],
                               1 / (1 + np.exp(-np.array([-2.0, -1.25, 0.25, 1.0]))),
                               rtol=1e-6)


def test_detection_decodes_a_zero_code_to_its_anchor():
    model = ssdlite.ssdlite_mobilenet_v2((64, 64, 3), num_classes=3, alpha=0.35,
                                         num_extra_layers=1)
    post = task_postprocess.DetectionPostprocess(model, max_detections=5, score_threshold=0.5)
    num_anchors = int(post.anchors.shape[0])
    logits = np.full((1, num_anchors, 4), -10.0, np.float32)
    logits[0, 7, 2] = 4.0  # anchor 7, class 1 (0-based; column 0 is the background)
    out = post({"box_encodings": tf.zeros((1, num_anchors, 4)), "class_logits": logits},
               tf.constant([480, 640]))
    # The TF Object Detection API's exported names and dtypes; classes 1-based.
    assert sorted(out) == ["detection_boxes", "detection_classes", "detection_scores",
                           "num_detections"]
    assert all(value.dtype == tf.float32 for value in out.values())
    assert out["num_detections"].numpy().tolist() == [1.0]
    assert out["detection_classes"][0, 0] == 2.0  # the model's class 1 (0-based)
    np.testing.assert_allclose(out["detection_scores"][0, 0], 1 / (1 + np.exp(-4.0)),
                               rtol=1e-6)
    np.testing.assert_allclose(out["detection_boxes"][0, 0], np.clip(post.anchors[7], 0, 1),
                               atol=1e-6)
    with pytest.raises(ValueError, match="box_encodings"):
        post({"class_logits": logits})
