"""Tests for the synthetic video benchmark."""
import itertools

import numpy as np
import pytest

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


@pytest.mark.parametrize("task", ["detection", "segmentation"])
def test_same_seed_gives_same_clip_byte_for_byte(task):
    first = synthetic.synthetic_clip(123, task, _config())
    second = synthetic.synthetic_clip(123, task, _config())
    other = synthetic.synthetic_clip(124, task, _config())
    for key in clips_lib.REQUIRED_KEYS + clips_lib.OPTIONAL_KEYS:
        if key != clips_lib.CLIP_ID:
            assert first[key].tobytes() == second[key].tobytes(), key
    assert first["frames"].tobytes() != other["frames"].tobytes()


def test_split_seed_ranges_are_disjoint():
    seeds = {split: {synthetic.split_seed(split, i) for i in (0, 1, 7, 10**8 - 1)}
             for split in synthetic.SPLITS}
    for a, b in itertools.combinations(synthetic.SPLITS, 2):
        assert not (seeds[a] & seeds[b])
    with pytest.raises(ValueError, match="split must be one of"):
        synthetic.split_seed("dev", 0)
    with pytest.raises(ValueError, match="clip index"):
        synthetic.split_seed("train", 10**8)


def test_splits_hold_different_clips():
    frames = {split: [c["frames"].tobytes()
                      for c in synthetic.synthetic_clips(split, num_clips=3, **_SMALL)]
              for split in synthetic.SPLITS}
    for a, b in itertools.combinations(synthetic.SPLITS, 2):
        assert not (set(frames[a]) & set(frames[b]))


@pytest.mark.parametrize("task", ["detection", "segmentation"])
def test_boxes_are_bounding_boxes_of_visible_instance_pixels(task):
    config = _config(max_objects=5)
    for seed in range(12):
        clip = clips_lib.validate_clip(synthetic.synthetic_clip(seed, task, config))
        masks, valid = clip["instance_masks"], clip["valid"]
        assert np.all(masks.sum(axis=1) <= 1), "instances overlap"
        for t, k in itertools.product(range(config.clip_length), range(config.max_objects)):
            if valid[t, k]:
                np.testing.assert_array_equal(clip["boxes"][t, k], _bounding_box(masks[t, k]))
                assert clip["classes"][t, k] >= 0
                assert clip["classes"][t, k] < len(synthetic.CLASS_NAMES)
            else:
                np.testing.assert_array_equal(clip["boxes"][t, k], np.zeros(4))
                assert masks[t, k].sum() == 0
        padding = clip["track_ids"][0] < 0
        np.testing.assert_array_equal(clip["classes"][:, padding], -1 * np.ones_like(
            clip["classes"][:, padding]))
        assert not np.any(valid[:, padding])


def test_segmentation_mask_is_the_primary_object():
    config = _config(max_objects=3)
    for seed in range(12):
        clip = synthetic.synthetic_clip(seed, "segmentation", config)
        assert clip["track_ids"][0, 0] == 0
        assert clip["valid"][0, 0], "the primary object starts in view"
        for t in range(config.clip_length):
            if clip["valid"][t, 0]:
                np.testing.assert_array_equal(clip["mask"][t], clip["instance_masks"][t, 0])
            other = clip["instance_masks"][t, 1:].sum(axis=0)
            assert np.sum(clip["mask"][t] * other) == 0
        assert clip["mask"].sum() > 0


def test_detection_mask_is_the_union_of_objects():
    clip = synthetic.synthetic_clip(5, "detection", _config(min_visible_fraction=0.0))
    np.testing.assert_array_equal(clip["mask"], clip["instance_masks"].max(axis=1))


def test_objects_enter_and_leave():
    entered = left = 0
    for clip in synthetic.synthetic_clips("train", num_clips=20, **_SMALL):
        steps = np.diff(clip["valid"].astype(np.int8), axis=0)
        entered += np.sum(steps == 1)
        left += np.sum(steps == -1)
    assert entered > 0
    assert left > 0


def test_most_of_the_frame_is_static():
    changed = []
    for clip in synthetic.synthetic_clips("validation", num_clips=10, **_SMALL):
        video = clip["frames"].astype(np.int16)
        changed.append((np.diff(video, axis=0) != 0).any(axis=-1).mean())
    assert np.median(changed) < 0.25


def test_classes_differ_in_outline():
    masks = [synthetic.shape_mask(c, 40) for c in range(len(synthetic.CLASS_NAMES))]
    for a, b in itertools.combinations(masks, 2):
        iou = np.sum(a & b) / np.sum(a | b)
        assert iou < 0.85


def test_bad_parameters_are_refused():
    with pytest.raises(ValueError, match="frame_size"):
        synthetic.make_config(frame_size=16)
    with pytest.raises(ValueError, match="object_size"):
        synthetic.make_config(object_size=(0.5, 0.2))
    with pytest.raises(ValueError, match="task must be one of"):
        synthetic.synthetic_clip(0, "tracking", _config())


def test_dataset_matches_generator():
    dataset = synthetic.synthetic_dataset("test", "segmentation", num_clips=2, **_SMALL)
    assert dataset.element_spec["frames"].shape == [8, 64, 64, 3]
    assert dataset.element_spec["instance_masks"].shape == [8, 4, 64, 64]
    reference = list(synthetic.synthetic_clips("test", "segmentation", 2, **_SMALL))
    for element, clip in zip(dataset, reference):
        for key in ("frames", "boxes", "classes", "valid", "mask"):
            np.testing.assert_array_equal(element[key], clip[key])
        assert element["clip_id"].numpy().decode() == clip["clip_id"]
