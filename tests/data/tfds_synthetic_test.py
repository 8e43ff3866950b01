"""Tests for the TFDS builder of the synthetic video benchmark."""
import numpy as np
import pytest
import tensorflow_datasets as tfds

from patchwork_tf.data import clips as clips_lib
from patchwork_tf.data import synthetic
from patchwork_tf.data import tfds_synthetic

_TINY = dict(frame_size=(64, 64), clip_length=4, max_objects=3)
_NUM_CLIPS = {"train": 3, "validation": 2, "test": 2}


def _tiny_config(task):
    return tfds_synthetic.SyntheticVideoConfig(
        name=f"tiny_{task}", task=task, num_train_clips=_NUM_CLIPS["train"],
        num_validation_clips=_NUM_CLIPS["validation"], num_test_clips=_NUM_CLIPS["test"],
        **_TINY)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """task -> prepared builder of a tiny config, in a temporary data_dir."""
    data_dir = tmp_path_factory.mktemp("tfds")
    builders = {}
    for task in synthetic.TASKS:
        builder = tfds_synthetic.SyntheticVideo(config=_tiny_config(task), data_dir=str(data_dir))
        builder.download_and_prepare()
        builders[task] = builder
    return builders


def _read(builder, split):
    return list(tfds.as_numpy(builder.as_dataset(split=split)))


@pytest.mark.parametrize("task", synthetic.TASKS)
@pytest.mark.parametrize("split", synthetic.SPLITS)
def test_prepared_clips_equal_the_generator_exactly(prepared, task, split):
    read = _read(prepared[task], split)
    expected = list(synthetic.synthetic_clips(split, task, _NUM_CLIPS[split], **_TINY))
    assert len(read) == len(expected) == _NUM_CLIPS[split]
    for got, want in zip(read, expected):
        assert set(got) == set(want)
        assert got[clips_lib.CLIP_ID].decode() == want[clips_lib.CLIP_ID]
        for key, value in want.items():
            if key == clips_lib.CLIP_ID:
                continue
            assert got[key].dtype == value.dtype, key
            np.testing.assert_array_equal(got[key], value, err_msg=key)
        clips_lib.validate_clip({**got, clips_lib.CLIP_ID: got[clips_lib.CLIP_ID].decode()})


def test_split_sizes_and_shapes_follow_the_config(prepared):
    info = prepared["detection"].info
    assert {name: split.num_examples for name, split in info.splits.items()} == _NUM_CLIPS
    assert info.features[clips_lib.FRAMES].shape == (4, 64, 64, 3)
    assert info.features[clips_lib.INSTANCE_MASKS].shape == (4, 3, 64, 64)
    assert str(info.version) == "1.0.0"


@pytest.mark.parametrize("task", synthetic.TASKS)
def test_splits_are_disjoint(prepared, task):
    clips = {split: _read(prepared[task], split) for split in synthetic.SPLITS}
    ids = {split: {clip[clips_lib.CLIP_ID] for clip in clips[split]} for split in clips}
    assert sum(len(v) for v in ids.values()) == len(set().union(*ids.values()))
    frames = [clip[clips_lib.FRAMES].tobytes() for split in clips for clip in clips[split]]
    assert len(set(frames)) == len(frames)


def test_registered_name_and_default_configs(tmp_path):
    builder = tfds.builder("patchwork_synthetic_video/segmentation", data_dir=str(tmp_path))
    assert isinstance(builder, tfds_synthetic.SyntheticVideo)
    assert builder.builder_config.task == "segmentation"
    assert builder.builder_config.frame_size == (128, 128)
    defaults = {c.name: c.task for c in tfds_synthetic.SyntheticVideo.BUILDER_CONFIGS}
    assert defaults == {"detection": "detection", "segmentation": "segmentation"}
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("overrides, message", [
    (dict(task="tracking"), r"task 'tracking' is unknown; use one of"),
    (dict(frame_size=0), r"frame_size 0 must be a positive int"),
    (dict(frame_size=(64, -8)), r"frame_size \(64, -8\) must be"),
    (dict(frame_size=16), r"frame_size \(16, 16\) is too small; use at least 32"),
    (dict(clip_length=0), r"clip_length 0 must be an int >= 1"),
    (dict(num_test_clips=0), r"num_test_clips 0 must be an int >= 1"),
])
def test_bad_config_is_refused_with_the_value_and_the_fix(overrides, message):
    with pytest.raises(ValueError, match=message):
        tfds_synthetic.SyntheticVideoConfig(name="bad", **overrides)
