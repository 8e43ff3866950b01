"""SavedModel runner on hand-made SavedModels whose stream signatures are known.

The stand-in SavedModel segments a frame of any size at its own size (as an export does):
foreground where red >= 128, `action` counts the steps since the warm start; its detection
twin serves one fixed box under the TF Object Detection API's names. The end-to-end
comparison with the in-process twin on an exported SSDLite is in tests/evaluate_test.py.
"""
import json

import numpy as np
import pytest
import tensorflow as tf

from patchwork_tf.evaluation import exported
from patchwork_tf.evaluation import stream
from patchwork_tf.serving import metadata as metadata_lib

SIZE = 4


def _record(**changes):
    record = {"version": metadata_lib.VERSION, "task": "segmentation", "frame_size": [SIZE, SIZE],
              "predictions": ["segmentation_mask", "segmentation_probability"], "m": 2,
              "n": 1, "num_actions": 4, "policy": "scanning", "policy_cell": None,
              "scan_order": [0, 1, 2, 3], "history_alpha": 0.5, "change_cue": False,
              "fold_batch_norm": True, "state": {"layout": "compact", "bytes_per_stream": 1000},
              "flops": {"step": 300, "full_frame": 1000, "policy": 20}}
    record.update(changes)
    return record


def _segmentation(frame):
    mask = tf.cast(frame[None, ..., 0] >= 128, tf.uint8)
    return {"segmentation_mask": mask, "segmentation_probability": tf.cast(mask, tf.float32)}


def _detection(frame):
    del frame
    return {"detection_boxes": tf.constant([[[0.25, 0.0, 0.75, 0.5], [0.0, 0.0, 0.0, 0.0]]]),
            "detection_scores": tf.constant([[0.9, 0.0]]),
            "detection_classes": tf.constant([[2.0, 1.0]]),
            "num_detections": tf.constant([1.0])}


class _StandIn(tf.Module):
    """Stream signatures of a served segmenter (or detector), with or without a metadata
    function."""

    def __init__(self, record, predictions=_segmentation):
        super().__init__()
        self.steps = tf.Variable(0)
        self._predictions = predictions
        spec = tf.TensorSpec([None, None, 3], tf.uint8)
        self.stream_warm_start = tf.function(self._warm_start, input_signature=[spec])
        self.stream_step = tf.function(self._step, input_signature=[spec])
        if record is not None:
            text = json.dumps(record)
            self.metadata = tf.function(lambda: tf.constant(text), input_signature=[])

    def _outputs(self, frame, action):
        return dict(self._predictions(frame), action=action[None], next_action=action[None] + 1)

    def _warm_start(self, frame):
        self.steps.assign(0)
        return self._outputs(frame, tf.constant(-1))

    def _step(self, frame):
        self.steps.assign_add(1)
        return self._outputs(frame, self.steps.read_value() - 1)


def _save(tmp_path, record, predictions=_segmentation):
    path = str(tmp_path / "saved_model")
    tf.saved_model.save(_StandIn(record, predictions), path)
    return path


def _clip(length=3):
    frames = np.zeros((length, SIZE, SIZE, 3), np.uint8)
    frames[:, :, :2, 0] = 255
    mask = np.zeros((length, SIZE, SIZE), np.uint8)
    mask[:, :, :2] = 1
    return {"frames": frames, "mask": mask, "clip_id": "c0"}


@pytest.fixture(scope="module")
def stand_in(tmp_path_factory):
    return exported.load(_save(tmp_path_factory.mktemp("stand_in"), _record()))


def test_runner_streams_uint8_frames_and_reports_the_exported_flops(stand_in):
    runner = exported.SavedModelRunner(stand_in)
    result = stream.evaluate_stream(runner, [_clip()], interval=1, warmup_calls=1)
    # The stand-in predicts the ground truth on every frame.
    assert result.accuracy["J"] == pytest.approx(1.0)
    assert result.actions == [0, 1, 2]
    assert result.job_mflops * 1e6 == pytest.approx(320)
    assert result.startup_mflops * 1e6 == pytest.approx(1000)
    assert result.settings["policy"] == "scanning"


def test_frames_of_another_size_are_resized_and_scored_at_their_own_size(stand_in):
    runner = exported.SavedModelRunner(stand_in)
    clip = _clip()
    clip = {"frames": np.repeat(np.repeat(clip["frames"], 2, 1), 2, 2),
            "mask": np.repeat(np.repeat(clip["mask"], 2, 1), 2, 2), "clip_id": "big"}
    # Fed as it is, the frame's mask comes back at the frame's 8x8, as served.
    runner.start_stream(clip["frames"][:1], "key_frame")
    prediction = runner(clip["frames"][:1])
    assert sorted(prediction) == ["segmentation_mask", "segmentation_probability"]
    assert prediction["segmentation_mask"].dtype == np.uint8
    np.testing.assert_array_equal(prediction["segmentation_mask"][0], clip["mask"][0])
    # Halved outside as training resizes (bilinear: the red half stays 255), the 4x4 mask
    # scaled back to the 8x8 annotation is the annotation.
    result = stream.evaluate_stream(runner, [clip], resize_frames=True, warmup_calls=1)
    assert result.accuracy["J"] == pytest.approx(1.0)
    assert result.num_frames == 3


def test_served_detections_are_scored_as_they_come(tmp_path):
    record = _record(task="detection", num_classes=3,
                     predictions=["detection_boxes", "detection_classes", "detection_scores",
                                  "num_detections"])
    runner = exported.SavedModelRunner(exported.load(_save(tmp_path, record, _detection)))
    prediction = runner(np.zeros((1, 480, 640, 3), np.uint8))
    # The served predictions are the task's: the same names, 1-based float32 classes.
    assert sorted(prediction) == sorted(runner.task.prediction_keys)
    np.testing.assert_array_equal(prediction["detection_classes"], [[2.0, 1.0]])
    np.testing.assert_array_equal(prediction["num_detections"], [1.0])
    np.testing.assert_allclose(prediction["detection_boxes"][0, 0], [0.25, 0.0, 0.75, 0.5])
    # The detection of class 2 (1-based) is the data's class 1 at (0.25, 0, 0.75, 0.5).
    metric = runner.task.new_metric()
    truth = {"frame": np.zeros((480, 640, 3), np.uint8),
             "boxes": np.array([[0.25, 0.0, 0.75, 0.5]], np.float32),
             "classes": np.array([1], np.int32)}
    runner.task.add_frame(metric, "v", 0, truth, prediction)
    assert runner.task.result(metric)["mAP"] == pytest.approx(1.0)


def test_export_without_metadata_asks_for_a_reexport(tmp_path):
    with pytest.raises(ValueError, match="no Patchwork metadata.*Re-export"):
        exported.load(_save(tmp_path, None))


def test_a_backbone_export_has_no_metric(tmp_path):
    with pytest.raises(ValueError, match="no accuracy metric"):
        exported.load(_save(tmp_path, _record(task="backbone")))


def test_a_directory_without_a_saved_model_is_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="holds no SavedModel"):
        exported.load(str(tmp_path))
