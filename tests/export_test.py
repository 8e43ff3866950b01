"""python -m patchwork_tf.export: an SSDLite twin with NMS inside and a DeepLab twin, fed frames
of another size than the model's, against the in-process twin on frames resized outside."""
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

import patchwork_tf as pw
from patchwork_tf import runs
from patchwork_tf import tasks
from patchwork_tf.data import clips as clips_lib
from patchwork_tf.data import pipeline
from patchwork_tf.data import synthetic
from patchwork_tf.serving import exportable

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.slow
def test_cli_exports_ssdlite_with_nms_matching_the_twin(tmp_path):
    model, post = runs.build_model("detection", 64, 0.35, max_detections=10,
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
    # 640x480 frames in; the twin in process gets them resized outside to 64x64.
    frames = np.stack([pipeline.resize_frames(c["frames"], (480, 640)) for c in
                       synthetic.synthetic_clips("test", num_clips=2, frame_size=64,
                                                 clip_length=4)], axis=1)
    twin = pw.patchwork_model(model, pw.WindowGrid((64, 64), 2, 1), fold_batch_norm=True)
    memories = twin.initial_state(2)
    state = loaded.signatures["initial_state"](batch_size=tf.constant(2))
    state_keys = [k for k in state]
    order = [3, 1, 2, 0]
    detected = 0
    for t in range(frames.shape[0]):
        actions = tf.constant([order[t % 4]] * 2)
        resized = pipeline.resize_frames(frames[t], (64, 64))
        outputs, memories = twin.step_fn(clips_lib.preprocess_frames(resized), actions,
                                         memories)
        expected = post(outputs)
        result = loaded.signatures["step"](frames=frames[t],
                                           **{k: state[k] for k in state_keys})
        np.testing.assert_array_equal(result["action"], actions)
        for key in ("num_detections", "detection_classes"):
            assert result[key].dtype == tf.float32
            np.testing.assert_array_equal(result[key], expected[key])
        np.testing.assert_allclose(result["detection_scores"], expected["detection_scores"],
                                   atol=1e-5)
        np.testing.assert_allclose(result["detection_boxes"], expected["detection_boxes"],
                                   atol=1e-5)
        detected += int(np.sum(expected["num_detections"]))
        state = result
    assert detected > 0, "pick weights that detect something, or the comparison is empty"


@pytest.mark.slow
def test_segmentation_masks_come_back_at_the_input_frames_size():
    model, post = runs.build_model("segmentation", 64, 0.35)
    twin = pw.patchwork_model(model, pw.WindowGrid((64, 64), 2, 1))
    module = exportable.ExportableModule(twin, postprocess=post)
    clip = next(iter(synthetic.synthetic_clips("test", "segmentation", num_clips=1,
                                               frame_size=(480, 640), clip_length=1)))
    frame = tf.constant(clip["frames"][0])
    logits = model(clips_lib.preprocess_frames(pipeline.resize_frames(frame[None], (64, 64))))
    expected = tf.image.resize(logits["mask_logits"], (480, 640), method="bilinear")[..., 0]
    module.stream_reset()
    for result in (module.warm_start(frame[None]), module.stream_warm_start(frame)):
        assert result["segmentation_mask"].shape == (1, 480, 640)
        np.testing.assert_allclose(result["segmentation_probability"], tf.sigmoid(expected),
                                   atol=1e-5)
        # Pixels whose logit is within float noise of 0 may fall either way.
        differs = result["segmentation_mask"].numpy() != (expected.numpy() > 0)
        assert not np.any(differs & (np.abs(expected.numpy()) > 1e-4))


def test_restore_model_refuses_empty_directories_and_other_models(tmp_path):
    with pytest.raises(ValueError, match="No checkpoint in directory"):
        runs.restore_checkpoint(None, str(tmp_path))
    small, _ = runs.build_model("backbone", 32, 0.35)
    prefix = tf.train.Checkpoint(model=small).save(str(tmp_path / "ckpt"))
    other, _ = runs.build_model("segmentation", 32, 0.35)
    with pytest.raises(ValueError, match="does not fit model"):
        runs.restore_checkpoint(other, prefix)


@pytest.mark.parametrize("task", ["detection", "segmentation"])
def test_build_model_restores_a_stage1_checkpoint_with_stage1_anchors(task, tmp_path):
    from patchwork_tf.training import stage1
    config = stage1.Stage1Config(task, frame_size=(64, 64))
    trained = stage1.build_model(config)
    prefix = tf.train.Checkpoint(model=trained).save(str(tmp_path / "ckpt"))
    model, post = runs.build_model(task, 64, config.alpha)
    runs.restore_checkpoint(model, prefix)
    for got, expected in zip(model.weights, trained.weights):
        np.testing.assert_array_equal(got.numpy(), expected.numpy())
    if task == "detection":
        np.testing.assert_array_equal(
            post.anchors, tasks.DetectionTask.for_model(trained, config).anchors)
