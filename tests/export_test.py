"""python -m patchwork_tf.export: an SSDLite twin with NMS inside, against the in-process twin."""
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

import patchwork_tf as pw
from patchwork_tf import export
from patchwork_tf.data import clips as clips_lib
from patchwork_tf.data import synthetic

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.slow
def test_cli_exports_ssdlite_with_nms_matching_the_twin(tmp_path):
    model, post = export.build_model("detection", 64, 0.35, max_detections=10,
                                     score_threshold=0.3)
    rng = np.random.default_rng(0)
    model.set_weights([w + rng.normal(0, 0.05, w.shape).astype(w.dtype)
                       for w in model.get_weights()])
    tf.train.Checkpoint(model=model).save(str(tmp_path / "checkpoints" / "ckpt"))
    export_dir = str(tmp_path / "ssdlite")
    completed = subprocess.run(
        [sys.executable, "-m", "patchwork_tf.export", f"--export_dir={export_dir}",
         "--task=detection", "--frame_size=64", "--depth_multiplier=0.35", "--m=2", "--n=1",
         "--max_detections=10", "--score_threshold=0.3", f"--checkpoint={tmp_path / 'checkpoints'}",
         "--scan_order=3,1,2,0"],
        cwd=_REPO, capture_output=True, text=True, timeout=600)
    assert completed.returncode == 0, completed.stderr[-4000:]

    loaded = tf.saved_model.load(export_dir)
    frames = np.stack([c["frames"] for c in synthetic.synthetic_clips(
        "test", num_clips=2, frame_size=64, clip_length=4)], axis=1)
    twin = pw.patchwork_model(model, pw.WindowGrid((64, 64), 2, 1), fold_batch_norm=True)
    memories = twin.initial_state(2)
    state = loaded.signatures["initial_state"](batch_size=tf.constant(2))
    state_keys = [k for k in state]
    order = [3, 1, 2, 0]
    detected = 0
    for t in range(frames.shape[0]):
        actions = tf.constant([order[t % 4]] * 2)
        outputs, memories = twin.step_fn(clips_lib.preprocess_frames(frames[t]), actions,
                                         memories)
        expected = post(outputs)
        result = loaded.signatures["step"](frames=tf.constant(frames[t]),
                                           **{k: state[k] for k in state_keys})
        np.testing.assert_array_equal(result["action"], actions)
        np.testing.assert_array_equal(result["num_detections"], expected["num_detections"])
        np.testing.assert_array_equal(result["classes"], expected["classes"])
        np.testing.assert_allclose(result["scores"], expected["scores"], atol=1e-5)
        np.testing.assert_allclose(result["boxes"], expected["boxes"], atol=1e-5)
        detected += int(np.sum(expected["num_detections"]))
        state = result
    assert detected > 0, "pick weights that detect something, or the comparison is empty"


def test_restore_model_refuses_empty_directories_and_other_models(tmp_path):
    with pytest.raises(ValueError, match="No checkpoint in directory"):
        export.restore_model(None, str(tmp_path))
    small, _ = export.build_model("backbone", 32, 0.35)
    prefix = tf.train.Checkpoint(model=small).save(str(tmp_path / "ckpt"))
    other, _ = export.build_model("segmentation", 32, 0.35)
    with pytest.raises(ValueError, match="does not fit model"):
        export.restore_model(other, prefix)


@pytest.mark.parametrize("task", ["detection", "segmentation"])
def test_build_model_restores_a_stage1_checkpoint_with_stage1_anchors(task, tmp_path):
    from patchwork_tf.training import stage1
    config = stage1.Stage1Config(task, frame_size=(64, 64))
    trained = stage1.build_model(config)
    prefix = tf.train.Checkpoint(model=trained).save(str(tmp_path / "ckpt"))
    model, post = export.build_model(task, 64, config.alpha)
    export.restore_model(model, prefix)
    for got, expected in zip(model.weights, trained.weights):
        np.testing.assert_array_equal(got.numpy(), expected.numpy())
    if task == "detection":
        np.testing.assert_array_equal(post.anchors, stage1.detection_anchors(trained, config))
