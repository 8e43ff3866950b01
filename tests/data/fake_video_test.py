"""Tests for fake videos from still images (paper Sec. 3.4), against hand-worked cases."""
import numpy as np
import tensorflow as tf

from patchwork_tf.data import clips as clips_lib
from patchwork_tf.data import fake_video


class FakeVideoTest(tf.test.TestCase):

    def test_transform_boxes_hand_worked(self):
        boxes = [[0.2, 0.2, 0.6, 0.6],    # 9/16 of it inside the view
                 [0.7, 0.7, 0.9, 0.9],    # outside
                 [0.1, 0.3, 0.2, 0.4]]    # inside
        moved, keep = fake_video.transform_boxes(boxes, [0.0, 0.0, 0.5, 0.5], 0.5)
        self.assertAllClose(moved, [[0.4, 0.4, 1.0, 1.0], [0, 0, 0, 0], [0.2, 0.6, 0.4, 0.8]])
        self.assertAllEqual(keep, [True, False, True])
        _, keep = fake_video.transform_boxes(boxes, [0.0, 0.0, 0.5, 0.5], 0.6)
        self.assertAllEqual(keep, [False, False, True])
        moved, keep = fake_video.transform_boxes([[0.4, 0.4, 0.6, 0.6]], [0.5, 0.5, 1.0, 1.0],
                                                 0.25)
        self.assertAllClose(moved, [[0.0, 0.0, 0.2, 0.2]])
        self.assertAllEqual(keep, [True])

    def test_view_path_moves_at_speed_then_stops(self):
        start, end = [0.0, 0.0, 0.5, 0.5], [0.5, 0.5, 1.0, 1.0]
        speed = np.sqrt(0.5) / 3.0
        views = fake_video.view_path(start, end, 5, speed)
        expected = [[0, 0, .5, .5], [1 / 6, 1 / 6, 4 / 6, 4 / 6], [2 / 6, 2 / 6, 5 / 6, 5 / 6],
                    [.5, .5, 1, 1], [.5, .5, 1, 1]]
        self.assertAllClose(views, expected)

    def test_render_views_moves_labels_with_the_view(self):
        image = np.zeros((100, 100, 3), np.uint8)
        image[30, 30] = 255
        masks = np.zeros((1, 100, 100), np.uint8)
        masks[0, 30, 30] = 1
        views = np.array([[0.0, 0.0, 0.5, 0.5], [0.2, 0.2, 0.7, 0.7], [0.0, 0.0, 0.25, 0.25]])
        clip = fake_video.render_views(image, [[0.2, 0.2, 0.6, 0.6]], [3], views, (50, 50),
                                       masks, min_visible_fraction=0.1)
        clips_lib.validate_clip(clip)
        self.assertAllEqual(np.argwhere(clip["instance_masks"][0, 0]), [[30, 30]])
        self.assertAllEqual(np.argwhere(clip["instance_masks"][1, 0]), [[10, 10]])
        self.assertAllEqual(np.argwhere(clip["frames"][0, ..., 0] > 0), [[30, 30]])
        self.assertAllClose(clip["boxes"][:, 0], [[0.4, 0.4, 1.0, 1.0], [0.0, 0.0, 0.8, 0.8],
                                                  [0.0, 0.0, 0.0, 0.0]])
        self.assertAllEqual(clip["valid"][:, 0], [True, True, False])
        self.assertAllEqual(clip["classes"][:, 0], [3, 3, 3])
        self.assertEqual(clip["instance_masks"][2].sum(), 0)

    def test_upscaled_view_uses_nearest_for_masks(self):
        masks = np.zeros((1, 100, 100), np.uint8)
        masks[0, 30, 30] = 1
        clip = fake_video.render_views(np.zeros((100, 100, 3), np.uint8), [[0.3, 0.3, 0.31, 0.31]],
                                       [0], [[0.0, 0.0, 0.5, 0.5]], (100, 100), masks)
        self.assertAllEqual(np.argwhere(clip["mask"][0]), [[60, 60], [60, 61], [61, 60], [61, 61]])

    def test_fake_video_is_deterministic_and_shows_the_object(self):
        image = np.random.default_rng(0).integers(0, 255, (120, 160, 3), dtype=np.uint8)
        record = {"image": image, "boxes": np.array([[0.1, 0.8, 0.25, 0.95]], np.float32),
                  "classes": np.array([2], np.int32), "image_id": "x"}
        for seed in range(20):
            clip = fake_video.fake_video(record, np.random.default_rng(seed), num_frames=6,
                                         frame_size=(32, 32), min_overlap=0.5)
            again = fake_video.fake_video(record, np.random.default_rng(seed), num_frames=6,
                                          frame_size=(32, 32), min_overlap=0.5)
            self.assertEqual(clip["frames"].tobytes(), again["frames"].tobytes())
            self.assertEqual(clip["frames"].shape, (6, 32, 32, 3))
            self.assertTrue(clip["valid"][0, 0] or clip["valid"][-1, 0])

    def test_bad_masks_are_refused(self):
        with self.assertRaisesRegex(ValueError, "instance_masks has shape"):
            fake_video.render_views(np.zeros((10, 10, 3), np.uint8), [[0, 0, 1, 1]], [0],
                                    [[0, 0, 1, 1]], (8, 8), np.zeros((1, 10, 9), np.uint8))


if __name__ == "__main__":
    tf.test.main()
