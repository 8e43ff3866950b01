"""SavedModel runner on hand-made SavedModels whose stream signatures are known.

The stand-in SavedModel segments a 4x4 frame: foreground where red >= 128, `action` counts
the steps since the warm start. The end-to-end comparison with the in-process twin on an
exported SSDLite is in tests/evaluate_test.py.
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
              "m": 2, "n": 1, "num_actions": 4, "policy": "scanning", "policy_cell": None,
              "scan_order": [0, 1, 2, 3], "history_alpha": 0.5, "change_cue": False,
              "fold_batch_norm": True, "flops": {"step": 300, "full_frame": 1000, "policy": 20}}
    record.update(changes)
    return record


class _StandIn(tf.Module):
    """Stream signatures of a served segmenter, with or without a metadata function."""

    def __init__(self, record):
        super().__init__()
        self.steps = tf.Variable(0)
        spec = tf.TensorSpec([SIZE, SIZE, 3], tf.uint8)
        self.stream_warm_start = tf.function(self._warm_start, input_signature=[spec])
        self.stream_step = tf.function(self._step, input_signature=[spec])
        if record is not None:
            text = json.dumps(record)
            self.metadata = tf.function(lambda: tf.constant(text), input_signature=[])

    def _outputs(self, frame, action):
        mask = tf.cast(frame[None, ..., 0] >= 128, tf.uint8)
        return {"mask": mask, "probability": tf.cast(mask, tf.float32), "action": action[None],
                "next_action": action[None] + 1}

    def _warm_start(self, frame):
        self.steps.assign(0)
        return self._outputs(frame, tf.constant(-1))

    def _step(self, frame):
        self.steps.assign_add(1)
        return self._outputs(frame, self.steps.read_value() - 1)


def _save(tmp_path, record):
    path = str(tmp_path / "saved_model")
    tf.saved_model.save(_StandIn(record), path)
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
    with pytest.raises(ValueError, match="resize_frames=True"):
        stream.evaluate_stream(runner, [clip])
    # Halved as training resizes (bilinear: the red half stays 255), the 4x4 mask scaled back
    # to the 8x8 annotation is the annotation.
    result = stream.evaluate_stream(runner, [clip], resize_frames=True, warmup_calls=1)
    assert result.accuracy["J"] == pytest.approx(1.0)
    assert result.num_frames == 3


def test_export_without_metadata_asks_for_a_reexport(tmp_path):
    with pytest.raises(ValueError, match="no Patchwork metadata.*Re-export"):
        exported.load(_save(tmp_path, None))


def test_a_backbone_export_has_no_metric(tmp_path):
    with pytest.raises(ValueError, match="no accuracy metric"):
        exported.load(_save(tmp_path, _record(task="backbone")))


def test_a_directory_without_a_saved_model_is_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="holds no SavedModel"):
        exported.load(str(tmp_path))
