"""Tests for the real-data readers on small fixture copies of each layout."""
import json
import logging
import os
import re

import numpy as np
import pytest

from patchwork_tf.data import clips as clips_lib
from patchwork_tf.data import coco
from patchwork_tf.data import davis
from patchwork_tf.data import imagenet_vid
from patchwork_tf.data import layout
from patchwork_tf.data import pascal_voc
from tests.data import fixtures
from tests.data.fixtures import flat as _flat
from tests.data.fixtures import vid_xml as _vid_xml
from tests.data.fixtures import write as _write
from tests.data.fixtures import write_image as _write_image


# ImageNet VID.

@pytest.fixture
def vid_video(tmp_path):
    """A 5-frame val video; returns (root, video)."""
    root = str(tmp_path / "vid")
    video = "ILSVRC2015_val_00000000"
    for t in range(5):
        _write_image(f"{root}/Data/VID/val/{video}/{t:06d}.JPEG", _flat(40, 80, 20 * t))
        # Airplane, track 0, over columns 8..40 and rows 4..20+t (inclusive indices).
        objects = [(0, "n02691156", (8, 4, 40, 20 + t))]
        if t >= 2:
            objects.append((3, "n02391049", (0, 0, 79, 39)))      # zebra enters, track 3
        _write(f"{root}/Annotations/VID/val/{video}/{t:06d}.xml", _vid_xml(40, 80, objects))
    _write(f"{root}/ImageSets/VID/val.txt",
           "".join(f"{video}/{t:06d} {t + 1}\n" for t in range(5)))
    return root, video


def test_vid_reads_clips_with_tracks_and_classes(vid_video):
    root, video = vid_video
    assert imagenet_vid.list_videos(root, "val") == [video]
    clips = list(imagenet_vid.vid_clips(root, "val", clip_length=2))
    assert len(clips) == 2                         # frames 0-1 and 2-3; frame 4 is a tail
    clip = clips_lib.validate_clip(clips[1])
    assert clip["frames"].shape == (2, 40, 80, 3)
    np.testing.assert_array_equal(clip["track_ids"], [[0, 3], [0, 3]])
    np.testing.assert_array_equal(clip["classes"][0], [0, 29])
    # Inclusive columns 8..40 are pixel edges 8 and 41; rows 4..22 (t = 2) edges 4 and 23.
    np.testing.assert_allclose(clip["boxes"][0, 0], [4 / 40, 8 / 80, 23 / 40, 41 / 80],
                               rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(clip["boxes"][1, 1], [0.0, 0.0, 1.0, 1.0], rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(clips[0]["valid"], [[True], [True]])
    assert abs(float(clip["frames"][1].mean()) - 60.0) <= 2.0
    assert imagenet_vid.CLASS_NAMES[imagenet_vid.CLASS_WNIDS.index("n02391049")] == "zebra"


def test_vid_read_frame_drops_degenerate_boxes_and_clips_to_the_frame(vid_video, caplog):
    root, video = vid_video
    _write(f"{root}/Annotations/VID/val/{video}/000001.xml", _vid_xml(40, 80, [
        (0, "n02691156", (8, 4, 40, 20)),
        (1, "n02691156", (30, 10, 29, 20)),       # xmax < xmin: width 0, dropped
        (2, "n02391049", (70, 30, 85, 45)),       # beyond the 80 x 40 frame: clipped
        (4, "n02391049", (90, 0, 95, 10)),        # wholly outside: nothing left, dropped
        (6, "n02391049", (5, 5, 5, 5))]))         # a single pixel is a 1 x 1 box
    with caplog.at_level(logging.WARNING, logger="absl"):
        frame = imagenet_vid.read_frame(root, "val", video, "000001")
    warnings = [r.getMessage() for r in caplog.records
                if r.name == "absl" and r.levelno >= logging.WARNING]
    assert len(warnings) == 1
    assert re.search("000001.xml: dropped 2 degenerate boxes.*clipped 1", warnings[0])
    assert frame["frame"].shape == (40, 80, 3)
    np.testing.assert_array_equal(frame["track_ids"], [0, 2, 6])
    np.testing.assert_array_equal(frame["classes"], [0, 29, 29])
    np.testing.assert_allclose(frame["boxes"], [[4 / 40, 8 / 80, 21 / 40, 41 / 80],
                                                [30 / 40, 70 / 80, 1.0, 1.0],
                                                [5 / 40, 5 / 80, 6 / 40, 6 / 80]],
                               rtol=1e-6, atol=1e-6)
    assert frame["boxes"].dtype == np.float32
    assert frame["track_ids"].dtype == np.int32


def test_vid_frame_without_objects(vid_video):
    root, video = vid_video
    _write(f"{root}/Annotations/VID/val/{video}/000003.xml", _vid_xml(40, 80, []))
    frame = imagenet_vid.read_frame(root, "val", video, "000003")
    assert frame["boxes"].shape == (0, 4)
    assert frame["classes"].shape == (0,)
    assert frame["track_ids"].shape == (0,)
    clip = clips_lib.validate_clip(imagenet_vid.read_video(root, "val", video, 3, 2))
    np.testing.assert_array_equal(clip["track_ids"][0], [0, 3])
    np.testing.assert_array_equal(clip["valid"], [[False, False], [True, True]])
    np.testing.assert_array_equal(clip["boxes"][0], np.zeros((2, 4)))


def test_vid_fixture_copy_follows_the_official_layout(tmp_path):
    root = fixtures.write_vid(str(tmp_path / "official"), num_frames=(5, 4))
    videos = imagenet_vid.list_videos(root, "train")
    assert videos == [f"ILSVRC2015_VID_train_0000/ILSVRC2015_train_0000000{v}" for v in range(2)]
    with open(f"{root}/ImageSets/VID/train_1.txt") as f:
        assert f.read().split() == [videos[0], "1", videos[1], "-1"]
    assert imagenet_vid.frame_names(root, "train", videos[1]) == [
        "000000", "000001", "000002", "000003", "000004"]
    for t, name in enumerate(imagenet_vid.frame_names(root, "val", "ILSVRC2015_val_00000001")):
        frame = imagenet_vid.read_frame(root, "val", "ILSVRC2015_val_00000001", name)
        if t == 3:                                 # the last frame has no object
            assert frame["boxes"].shape == (0, 4)
            continue
        # The degenerate box of frame 1 is dropped; the zebra is on even frames.
        np.testing.assert_array_equal(frame["track_ids"], [0, 5] if t % 2 == 0 else [0])
        np.testing.assert_array_equal(frame["classes"][0], 1)
        # The reader's box of track 0 bounds the painted pixels exactly.
        red = (frame["frame"][..., 0] > 170) & (frame["frame"][..., 1] < 90)
        rows, cols = np.nonzero(red)
        painted = [rows.min(), cols.min(), rows.max() + 1, cols.max() + 1]
        np.testing.assert_allclose(frame["boxes"][0] * [48, 64, 48, 64], painted, atol=1e-4)


def test_vid_train_lists_name_videos_with_either_label(tmp_path):
    root = str(tmp_path / "lists")
    lines = {"train_1.txt": "ILSVRC2015_VID_train_0000/a 1\nILSVRC2015_VID_train_0001/b -1\n",
             "train_2.txt": "ILSVRC2015_VID_train_0000/a -1\nILSVRC2015_VID_train_0002/c 1\n"}
    for name, text in lines.items():
        _write(f"{root}/ImageSets/VID/{name}", text)
    # b is a negative of class 1 only, but it is an (annotated) training video all the same.
    assert imagenet_vid.list_videos(root, "train") == [
        "ILSVRC2015_VID_train_0000/a", "ILSVRC2015_VID_train_0001/b",
        "ILSVRC2015_VID_train_0002/c"]
    _write(f"{root}/ImageSets/VID/train_3.txt", "ILSVRC2015_VID_train_0000/a\n")
    with pytest.raises(layout.DataLayoutError, match="(?s)train_3.txt.*Data/VID"):
        imagenet_vid.list_videos(root, "train")


def test_vid_malformed_annotation_is_named(vid_video):
    root, video = vid_video
    _write(f"{root}/Annotations/VID/val/{video}/000001.xml", "<annotation><size>")
    with pytest.raises(layout.DataLayoutError, match="000001.xml.*not valid XML"):
        list(imagenet_vid.vid_clips(root, "val", clip_length=2))
    _write(f"{root}/Annotations/VID/val/{video}/000001.xml",
           _vid_xml(40, 80, [(0, "n99999999", (0, 0, 1, 1))]))
    with pytest.raises(layout.DataLayoutError, match="n99999999"):
        list(imagenet_vid.vid_clips(root, "val", clip_length=2))
    _write(f"{root}/Annotations/VID/val/{video}/000001.xml", _vid_xml(41, 80, []))
    with pytest.raises(layout.DataLayoutError, match=r"says size \(41, 80\)"):
        imagenet_vid.read_frame(root, "val", video, "000001")


def test_vid_missing_copy_names_the_layout(vid_video, tmp_path):
    with pytest.raises(layout.DataLayoutError, match="(?s)ImageSets/VID.*Data/VID"):
        imagenet_vid.list_videos(str(tmp_path / "nothing"), "train")
    root, _ = vid_video
    with pytest.raises(layout.DataLayoutError, match="(?s)frames of video 'gone'.*Data"):
        imagenet_vid.frame_names(root, "val", "gone")
    os.makedirs(f"{root}/Data/VID/val/empty")
    with pytest.raises(layout.DataLayoutError, match="(?s)no .JPEG frames.*Data/VID"):
        imagenet_vid.frame_names(root, "val", "empty")


# DAVIS.

@pytest.fixture
def davis_root(tmp_path):
    """One 3-frame sequence, bear, whose foreground is value 255 in frame 1 and 1 in frame 2."""
    root = str(tmp_path / "davis")
    for t in range(3):
        _write_image(f"{root}/JPEGImages/480p/bear/{t:05d}.jpg", _flat(24, 32, 100))
        annotation = np.zeros((24, 32), np.uint8)
        if t > 0:
            annotation[5:10, 3 + t:12] = 255 if t == 1 else 1
        _write_image(f"{root}/Annotations/480p/bear/{t:05d}.png", annotation)
    _write(f"{root}/ImageSets/2016/train.txt", "bear\n")
    _write(f"{root}/ImageSets/2016/val.txt",
           "/JPEGImages/480p/bear/00000.jpg /Annotations/480p/bear/00000.png\n")
    return root


def test_davis_reads_foreground_masks(davis_root):
    root = davis_root
    assert davis.list_sequences(root, "val") == ["bear"]
    (clip,) = list(davis.davis_clips(root, "train"))
    clips_lib.validate_clip(clip)
    assert clip["mask"].shape == (3, 24, 32)
    assert clip["mask"][0].sum() == 0
    assert clip["mask"][1].sum() == 5 * 8    # value 255 is foreground
    assert clip["mask"][2].sum() == 5 * 7    # so is value 1
    np.testing.assert_array_equal(clip["valid"][:, 0], [False, True, True])
    np.testing.assert_allclose(clip["boxes"][2, 0], [5 / 24, 5 / 32, 10 / 24, 12 / 32],
                               rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(clip["instance_masks"][:, 0], clip["mask"])
    assert len(list(davis.davis_clips(root, "train", clip_length=2))) == 1


def test_davis_malformed_annotation_is_named(davis_root):
    root = davis_root
    _write(f"{root}/Annotations/480p/bear/00001.png", "not a png")
    with pytest.raises(layout.DataLayoutError, match="00001.png"):
        list(davis.davis_clips(root, "train"))
    _write_image(f"{root}/Annotations/480p/bear/00001.png", np.zeros((10, 10), np.uint8))
    with pytest.raises(layout.DataLayoutError, match="must match"):
        list(davis.davis_clips(root, "train"))


def test_davis_missing_copy_names_the_layout(tmp_path):
    with pytest.raises(layout.DataLayoutError, match="(?s)ImageSets/2016.*JPEGImages/480p"):
        davis.list_sequences(str(tmp_path / "nothing"), "val")


# COCO.

@pytest.fixture
def coco_root(tmp_path):
    """One val image with a dog and a crowd car."""
    root = str(tmp_path / "coco")
    _write_image(f"{root}/val2017/a.jpg", _flat(20, 30, 50))
    annotations = {
        "images": [{"id": 7, "file_name": "a.jpg", "height": 20, "width": 30}],
        "categories": [{"id": 18, "name": "dog"}, {"id": 3, "name": "car"}],
        "annotations": [
            {"id": 1, "image_id": 7, "category_id": 18, "bbox": [3, 2, 10, 8], "area": 80,
             "iscrowd": 0, "segmentation": [[3, 2, 13, 2, 13, 10, 3, 10]]},
            {"id": 2, "image_id": 7, "category_id": 3, "bbox": [0, 0, 5, 5], "area": 25,
             "iscrowd": 1, "segmentation": {"counts": [0, 600], "size": [20, 30]}},
        ],
    }
    _write(f"{root}/annotations/instances_val2017.json", json.dumps(annotations))
    return root


def test_coco_reads_records(coco_root):
    source = coco.CocoStills.from_root(coco_root, "val")
    assert source.class_names == ("car", "dog")
    (record,) = list(source.records(with_masks=False))
    np.testing.assert_array_equal(record["classes"], [1])                 # crowd car skipped
    (record,) = list(source.records())
    assert record["image"].shape == (20, 30, 3)
    np.testing.assert_allclose(record["boxes"][0], [2 / 20, 3 / 30, 10 / 20, 13 / 30],
                               rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(record["classes"], [1, 0])              # crowd car kept for masks
    assert record["instance_masks"][1].sum() == 20 * 30
    rows, cols = np.nonzero(record["instance_masks"][0])
    assert (rows.min(), cols.min()) == (2, 3)
    np.testing.assert_allclose([rows.max(), cols.max()], [10, 13], rtol=1e-6, atol=1)


def test_coco_malformed_file_is_named(coco_root):
    root = coco_root
    _write(f"{root}/annotations/instances_val2017.json", "{\"images\": [")
    with pytest.raises(layout.DataLayoutError, match="instances_val2017.json"):
        coco.CocoStills.from_root(root, "val")
    with pytest.raises(layout.DataLayoutError, match="instances_<split>2017.json"):
        coco.CocoStills.from_root(root, "train")


# Pascal VOC.

@pytest.fixture
def voc_root(tmp_path):
    """One train image: a dog, a difficult cat, a person, and their instance masks."""
    root = str(tmp_path / "voc")
    _write_image(f"{root}/JPEGImages/2008_000001.jpg", _flat(20, 40, 90))
    _write(f"{root}/Annotations/2008_000001.xml",
           "<annotation><size><width>40</width><height>20</height><depth>3</depth></size>"
           "<object><name>dog</name><difficult>0</difficult><bndbox><xmin>1</xmin>"
           "<ymin>3</ymin><xmax>20</xmax><ymax>10</ymax></bndbox></object>"
           "<object><name>cat</name><difficult>1</difficult><bndbox><xmin>2</xmin>"
           "<ymin>2</ymin><xmax>4</xmax><ymax>4</ymax></bndbox></object>"
           "<object><name>person</name><difficult>0</difficult><bndbox><xmin>21</xmin>"
           "<ymin>1</ymin><xmax>40</xmax><ymax>20</ymax></bndbox></object></annotation>")
    objects = np.zeros((20, 40), np.uint8)
    objects[4:8, 2:10] = 1
    objects[0:20, 25:30] = 3
    objects[8, :] = 255
    _write_image(f"{root}/SegmentationObject/2008_000001.png", objects)
    _write(f"{root}/ImageSets/Main/train.txt", "2008_000001\n")
    _write(f"{root}/ImageSets/Segmentation/train.txt", "2008_000001\n")
    return root


def test_voc_reads_records_with_masks(voc_root):
    root = voc_root
    (record,) = list(pascal_voc.voc_records(root, "train"))
    np.testing.assert_allclose(record["boxes"], [[2 / 20, 0.0, 0.5, 0.5], [0.0, 0.5, 1.0, 1.0]],
                               rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(record["classes"], [11, 14])  # dog, person; difficult cat
    assert "instance_masks" not in record
    (record,) = list(pascal_voc.voc_records(root, "train", with_masks=True))
    assert record["instance_masks"].shape == (2, 20, 40)
    assert record["instance_masks"][0].sum() == 4 * 8
    assert record["instance_masks"][1].sum() == 19 * 5  # row 8 is void (255)


def test_voc_malformed_annotation_is_named(voc_root):
    root = voc_root
    _write(f"{root}/Annotations/2008_000001.xml", "<annotation><size><width>x</width>"
           "<height>20</height></size></annotation>")
    with pytest.raises(layout.DataLayoutError, match="non-numeric <width>"):
        list(pascal_voc.voc_records(root, "train"))
    with pytest.raises(layout.DataLayoutError, match="ImageSets/Main/val.txt"):
        list(pascal_voc.voc_records(root, "val"))
