"""Tests for the clip format helpers."""
import numpy as np
import tensorflow as tf

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


class ClipsTest(tf.test.TestCase):

    def test_preprocess_frames_maps_to_minus_one_one(self):
        frames = np.array([[[[0, 255, 51]]]], np.uint8)
        self.assertAllClose(clips_lib.preprocess_frames(frames), [[[[-1.0, 1.0, -0.6]]]])
        with self.assertRaisesRegex(TypeError, "uint8"):
            clips_lib.preprocess_frames(np.zeros((1, 2, 2, 3), np.float32))

    def test_validate_clip_accepts_a_good_clip(self):
        clip = _clip()
        self.assertIs(clips_lib.validate_clip(clip), clip)

    def test_validate_clip_names_the_problem(self):
        clip = _clip()
        del clip["valid"]
        with self.assertRaisesRegex(ValueError, "lacks required keys \\['valid'\\]"):
            clips_lib.validate_clip(clip)
        clip = _clip()
        clip["boxes"] = clip["boxes"].astype(np.float64)
        with self.assertRaisesRegex(ValueError, "boxes.*float64.*float32"):
            clips_lib.validate_clip(clip)
        clip = _clip()
        clip["mask"] = np.zeros((2, 8, 7), np.uint8)
        with self.assertRaisesRegex(ValueError, "mask.*expected \\(2, 8, 6\\)"):
            clips_lib.validate_clip(clip)
        clip = _clip()
        clip["boxes"][0, 0] = [0.0, 0.0, 1.5, 1.0]
        with self.assertRaisesRegex(ValueError, "outside \\[0, 1\\]"):
            clips_lib.validate_clip(clip)

    def test_signature_matches_keys(self):
        spec = clips_lib.clip_signature(4, (8, 8), 2, with_instance_masks=False)
        self.assertNotIn("instance_masks", spec)
        self.assertEqual(spec["boxes"].shape, [4, 2, 4])


if __name__ == "__main__":
    tf.test.main()
