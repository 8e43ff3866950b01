"""DetectionTask: SSD decoding with NMS under the OD API's names, reward and mAP on them."""
import numpy as np
import pytest
import tensorflow as tf

from patchwork_tf.data import clips as clips_lib
from patchwork_tf.data import videos
from patchwork_tf.tasks import detection
from patchwork_tf.training import stage1


@pytest.fixture(scope="module")
def task():
    config = stage1.Stage1Config("detection", frame_size=(64, 64), num_extra_layers=1)
    model = detection.DetectionTask.build_model(config, num_classes=3)
    return detection.DetectionTask.for_model(model, config, max_detections=5,
                                             score_threshold=0.5)


def _one_detection(task, anchor=7, column=2, logit=4.0):
    num_anchors = int(task.anchors.shape[0])
    logits = np.full((1, num_anchors, 4), -10.0, np.float32)
    logits[0, anchor, column] = logit
    return {"box_encodings": tf.zeros((1, num_anchors, 4)), "class_logits": logits}


def test_detection_decodes_a_zero_code_to_its_anchor(task):
    assert task.num_classes == 3 and task.max_detections == 5
    # Anchor 7, class 1 (0-based; column 0 is the background).
    out = task(_one_detection(task), tf.constant([480, 640]))
    # The TF Object Detection API's exported names and dtypes; classes 1-based.
    assert sorted(out) == sorted(task.prediction_keys) == [
        "detection_boxes", "detection_classes", "detection_scores", "num_detections"]
    assert all(value.dtype == tf.float32 for value in out.values())
    assert out["num_detections"].numpy().tolist() == [1.0]
    assert out["detection_classes"][0, 0] == 2.0  # the model's class 1 (0-based)
    np.testing.assert_allclose(out["detection_scores"][0, 0], 1 / (1 + np.exp(-4.0)),
                               rtol=1e-6)
    np.testing.assert_allclose(out["detection_boxes"][0, 0], np.clip(task.anchors[7], 0, 1),
                               atol=1e-6)
    with pytest.raises(ValueError, match="box_encodings"):
        task({"class_logits": _one_detection(task)["class_logits"]})


def test_reward_and_map_read_the_same_predictions(task):
    outputs = _one_detection(task)
    box = np.clip(task.anchors[7].numpy(), 0, 1)
    # Eq. 3: the one detection matches the ground-truth box exactly; a second, unmatched
    # ground-truth box halves f.
    ground_truth = {"boxes": np.array([[box, [0.0, 0.0, 0.1, 0.1]]], np.float32),
                    "valid": np.array([[True, True]])}
    np.testing.assert_allclose(task.reward_metric(ground_truth, outputs), [0.5], atol=1e-6)
    # mAP scores the 1-based class back as the data's class 1.
    metric = task.new_metric()
    truth = {videos.FRAME: np.zeros((64, 64, 3), np.uint8),
             clips_lib.BOXES: box[None], clips_lib.CLASSES: np.array([1], np.int32)}
    task.add_frame(metric, "v", 0, truth, task.predictions(outputs))
    assert task.result(metric)["mAP"] == pytest.approx(1.0)
    wrong_class = dict(truth, **{clips_lib.CLASSES: np.array([0], np.int32)})
    metric = task.new_metric()
    task.add_frame(metric, "v", 0, wrong_class, task.predictions(outputs))
    assert task.result(metric)["mAP"] == pytest.approx(0.0)


def test_a_task_for_served_detections_cannot_decode():
    served = detection.DetectionTask.from_metadata({"num_classes": 30})
    assert served.num_classes == 30
    with pytest.raises(ValueError, match="without anchors"):
        served.predictions({"box_encodings": tf.zeros((1, 2, 4)),
                            "class_logits": tf.zeros((1, 2, 31))})
