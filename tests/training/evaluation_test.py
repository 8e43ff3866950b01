"""Tests for stage-1 evaluation against independent numpy computations."""
import pytest
import tf_keras

from patchwork_tf import tasks
from patchwork_tf.training import evaluation
from patchwork_tf.training import stage1
from patchwork_tf.training import stage1_data


def _all_foreground_segmenter(frame_size):
    """A stock-layer model whose foreground logit is +1 everywhere."""
    inputs = tf_keras.Input(frame_size + (3,))
    logits = tf_keras.layers.Conv2D(1, 1, kernel_initializer="zeros", bias_initializer="ones")(
        inputs)
    return tf_keras.Model(inputs, {"mask_logits": logits})


def test_segmenter_j_of_an_all_foreground_prediction():
    frames = stage1_data.synthetic_frames("validation", "segmentation", 3, (64, 64),
                                          frames_per_clip=4)
    task = tasks.SegmentationTask().scoring_every_frame()
    result = evaluation.evaluate_frames(task, _all_foreground_segmenter((64, 64)), frames,
                                        frames_per_clip=4, batch_size=5)
    # Predicting every pixel, J of a frame is the foreground's share of the frame.
    share = frames["mask"].reshape(3, 4, -1).mean(axis=2)
    assert result["J"] == pytest.approx(share.mean(axis=1).mean(), rel=1e-6)
    assert len(result["per_sequence"]) == 3


@pytest.mark.slow
def test_evaluate_stage1_reads_the_latest_checkpoint(tmp_path):
    stage1.train_stage1(str(tmp_path), stage1.Stage1Config(
        "detection", num_steps=2, frame_size=(64, 64), batch_size=2, num_train_clips=2,
        frames_per_clip=1), verbose=0)
    result = evaluation.evaluate_stage1(str(tmp_path), num_clips=2, clip_length=4)
    assert result["task"] == "detection" and result["step"] == 2
    assert 0.0 <= result["mAP"] <= 1.0
    assert result["ap"].shape == (5,)
