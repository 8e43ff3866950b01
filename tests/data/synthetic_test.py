"""Tests for the synthetic video benchmark."""
import itertools

from absl.testing import parameterized
import numpy as np
import tensorflow as tf

from patchwork_tf.data import clips as clips_lib
from patchwork_tf.data import synthetic

_SMALL = dict(frame_size=(64, 64), clip_length=8)


def _config(**overrides):
    return synthetic.make_config(**{**_SMALL, **overrides})


def _bounding_box(mask):
    """Independent reference: pixel-edge bounding box of a 0/1 mask, normalized."""
    rows, cols = np.nonzero(mask)
    height, width = mask.shape
    return np.array([rows.min() / height, cols.min() / width, (rows.max() + 1) / height,
                     (cols.max() + 1) / width], np.float32)


class SyntheticTest(tf.test.TestCase, parameterized.TestCase):

    @parameterized.parameters("detection", "segmentation")
    def test_same_seed_gives_same_clip_byte_for_byte(self, task):
        first = synthetic.synthetic_clip(123, task, _config())
        second = synthetic.synthetic_clip(123, task, _config())
        other = synthetic.synthetic_clip(124, task, _config())
        for key in clips_lib.REQUIRED_KEYS + clips_lib.OPTIONAL_KEYS:
            if key != clips_lib.CLIP_ID:
                self.assertEqual(first[key].tobytes(), second[key].tobytes(), key)
        self.assertNotEqual(first["frames"].tobytes(), other["frames"].tobytes())

    def test_split_seed_ranges_are_disjoint(self):
        seeds = {split: {synthetic.split_seed(split, i) for i in (0, 1, 7, 10**8 - 1)}
                 for split in synthetic.SPLITS}
        for a, b in itertools.combinations(synthetic.SPLITS, 2):
            self.assertEmpty(seeds[a] & seeds[b])
        with self.assertRaisesRegex(ValueError, "split must be one of"):
            synthetic.split_seed("dev", 0)
        with self.assertRaisesRegex(ValueError, "clip index"):
            synthetic.split_seed("train", 10**8)

    def test_splits_hold_different_clips(self):
        frames = {split: [c["frames"].tobytes()
                          for c in synthetic.synthetic_clips(split, num_clips=3, **_SMALL)]
                  for split in synthetic.SPLITS}
        for a, b in itertools.combinations(synthetic.SPLITS, 2):
            self.assertEmpty(set(frames[a]) & set(frames[b]))

    @parameterized.parameters("detection", "segmentation")
    def test_boxes_are_bounding_boxes_of_visible_instance_pixels(self, task):
        config = _config(max_objects=5)
        for seed in range(12):
            clip = clips_lib.validate_clip(synthetic.synthetic_clip(seed, task, config))
            masks, valid = clip["instance_masks"], clip["valid"]
            self.assertTrue(np.all(masks.sum(axis=1) <= 1), "instances overlap")
            for t, k in itertools.product(range(config.clip_length), range(config.max_objects)):
                if valid[t, k]:
                    self.assertAllEqual(clip["boxes"][t, k], _bounding_box(masks[t, k]))
                    self.assertGreaterEqual(clip["classes"][t, k], 0)
                    self.assertLess(clip["classes"][t, k], len(synthetic.CLASS_NAMES))
                else:
                    self.assertAllEqual(clip["boxes"][t, k], np.zeros(4))
                    self.assertEqual(masks[t, k].sum(), 0)
            padding = clip["track_ids"][0] < 0
            self.assertAllEqual(clip["classes"][:, padding], -1 * np.ones_like(
                clip["classes"][:, padding]))
            self.assertFalse(np.any(valid[:, padding]))

    def test_segmentation_mask_is_the_primary_object(self):
        config = _config(max_objects=3)
        for seed in range(12):
            clip = synthetic.synthetic_clip(seed, "segmentation", config)
            self.assertEqual(clip["track_ids"][0, 0], 0)
            self.assertTrue(clip["valid"][0, 0], "the primary object starts in view")
            for t in range(config.clip_length):
                if clip["valid"][t, 0]:
                    self.assertAllEqual(clip["mask"][t], clip["instance_masks"][t, 0])
                other = clip["instance_masks"][t, 1:].sum(axis=0)
                self.assertEqual(np.sum(clip["mask"][t] * other), 0)
            self.assertGreater(clip["mask"].sum(), 0)

    def test_detection_mask_is_the_union_of_objects(self):
        clip = synthetic.synthetic_clip(5, "detection", _config(min_visible_fraction=0.0))
        self.assertAllEqual(clip["mask"], clip["instance_masks"].max(axis=1))

    def test_objects_enter_and_leave(self):
        entered = left = 0
        for clip in synthetic.synthetic_clips("train", num_clips=20, **_SMALL):
            steps = np.diff(clip["valid"].astype(np.int8), axis=0)
            entered += np.sum(steps == 1)
            left += np.sum(steps == -1)
        self.assertGreater(entered, 0)
        self.assertGreater(left, 0)

    def test_most_of_the_frame_is_static(self):
        changed = []
        for clip in synthetic.synthetic_clips("validation", num_clips=10, **_SMALL):
            video = clip["frames"].astype(np.int16)
            changed.append((np.diff(video, axis=0) != 0).any(axis=-1).mean())
        self.assertLess(np.median(changed), 0.25)

    def test_classes_differ_in_outline(self):
        masks = [synthetic.shape_mask(c, 40) for c in range(len(synthetic.CLASS_NAMES))]
        for a, b in itertools.combinations(masks, 2):
            iou = np.sum(a & b) / np.sum(a | b)
            self.assertLess(iou, 0.85)

    def test_bad_parameters_are_refused(self):
        with self.assertRaisesRegex(ValueError, "frame_size"):
            synthetic.make_config(frame_size=16)
        with self.assertRaisesRegex(ValueError, "object_size"):
            synthetic.make_config(object_size=(0.5, 0.2))
        with self.assertRaisesRegex(ValueError, "task must be one of"):
            synthetic.synthetic_clip(0, "tracking", _config())

    def test_dataset_matches_generator(self):
        dataset = synthetic.synthetic_dataset("test", "segmentation", num_clips=2, **_SMALL)
        self.assertEqual(dataset.element_spec["frames"].shape, [8, 64, 64, 3])
        self.assertEqual(dataset.element_spec["instance_masks"].shape, [8, 4, 64, 64])
        reference = list(synthetic.synthetic_clips("test", "segmentation", 2, **_SMALL))
        for element, clip in zip(dataset, reference):
            for key in ("frames", "boxes", "classes", "valid", "mask"):
                self.assertAllEqual(element[key], clip[key])
            self.assertEqual(element["clip_id"].numpy().decode(), clip["clip_id"])


if __name__ == "__main__":
    tf.test.main()
