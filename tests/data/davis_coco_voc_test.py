"""DAVIS (2016 and 2017 downloads), COCO and Pascal VOC readers on fixtures in their official
formats (tests/data/fixtures.py); expected values come from the fixtures' hand-made shapes."""
import json
import logging

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from patchwork_tf.data import clips as clips_lib
from patchwork_tf.data import coco
from patchwork_tf.data import davis
from patchwork_tf.data import layout
from patchwork_tf.data import pascal_voc
from patchwork_tf.metrics import davis as davis_metric
from tests.data import fixtures

HEIGHT, WIDTH = 48, 64


def _rectangle(t):
    """Foreground of frame t of a write_davis sequence: its moving box."""
    x0, y0, x1, y1 = fixtures._moving_box(t, WIDTH)
    mask = np.zeros((HEIGHT, WIDTH), np.uint8)
    mask[y0:y1, x0:x1] = 1
    return mask


@pytest.fixture(scope="module", params=[2016, 2017])
def davis_root(request, tmp_path_factory):
    root = str(tmp_path_factory.mktemp(f"davis{request.param}"))
    return fixtures.write_davis(root, num_frames=(5, 4), year=request.param,
                                absent_frame=3), request.param


def test_davis_annotation_files_are_in_the_official_modes(davis_root):
    davis_root, year = davis_root
    with Image.open(f"{davis_root}/Annotations/480p/trainseq0/00001.png") as image:
        if year == 2016:
            assert image.mode == "L" and set(np.unique(image)) == {0, 255}
        else:
            assert image.mode == "P" and set(np.unique(image)) == {0, 1, 255}
            assert image.getpalette()[3:6] == [128, 0, 0]          # object 1 is dark red


def test_davis_lists_sequences_and_frames_of_either_download(davis_root):
    davis_root, _ = davis_root
    assert davis.list_sequences(davis_root, "train") == ["trainseq0", "trainseq1"]
    assert davis.list_sequences(davis_root, "val") == ["valseq0", "valseq1"]
    assert davis.frame_names(davis_root, "valseq1") == ["00000", "00001", "00002", "00003"]


def test_davis_read_frame_gives_foreground_and_void(davis_root):
    davis_root, year = davis_root
    year_2017 = year == 2017
    first = davis.read_frame(davis_root, "trainseq0", "00000")
    assert first["frame"].shape == (HEIGHT, WIDTH, 3) and first["frame"].dtype == np.uint8
    expected = _rectangle(0)
    if year_2017:                       # object 2 is foreground too
        expected[HEIGHT - 6:HEIGHT - 2, WIDTH - 6:WIDTH - 2] = 1
    np.testing.assert_array_equal(first["mask"], expected)
    second = davis.read_frame(davis_root, "trainseq0", "00001")
    np.testing.assert_array_equal(second["mask"], _rectangle(1))
    x0, y0, x1, y1 = fixtures._moving_box(1, WIDTH)
    void = np.zeros((HEIGHT, WIDTH), bool)
    if year_2017:
        void[y0:y1, x1] = True          # 255 is void, not foreground
    np.testing.assert_array_equal(second["void"], void)
    assert davis.read_frame(davis_root, "trainseq0", "00003")["mask"].sum() == 0


def test_davis_read_sequence_stacks_the_frames(davis_root):
    davis_root, _ = davis_root
    clip = clips_lib.validate_clip(davis.read_sequence(davis_root, "trainseq1", 1, 3))
    assert clip["frames"].shape == (3, HEIGHT, WIDTH, 3)
    for t in range(3):
        frame = davis.read_frame(davis_root, "trainseq1", f"{t + 1:05d}")
        np.testing.assert_array_equal(clip["frames"][t], frame["frame"])
        np.testing.assert_array_equal(clip["mask"][t], frame["mask"])
    np.testing.assert_array_equal(clip["valid"][:, 0], [True, True, False])   # frame 3 empty
    x0, y0, x1, y1 = fixtures._moving_box(2, WIDTH)
    np.testing.assert_allclose(clip["boxes"][1, 0],
                               [y0 / HEIGHT, x0 / WIDTH, y1 / HEIGHT, x1 / WIDTH])
    assert len(list(davis.davis_clips(davis_root, "train", clip_length=2))) == 4


def test_davis_frames_stream_into_the_metric(davis_root):
    davis_root, _ = davis_root
    metric = davis_metric.DavisJF()
    for sequence in davis.list_sequences(davis_root, "val"):
        for t, name in enumerate(davis.frame_names(davis_root, sequence)):
            frame = davis.read_frame(davis_root, sequence, name)
            prediction = np.zeros_like(frame["mask"]) if t == 0 else frame["mask"]
            metric.add_frame(sequence, t, prediction, frame["mask"], frame["void"])
    # Frame 0 (a wrong empty prediction) is not scored; frame 3 is empty and predicted empty.
    assert metric.result()["J"] == 1.0 and metric.result()["F"] == 1.0


def test_davis_2016_download_counts_any_non_zero_value_as_foreground(tmp_path):
    # As the DAVIS 2016 toolkits (im_annot > 0): 255 is foreground even in a palette PNG.
    root = fixtures.write_davis(str(tmp_path), num_sequences=(1, 1), num_frames=(2, 2))
    annotation = np.zeros((HEIGHT, WIDTH), np.uint8)
    annotation[2:5, 3:9] = 255
    fixtures.write_palette_png(f"{root}/Annotations/480p/trainseq0/00001.png", annotation)
    frame = davis.read_frame(root, "trainseq0", "00001")
    np.testing.assert_array_equal(frame["mask"], annotation // 255)
    assert not frame["void"].any()


def test_davis_2016_frame_lines_must_be_paths(tmp_path):
    root = fixtures.write_davis(str(tmp_path), num_sequences=(1, 1), num_frames=(2, 2))
    fixtures.write(f"{root}/ImageSets/480p/val.txt", "/JPEGImages/bear.jpg /Annotations/x.png\n")
    with pytest.raises(layout.DataLayoutError, match="(?s)JPEGImages/bear.jpg.*ImageSets/2016"):
        davis.list_sequences(root, "val")


def test_davis_missing_copy_names_both_layouts(tmp_path):
    with pytest.raises(layout.DataLayoutError,
                       match="(?s)ImageSets/2016/val.txt.*ImageSets/480p/val.txt.*JPEGImages/480p"
                             ".*ImageSets/2016/.*ImageSets/480p/"):
        davis.list_sequences(str(tmp_path), "val")


@pytest.fixture(scope="module")
def coco_stills(tmp_path_factory):
    return coco.CocoStills.from_root(fixtures.write_coco(str(tmp_path_factory.mktemp("coco"))))


def test_coco_classes_follow_sorted_category_ids(coco_stills):
    assert coco_stills.category_ids == (1, 17, 21)
    assert coco_stills.class_names == ("person", "cat", "cow")
    assert coco_stills.image_ids == (1, 2, 3, 4)


def test_coco_boxes_keep_continuous_pixel_coordinates(coco_stills):
    record = coco_stills.record(2, with_masks=False)
    # bbox [x, y, w, h] = [30, 10, 20, 25] and [5, 5, 20, 15] on a 40 x 60 image.
    np.testing.assert_allclose(record["boxes"], [[10 / 40, 30 / 60, 35 / 40, 50 / 60],
                                                 [5 / 40, 5 / 60, 20 / 40, 25 / 60]])
    np.testing.assert_array_equal(record["classes"], [0, 2])
    assert "instance_masks" not in record


def test_coco_crowd_is_an_object_for_masks_only(coco_stills):
    assert not coco_stills.record(2, with_masks=False)["is_crowd"].any()
    record = coco_stills.record(2, with_masks=True)
    np.testing.assert_array_equal(record["is_crowd"], [False, False, True])
    np.testing.assert_array_equal(record["classes"], [0, 2, 0])
    x, y, w, h = fixtures.COCO_CROWD_BOX
    expected = np.zeros((40, 60), np.uint8)
    expected[y:y + h, x:x + w] = 1
    np.testing.assert_array_equal(record["instance_masks"][2], expected)
    # The fixture's RLE is what pycocotools' own encoder makes of that mask.
    rle = mask_utils.frPyObjects(fixtures.uncompressed_rle(expected), 40, 60)
    assert rle["counts"] == mask_utils.encode(np.asfortranarray(expected))["counts"]


def test_coco_degenerate_boxes_dropped_and_counted(tmp_path, caplog):
    root = fixtures.write_coco(str(tmp_path))
    with caplog.at_level(logging.WARNING):
        stills = coco.CocoStills.from_root(root)
    assert "dropped 1 of" in caplog.text and "instances_train2017.json" in caplog.text
    record = stills.record(3)                       # the cow outside the image is gone
    np.testing.assert_array_equal(record["classes"], [0, 2])
    assert np.all(record["boxes"][:, 2:] > record["boxes"][:, :2])


def test_coco_image_without_annotations(coco_stills):
    record = coco_stills.record(4)
    assert record["boxes"].shape == (0, 4) and record["classes"].shape == (0,)
    assert record["instance_masks"].shape == (0, 40, 60)


def _count_decodes(monkeypatch):
    """Paths that `layout.read_image` opens from now on."""
    opened = []
    read_image = layout.read_image
    monkeypatch.setattr(layout, "read_image",
                        lambda path, *args: opened.append(path) or read_image(path, *args))
    return opened


def _assert_labels_of(stills, records):
    assert len(stills) == len(records)
    for still, record in zip(stills, records):
        assert set(still.labels) == set(record) - {"image"}
        for key, value in still.labels.items():
            np.testing.assert_array_equal(value, record[key])


@pytest.mark.parametrize("with_masks", [False, True])
def test_coco_stills_come_from_the_json_without_decoding(coco_stills, with_masks, monkeypatch):
    opened = _count_decodes(monkeypatch)
    stills = list(coco_stills.stills(with_masks))
    assert not opened
    records = list(coco_stills.records(with_masks))
    assert len(opened) == len(records) == 4
    _assert_labels_of(stills, records)
    np.testing.assert_array_equal(stills[1].read_image(), records[1]["image"])


def test_coco_size_mismatch_is_found_when_the_image_is_decoded(tmp_path):
    root = fixtures.write_coco(str(tmp_path))
    fixtures.write_image(f"{root}/train2017/{1:012d}.jpg", fixtures.flat(40, 61, 90))
    still = coco.CocoStills.from_root(root).still(2)
    with pytest.raises(layout.DataLayoutError, match="image 2 is 40x60, the file "
                                                     "'000000000001.jpg' is 40x61"):
        still.read_image()


def test_coco_malformed_annotation_is_named(tmp_path):
    root = fixtures.write_coco(str(tmp_path))
    path = f"{root}/annotations/instances_train2017.json"
    with open(path) as f:
        content = json.load(f)
    del content["annotations"][0]["bbox"]
    fixtures.write(path, json.dumps(content))
    with pytest.raises(layout.DataLayoutError, match="(?s)instances_train2017.json.*bbox"):
        coco.CocoStills.from_root(root)


@pytest.fixture(scope="module")
def voc_root(tmp_path_factory):
    return fixtures.write_voc(str(tmp_path_factory.mktemp("voc")), num_images=1)


def test_voc_inclusive_corners_become_pixel_edges(voc_root, caplog):
    with caplog.at_level(logging.WARNING):
        (record,) = list(pascal_voc.voc_records(voc_root, "trainval", with_masks=True))
    # Motorbike (5, 7)-(24, 20): pixels 4..23 x 6..19; person (31, 11)-(50, 35). The difficult
    # dog is skipped, the bottle (xmin 40 > xmax 39) dropped and counted.
    np.testing.assert_allclose(record["boxes"], [[6 / 40, 4 / 60, 20 / 40, 24 / 60],
                                                 [10 / 40, 30 / 60, 35 / 40, 50 / 60]])
    np.testing.assert_array_equal(record["classes"], [pascal_voc.CLASS_NAMES.index("motorbike"),
                                                      pascal_voc.CLASS_NAMES.index("person")])
    assert "2008_000000.xml: dropped 1 object" in caplog.text
    # Each instance mask fills exactly its box's pixels: the 255 border is not an object.
    for box, mask in zip(record["boxes"], record["instance_masks"]):
        rows, cols = np.nonzero(mask)
        np.testing.assert_allclose([rows.min() / 40, cols.min() / 60, (rows.max() + 1) / 40,
                                    (cols.max() + 1) / 60], box)
        assert mask.sum() == (rows.max() + 1 - rows.min()) * (cols.max() + 1 - cols.min())


def test_voc_segmentation_object_is_a_palette_png_with_void(voc_root):
    with Image.open(f"{voc_root}/SegmentationObject/2008_000000.png") as image:
        assert image.mode == "P"
        assert set(np.unique(image)) == {0, 1, 2, 3, 255}


def test_voc_difficult_objects_on_request(voc_root):
    (record,) = list(pascal_voc.voc_records(voc_root, "trainval", with_masks=True,
                                            skip_difficult=False))
    assert record["classes"][2] == pascal_voc.CLASS_NAMES.index("dog")
    np.testing.assert_allclose(record["boxes"][2], [1 / 40, 50 / 60, 9 / 40, 58 / 60])
    assert record["instance_masks"][2].sum() == 8 * 8      # SegmentationObject value 3


@pytest.mark.parametrize("with_masks", [False, True])
def test_voc_stills_come_from_the_annotations_without_decoding_the_jpeg(
        tmp_path, with_masks, monkeypatch):
    root = fixtures.write_voc(str(tmp_path), others=True)
    opened = _count_decodes(monkeypatch)
    stills = list(pascal_voc.voc_stills(root, "trainval", with_masks))
    # With masks, the SegmentationObject PNGs are read: they are annotations.
    assert [path[-len("2008_000000.png"):] for path in opened] == (
        [f"2008_{i:06d}.png" for i in range(4)] if with_masks else [])
    del opened[:]
    records = list(pascal_voc.voc_records(root, "trainval", with_masks))
    assert sum(path.endswith(".jpg") for path in opened) == len(records) == 4
    _assert_labels_of(stills, records)
    np.testing.assert_array_equal(stills[3].read_image(), records[3]["image"])
    fixtures.write_image(f"{root}/JPEGImages/2008_000003.jpg", fixtures.flat(41, 60, 90))
    with pytest.raises(layout.DataLayoutError, match=r"2008_000003.xml says size \(40, 60\), "
                                                     r"the image is \(41, 60\)"):
        stills[3].read_image()
