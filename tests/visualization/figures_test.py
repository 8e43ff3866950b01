"""Fig. 2 and Fig. 4 files: sizes, and the overlays they are meant to show."""
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from patchwork_tf.data import synthetic
from patchwork_tf.visualization import figures
from patchwork_tf.visualization import rollout as rollout_lib

CELL = "block_6_depthwise"


def fake_detections(outputs):
    """Two detections per frame, the second below the default drawing threshold."""
    batch = tf.shape(outputs)[0]
    return {
        "detection_boxes": tf.tile([[[0.1, 0.1, 0.5, 0.6], [0.5, 0.5, 0.9, 0.9]]],
                                   [batch, 1, 1]),
        "detection_scores": tf.tile([[0.9, 0.3]], [batch, 1]),
        "detection_classes": tf.tile([[2.0, 3.0]], [batch, 1]),
        "num_detections": tf.fill([batch], 2.0),
    }


def fake_mask(outputs):
    mean = tf.image.resize(tf.reduce_mean(outputs, -1, keepdims=True), (64, 64), "nearest")
    return {"segmentation_mask": tf.cast(mean > tf.reduce_mean(mean), tf.uint8)}


def _red_pixels(path):
    image = np.asarray(Image.open(path).convert("RGB")).astype(int)
    return np.sum((image[..., 0] > 200) & (image[..., 1] < 60) & (image[..., 2] < 60))


def test_figure2_has_five_frames_over_five_memories(twin, frames, tmp_path):
    result = rollout_lib.rollout(twin, frames, "scanning", cell_name=CELL)
    path = figures.figure2(result, str(tmp_path / "fig2.png"), dpi=50)
    assert Image.open(path).size == (5 * 2 * 50, round(2 * 2.3 * 50))
    assert _red_pixels(path) > 0
    custom = figures.figure2(result, str(tmp_path / "fig2_3.png"), steps=[0, 4, 9], dpi=40)
    assert Image.open(custom).size == (3 * 2 * 40, round(2 * 2.3 * 40))


def test_figure4_draws_detections_and_masks(twin, frames, tmp_path):
    plain = rollout_lib.rollout(twin, frames, "scanning")
    boxed = rollout_lib.rollout(twin, frames, "scanning", postprocess=fake_detections)
    masked = rollout_lib.rollout(twin, frames, "scanning", postprocess=fake_mask)
    paths = [figures.figure4(r, str(tmp_path / f"fig4_{i}.png"), synthetic.CLASS_NAMES, dpi=40)
             for i, r in enumerate((plain, boxed, masked))]
    for path in paths:
        assert Image.open(path).size == (5 * 2 * 40, round(2 * 2.3 * 40))
    images = [np.asarray(Image.open(p).convert("RGB")) for p in paths]
    assert np.any(images[0] != images[1]) and np.any(images[0] != images[2])
    assert _red_pixels(paths[0]) > 0


def test_detections_respect_count_and_threshold():
    predictions = {"detection_boxes": np.arange(12, dtype=np.float32).reshape(3, 4) / 12,
                   "detection_scores": np.array([0.9, 0.4, 0.8]),
                   "detection_classes": np.array([3.0, 2.0, 1.0]),  # 1-based
                   "num_detections": np.array(2.0)}
    found = figures.detections(predictions, 0.5)
    assert [(c, s) for _, c, s in found] == [(2, 0.9)]
    assert len(figures.detections(predictions, 0.3)) == 2


def test_bad_requests_are_refused(twin, frames, tmp_path):
    result = rollout_lib.rollout(twin, frames[:3], "scanning")
    with pytest.raises(ValueError, match="no memory"):
        figures.figure2(result, str(tmp_path / "x.png"))
    with pytest.raises(ValueError, match="steps must be indices"):
        figures.figure4(result, str(tmp_path / "x.png"), steps=[0, 5])
    with pytest.raises(ValueError, match=r"mask'\] must be \[64, 64\]"):
        figures.foreground_mask({"segmentation_mask": np.zeros((16, 16))}, (64, 64))
