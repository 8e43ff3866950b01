"""Tests for the clip format helpers."""
import numpy as np
import pytest

from patchwork_tf.data import clips as clips_lib


def _clip(t=2, k=3, h=8, w=6):
    return {
        "frames": np.zeros((t, h, w, 3), np.uint8),
        "boxes": np.zeros((t, k, 4), np.float32),
        "classes": np.full((t, k), -1, np.int32),
        "track_ids": np.full((t, k), -1, np.int32),
        "valid": np.zeros((t, k), bool),
        "mask": np.zeros((t, h, w), np.uint8),
        "clip_id": "a",
    }


def test_preprocess_frames_maps_to_minus_one_one():
    frames = np.array([[[[0, 255, 51]]]], np.uint8)
    np.testing.assert_allclose(clips_lib.preprocess_frames(frames), [[[[-1.0, 1.0, -0.6]]]],
                               rtol=1e-6, atol=1e-6)
    with pytest.raises(TypeError, match="uint8"):
        clips_lib.preprocess_frames(np.zeros((1, 2, 2, 3), np.float32))


def test_validate_clip_accepts_a_good_clip():
    clip = _clip()
    assert clips_lib.validate_clip(clip) is clip


def test_validate_clip_names_the_problem():
    clip = _clip()
    del clip["valid"]
    with pytest.raises(ValueError, match="lacks required keys \\['valid'\\]"):
        clips_lib.validate_clip(clip)
    clip = _clip()
    clip["boxes"] = clip["boxes"].astype(np.float64)
    with pytest.raises(ValueError, match="boxes.*float64.*float32"):
        clips_lib.validate_clip(clip)
    clip = _clip()
    clip["mask"] = np.zeros((2, 8, 7), np.uint8)
    with pytest.raises(ValueError, match="mask.*expected \\(2, 8, 6\\)"):
        clips_lib.validate_clip(clip)
    clip = _clip()
    clip["boxes"][0, 0] = [0.0, 0.0, 1.5, 1.0]
    with pytest.raises(ValueError, match="outside \\[0, 1\\]"):
        clips_lib.validate_clip(clip)


def test_signature_matches_keys():
    spec = clips_lib.clip_signature(4, (8, 8), 2, with_instance_masks=False)
    assert "instance_masks" not in spec
    assert spec["boxes"].shape == [4, 2, 4]
