"""Tests for the clip pipelines: resize and padding, batching, stage-1 frame mixing."""
import numpy as np
import pytest
import tensorflow as tf

from patchwork_tf.data import pipeline
from patchwork_tf.data import synthetic


def _clip(t=2, h=20, w=40, k=1):
    frames = np.zeros((t, h, w, 3), np.uint8)
    frames[:, :, 20:] = 200
    masks = np.zeros((t, k, h, w), np.uint8)
    masks[:, 0, 10:20, 20:40] = 1
    return {
        "frames": frames,
        "boxes": np.tile(np.array([[[0.5, 0.5, 1.0, 1.0]]], np.float32), (t, k, 1)),
        "classes": np.full((t, k), 2, np.int32),
        "track_ids": np.zeros((t, k), np.int32),
        "valid": np.ones((t, k), bool),
        "instance_masks": masks,
        "mask": masks[:, 0],
        "clip_id": "c",
    }


def test_letterbox_keeps_boxes_on_the_object():
    out = pipeline.resize_and_pad_clip({k: tf.constant(v) for k, v in _clip().items()},
                                       (32, 32), max_objects=3, clip_length=2)
    assert out["frames"].shape == [2, 32, 32, 3]
    # 20x40 -> 16x32, padded below: the object's box is rows 8..16 of 32, cols 16..32.
    np.testing.assert_allclose(out["boxes"][0, 0], [0.25, 0.5, 0.5, 1.0], rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(out["classes"][0], [2, -1, -1])
    np.testing.assert_array_equal(out["valid"][0], [True, False, False])
    rows, cols = np.nonzero(out["instance_masks"][0, 0].numpy())
    assert (rows.min(), rows.max() + 1, cols.min(), cols.max() + 1) == (8, 16, 16, 32)
    np.testing.assert_array_equal(out["mask"], out["instance_masks"][:, 0])
    assert int(out["frames"][0, 20:].numpy().max()) == 0   # padding


def test_too_many_objects_is_an_error():
    dataset = pipeline.clip_dataset(lambda: [_clip(k=2)])
    with pytest.raises(tf.errors.InvalidArgumentError, match="raise max_objects"):
        list(pipeline.batch_clips(dataset, 1, (32, 32), 2, max_objects=1))


def test_wrong_clip_length_is_an_error():
    dataset = pipeline.clip_dataset(lambda: [_clip(t=3)])
    with pytest.raises(tf.errors.InvalidArgumentError, match="clip_length=2"):
        list(pipeline.batch_clips(dataset, 1, (32, 32), 2, max_objects=1))


def test_batches_synthetic_clips():
    dataset = synthetic.synthetic_dataset("train", num_clips=3, frame_size=64, clip_length=4)
    (batch,) = list(pipeline.batch_clips(dataset, 2, (64, 64), 4, max_objects=6))
    assert batch["frames"].shape == [2, 4, 64, 64, 3]
    assert batch["instance_masks"].shape == [2, 4, 6, 64, 64]
    reference = next(synthetic.synthetic_clips("train", num_clips=1, frame_size=64,
                                               clip_length=4))
    np.testing.assert_array_equal(batch["frames"][0], reference["frames"])
    np.testing.assert_array_equal(batch["boxes"][0, :, :4], reference["boxes"])


def test_stage1_mixes_real_and_fake_frames():
    real = synthetic.synthetic_dataset("train", num_clips=2, frame_size=64, clip_length=4)
    image = np.zeros((50, 70, 3), np.uint8)
    records = [{"image": image, "boxes": np.array([[0.2, 0.2, 0.6, 0.6]], np.float32),
                "classes": np.array([1], np.int32), "image_id": str(i),
                "instance_masks": np.ones((1, 50, 70), np.uint8)} for i in range(2)]
    fake = pipeline.fake_video_dataset(lambda: records, seed=0, num_frames=4,
                                       frame_size=(64, 64))
    frames = list(pipeline.stage1_frames(real, fake, 0.5, (64, 64), 6, seed=1))
    assert len(frames) == 16
    assert frames[0]["image"].shape == [64, 64, 3]
    assert frames[0]["boxes"].shape == [6, 4]
    fake_frames = [f for f in frames if not f["image"].numpy().any()]
    assert len(fake_frames) == 8


def test_bad_fraction_is_refused():
    dataset = pipeline.clip_dataset(lambda: [])
    with pytest.raises(ValueError, match="fake_fraction"):
        pipeline.stage1_frames(dataset, dataset, 1.5, (32, 32), 2, seed=0)
