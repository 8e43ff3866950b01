"""Tests for fake videos from still images (paper Sec. 3.4), against hand-worked cases."""
import numpy as np
import pytest

from patchwork_tf.data import clips as clips_lib
from patchwork_tf.data import fake_video


def test_transform_boxes_hand_worked():
    boxes = [[0.2, 0.2, 0.6, 0.6],    # 9/16 of it inside the view
             [0.7, 0.7, 0.9, 0.9],    # outside
             [0.1, 0.3, 0.2, 0.4]]    # inside
    moved, keep = fake_video.transform_boxes(boxes, [0.0, 0.0, 0.5, 0.5], 0.5)
    np.testing.assert_allclose(moved, [[0.4, 0.4, 1.0, 1.0], [0, 0, 0, 0], [0.2, 0.6, 0.4, 0.8]],
                               rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(keep, [True, False, True])
    _, keep = fake_video.transform_boxes(boxes, [0.0, 0.0, 0.5, 0.5], 0.6)
    np.testing.assert_array_equal(keep, [False, False, True])
    moved, keep = fake_video.transform_boxes([[0.4, 0.4, 0.6, 0.6]], [0.5, 0.5, 1.0, 1.0], 0.25)
    np.testing.assert_allclose(moved, [[0.0, 0.0, 0.2, 0.2]], rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(keep, [True])


def test_view_path_moves_at_speed_then_stops():
    start, end = [0.0, 0.0, 0.5, 0.5], [0.5, 0.5, 1.0, 1.0]
    speed = np.sqrt(0.5) / 3.0
    views = fake_video.view_path(start, end, 5, speed)
    expected = [[0, 0, .5, .5], [1 / 6, 1 / 6, 4 / 6, 4 / 6], [2 / 6, 2 / 6, 5 / 6, 5 / 6],
                [.5, .5, 1, 1], [.5, .5, 1, 1]]
    np.testing.assert_allclose(views, expected, rtol=1e-6, atol=1e-6)


def test_render_views_moves_labels_with_the_view():
    image = np.zeros((100, 100, 3), np.uint8)
    image[30, 30] = 255
    masks = np.zeros((1, 100, 100), np.uint8)
    masks[0, 30, 30] = 1
    views = np.array([[0.0, 0.0, 0.5, 0.5], [0.2, 0.2, 0.7, 0.7], [0.0, 0.0, 0.25, 0.25]])
    clip = fake_video.render_views(image, [[0.2, 0.2, 0.6, 0.6]], [3], views, (50, 50),
                                   masks, min_visible_fraction=0.1)
    clips_lib.validate_clip(clip)
    np.testing.assert_array_equal(np.argwhere(clip["instance_masks"][0, 0]), [[30, 30]])
    np.testing.assert_array_equal(np.argwhere(clip["instance_masks"][1, 0]), [[10, 10]])
    np.testing.assert_array_equal(np.argwhere(clip["frames"][0, ..., 0] > 0), [[30, 30]])
    np.testing.assert_allclose(clip["boxes"][:, 0], [[0.4, 0.4, 1.0, 1.0], [0.0, 0.0, 0.8, 0.8],
                                                     [0.0, 0.0, 0.0, 0.0]], rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(clip["valid"][:, 0], [True, True, False])
    np.testing.assert_array_equal(clip["classes"][:, 0], [3, 3, 3])
    assert clip["instance_masks"][2].sum() == 0


def test_upscaled_view_uses_nearest_for_masks():
    masks = np.zeros((1, 100, 100), np.uint8)
    masks[0, 30, 30] = 1
    clip = fake_video.render_views(np.zeros((100, 100, 3), np.uint8), [[0.3, 0.3, 0.31, 0.31]],
                                   [0], [[0.0, 0.0, 0.5, 0.5]], (100, 100), masks)
    np.testing.assert_array_equal(np.argwhere(clip["mask"][0]),
                                  [[60, 60], [60, 61], [61, 60], [61, 61]])


def test_fake_video_is_deterministic_and_shows_the_object():
    image = np.random.default_rng(0).integers(0, 255, (120, 160, 3), dtype=np.uint8)
    record = {"image": image, "boxes": np.array([[0.1, 0.8, 0.25, 0.95]], np.float32),
              "classes": np.array([2], np.int32), "image_id": "x"}
    for seed in range(20):
        clip = fake_video.fake_video(record, np.random.default_rng(seed), num_frames=6,
                                     frame_size=(32, 32), min_overlap=0.5)
        again = fake_video.fake_video(record, np.random.default_rng(seed), num_frames=6,
                                      frame_size=(32, 32), min_overlap=0.5)
        assert clip["frames"].tobytes() == again["frames"].tobytes()
        assert clip["frames"].shape == (6, 32, 32, 3)
        assert clip["valid"][0, 0] or clip["valid"][-1, 0]


def test_bad_masks_are_refused():
    with pytest.raises(ValueError, match="instance_masks has shape"):
        fake_video.render_views(np.zeros((10, 10, 3), np.uint8), [[0, 0, 1, 1]], [0],
                                [[0, 0, 1, 1]], (8, 8), np.zeros((1, 10, 9), np.uint8))
