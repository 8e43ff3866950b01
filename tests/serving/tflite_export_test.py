"""TFLite export (`serving.tflite_export`, `export --format=tflite`): the .tflite files under
the interpreter with XNNPACK, one thread, against the SavedModel and the in-process module on
the same frames, over steps that cover every window."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

import patchwork_tf as pw
from patchwork_tf import runs
from patchwork_tf import tasks
from patchwork_tf.core import cells
from patchwork_tf.data import clips as clips_lib
from patchwork_tf.serving import exportable
from patchwork_tf.serving import exporter
from patchwork_tf.serving import tflite_export
from tests.core import small_models

_REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SIZE = 64
MAX_DETECTIONS = 10


def _detector():
    tf_keras.utils.set_random_seed(0)
    model, post = runs.build_model("detection", SIZE, 0.35, max_detections=MAX_DETECTIONS)
    return small_models.calibrate_batch_norm(model), post


def _frames(count, seed=1):
    return np.random.default_rng(seed).integers(0, 256, (count, SIZE, SIZE, 3), np.uint8)


def _interpreter(path):
    return tf.lite.Interpreter(model_path=path, num_threads=1)


def _assert_same(expected, result, keys):
    for key in keys:
        want = np.asarray(expected[key])
        if want.dtype.kind in "iu" or key in ("num_detections", "detection_classes"):
            np.testing.assert_array_equal(result[key], want, err_msg=key)
        else:
            scale = max(float(np.max(np.abs(want))), 1e-6)
            np.testing.assert_allclose(result[key], want, rtol=0, atol=1e-4 * scale,
                                       err_msg=key)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_class_offset_nms_keeps_what_combined_nms_keeps(seed):
    rng = np.random.default_rng(seed)
    centers = rng.uniform(-0.1, 1.1, (300, 2))
    sizes = rng.uniform(0.05, 0.4, (300, 2))
    boxes = np.concatenate([centers - sizes / 2, centers + sizes / 2], -1).astype(np.float32)
    scores = rng.uniform(0, 1, (300, 4)).astype(np.float32)
    for max_detections, iou, threshold in ((20, 0.5, 0.3), (100, 0.6, 1e-8), (7, 0.3, 0.9)):
        want = tf.image.combined_non_max_suppression(
            boxes[None, :, None], scores[None], max_detections, max_detections, iou, threshold,
            pad_per_class=False, clip_boxes=True)
        got = tflite_export.class_offset_nms(tf.constant(boxes), tf.constant(scores),
                                             max_detections, iou, threshold)
        assert int(got[3]) == int(want.valid_detections[0])
        np.testing.assert_allclose(got[0], want.nmsed_boxes[0], atol=1e-6)
        np.testing.assert_allclose(got[1], want.nmsed_scores[0], atol=1e-7)
        np.testing.assert_array_equal(got[2], want.nmsed_classes[0])


def test_slice_windows_writes_and_crops_what_the_scatter_does():
    rng = np.random.default_rng(0)
    memory = tf.constant(rng.normal(size=(1, 11, 9, 3)), tf.float32)
    window = tf.constant(rng.normal(size=(1, 4, 3, 3)), tf.float32)
    offsets = tf.constant([[5, 6]])

    def write_and_crop(memory, window, offsets):
        written = cells.write_window(memory, window, offsets)
        return written, cells.crop_window(written, offsets - 1, (6, 4))

    want = tf.function(write_and_crop)(memory, window, offsets)
    with cells.slice_windows():
        got = tf.function(write_and_crop).get_concrete_function(memory, window, offsets)
        kinds = {op.type for op in got.graph.get_operations()}
    assert {"XlaDynamicUpdateSlice", "Slice"} <= kinds and "TensorScatterUpdate" not in kinds
    expected = memory.numpy().copy()
    expected[0, 5:9, 6:9] = window.numpy()[0]
    for value, reference in zip(got(memory, window, offsets), want):
        np.testing.assert_array_equal(value, reference)
    np.testing.assert_array_equal(want[0], expected)
    np.testing.assert_array_equal(want[1], expected[:, 4:10, 5:9])


def test_tflite_export_refuses_band_writes(tmp_path):
    with pytest.raises(ValueError, match="--write=window"):
        exporter.export(str(tmp_path), task="detection", frame_size=SIZE, depth_multiplier=0.35,
                      m=2, n=1, write="bands", export_format="tflite")


@pytest.mark.slow
def test_cli_tflite_files_match_the_saved_model(tmp_path):
    model, post = _detector()
    tf.train.Checkpoint(model=model).save(str(tmp_path / "checkpoints" / "ckpt"))
    flags = ["--task=detection", f"--frame_size={SIZE}", "--depth_multiplier=0.35", "--m=2",
             "--n=1", f"--max_detections={MAX_DETECTIONS}", "--scan_order=3,1,2,0",
             f"--checkpoint={tmp_path / 'checkpoints'}"]
    lite_dir = str(tmp_path / "lite")
    completed = subprocess.run(
        [sys.executable, "-m", "patchwork_tf.export", "--format=tflite",
         f"--export_dir={lite_dir}"] + flags, cwd=_REPO, capture_output=True, text=True,
        timeout=900)
    assert completed.returncode == 0, completed.stderr[-4000:]
    record = json.load(open(os.path.join(lite_dir, tflite_export.METADATA_FILE)))
    assert record["scan_order"] == [3, 1, 2, 0] and record["task"] == "detection"
    exporter.export(str(tmp_path / "saved"), task="detection", frame_size=SIZE,
                  depth_multiplier=0.35, m=2, n=1, max_detections=MAX_DETECTIONS,
                  scan_order=[3, 1, 2, 0], checkpoint=str(tmp_path / "checkpoints"))
    saved = tf.saved_model.load(str(tmp_path / "saved"))
    frames = _frames(10)
    predictions = ["detection_boxes", "detection_scores", "detection_classes", "num_detections"]

    single = _interpreter(os.path.join(lite_dir, tflite_export.SINGLE_FRAME_FILE))
    runner = single.get_signature_runner()
    for frame in frames[:3]:
        expected = post(model(clips_lib.preprocess_frames(frame[None]), training=False))
        result = runner(frames=frame[None])
        assert float(result["num_detections"][0]) == MAX_DETECTIONS
        _assert_same(expected, result, predictions)

    lite_file = os.path.join(lite_dir, tflite_export.PATCHWORK_FILE)
    results = tflite_export.run_stream(_interpreter(lite_file), frames)
    expected = saved.signatures["warm_start"](frames=frames[:1])
    state_keys = [key for key in expected if key.startswith("memory_")] + ["next_action"]
    actions = []
    for t, result in enumerate(results):
        if t:
            expected = saved.signatures["step"](
                frames=frames[t:t + 1], **{k: expected[k] for k in expected
                                           if k not in predictions + ["action"]})
        actions.append(int(result["action"][0]))
        _assert_same(expected, result, predictions + ["action"] + state_keys)
    assert actions == [-1] + [3, 1, 2, 0] * 2 + [3]


class _MovingQ(tf.Module):
    """Q = (mean of the memory view @ W + change) / 100 - 5 * history: the least recently
    visited window first, ties broken by what the memory and the change cue say."""

    def __init__(self, channels, num_actions):
        super().__init__(name="moving_q")
        rng = np.random.default_rng(0)
        self.kernel = tf.Variable(rng.normal(0, 1, (channels, num_actions)).astype(np.float32))

    def __call__(self, observation):
        return ((tf.reduce_mean(observation["memory"], axis=[1, 2]) @ self.kernel
                 + observation["change"]) / 100.0 - 5.0 * observation["history"])


@pytest.mark.slow
def test_tflite_step_with_policy_and_change_cue_matches_the_module(tmp_path):
    model, post = _detector()
    cell = tasks.get("detection").observed_cell
    twin = pw.patchwork_model(model, pw.WindowGrid((SIZE, SIZE), 2, 1), fold_batch_norm=True,
                              full_memory_cells=[cell])
    policy = _MovingQ(twin.view_shape(cell)[-1], 4)
    kwargs = dict(policy=policy, policy_cell=cell, alpha=0.5, change_cue=True,
                  compact_state=False)
    module = exportable.ExportableModule(twin, postprocess=post, **kwargs)
    lite_module = exportable.ExportableModule(
        twin, postprocess=tflite_export.lite_postprocess(post), **kwargs)
    path = str(tmp_path / "patchwork.tflite")
    with open(path, "wb") as f:
        f.write(tflite_export.convert(tflite_export.patchwork_functions(lite_module),
                                      lite_module.model_variables + list(policy.variables),
                                      str(tmp_path)))
    frames = _frames(9, seed=2)
    results = tflite_export.run_stream(_interpreter(path), frames)
    expected = module.warm_start(frames[:1])
    keys = list(results[0])
    actions = set()
    for t, result in enumerate(results):
        if t:
            expected = module.step(frames[t:t + 1], {k: expected[k] for k in module.state_keys})
        assert sorted(result) == sorted(expected)
        _assert_same(expected, result, keys)
        actions.add(int(result["action"][0]))
    assert actions == {-1, 0, 1, 2, 3}
