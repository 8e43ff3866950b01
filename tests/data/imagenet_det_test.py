"""Tests for the ImageNet DET reader on a fixture copy of ILSVRC2015's DET layout."""
import numpy as np
import pytest

from patchwork_tf.data import imagenet_det
from patchwork_tf.data import imagenet_vid
from patchwork_tf.data import layout
from tests.data import fixtures

H, W = 40, 60   # the fixture's image size
CATTLE = imagenet_vid.CLASS_NAMES.index("cattle")


@pytest.fixture(name="root")
def _root(tmp_path):
    return fixtures.write_det(str(tmp_path / "det"), size=(H, W))


def test_wnids_are_the_200_det_classes_with_vid_first():
    assert len(imagenet_det.WNIDS) == len(set(imagenet_det.WNIDS)) == 200
    assert imagenet_det.WNIDS[:30] == imagenet_vid.CLASS_WNIDS
    assert list(imagenet_det.WNIDS[30:]) == sorted(imagenet_det.WNIDS[30:])
    classes = [imagenet_det.WNIDS.index(w) for w in ("n02391049", "n07739125", "n02402425")]
    np.testing.assert_array_equal(imagenet_det.to_vid_classes(classes),
                                  [imagenet_vid.CLASS_NAMES.index("zebra"), -1, CATTLE])


def test_train_split_is_the_positive_images_without_partial_labels(root):
    # The airplane and the cattle/apple images are positives (label 1). The zebra image is a
    # positive of zebra but a partial positive (0) of bird, the extra image only a negative
    # (-1) in every list: both are left out.
    assert imagenet_det.list_images(root, "train") == [
        "ILSVRC2013_train/n02691156/n02691156_1001",
        "ILSVRC2014_train_0000/ILSVRC2014_train_00000001",
        "ILSVRC2014_train_0000/ILSVRC2014_train_00000002"]
    assert imagenet_det.list_images(root, "val") == [
        "ILSVRC2012_val_00000001", "ILSVRC2012_val_00000002"]


def test_records_read_inclusive_corners_as_pixel_edges(root):
    airplane, mixed, apple = list(imagenet_det.det_records(root, "train"))
    assert airplane["image"].shape == (H, W, 3) and airplane["image"].dtype == np.uint8
    assert airplane["image_id"] == "imagenet_det/train/ILSVRC2013_train/n02691156/n02691156_1001"
    # Inclusive x 4..23, y 6..19: edges x 4..24, y 6..20.
    np.testing.assert_allclose(airplane["boxes"], [[6 / H, 4 / W, 20 / H, 24 / W]])
    np.testing.assert_array_equal(airplane["classes"], [0])
    # Cattle x 10..29, y 5..24 and apple x 40..49, y 2..11; the second cattle box has
    # xmax 45 < xmin 50 and is dropped.
    np.testing.assert_allclose(mixed["boxes"], [[5 / H, 10 / W, 25 / H, 30 / W],
                                                [2 / H, 40 / W, 12 / H, 50 / W]])
    assert mixed["boxes"].dtype == np.float32 and mixed["classes"].dtype == np.int32
    assert [imagenet_det.WNIDS[c] for c in mixed["classes"]] == ["n02402425", "n07739125"]
    np.testing.assert_array_equal(imagenet_det.to_vid_classes(mixed["classes"]), [CATTLE, -1])
    np.testing.assert_array_equal(imagenet_det.to_vid_classes(apple["classes"]), [-1])


def test_stills_read_the_xml_and_decode_the_jpeg_on_request(root, monkeypatch):
    decoded = []
    read_image = layout.read_image
    monkeypatch.setattr(layout, "read_image",
                        lambda path, *args: decoded.append(path) or read_image(path, *args))
    stills = list(imagenet_det.det_stills(root, "train"))
    assert not decoded
    records = list(imagenet_det.det_records(root, "train"))
    assert len(decoded) == len(records) == len(stills) == 3
    for still, record in zip(stills, records):
        assert set(still.labels) == set(record) - {"image"}
        for key, value in still.labels.items():
            np.testing.assert_array_equal(value, record[key])
    np.testing.assert_array_equal(stills[2].read_image(), records[2]["image"])
    # A <size> that disagrees with the JPEG is found when the image is decoded, naming the XML.
    image_id = "ILSVRC2014_train_0000/ILSVRC2014_train_00000002"
    fixtures.write(f"{root}/Annotations/DET/train/{image_id}.xml",
                   fixtures.det_xml(H, W + 1, [("n07739125", (3, 4, 20, 30))]))
    mismatched = imagenet_det.still(root, "train", image_id)
    with pytest.raises(layout.DataLayoutError,
                       match=rf"{image_id}.xml' says size \(40, 61\), the image is \(40, 60\)"):
        mismatched.read_image()


def test_degenerate_boxes_and_unknown_classes_are_dropped_and_logged(root, caplog):
    image_id = "ILSVRC2014_train_0000/ILSVRC2014_train_00000001"
    fixtures.write(f"{root}/Annotations/DET/train/{image_id}.xml", fixtures.det_xml(H, W, [
        ("n02402425", (10, 5, 29, 24)), ("n02402425", (50, 10, 45, 20)),
        ("n99999999", (1, 1, 5, 5)), ("n02691156", (55, 30, 70, 45))]))
    with caplog.at_level("WARNING"):
        record = imagenet_det.read_image(root, "train", image_id)
    messages = [r.getMessage() for r in caplog.records]
    assert any("dropped 1 objects whose <name>" in m for m in messages)
    assert any("dropped 1 degenerate boxes" in m and "clipped 1" in m for m in messages)
    # The airplane's edges x 55..71, y 30..46 are clipped to the 60 x 40 image.
    np.testing.assert_allclose(record["boxes"], [[5 / H, 10 / W, 25 / H, 30 / W],
                                                 [30 / H, 55 / W, 1.0, 1.0]])
    np.testing.assert_array_equal(record["classes"], [CATTLE, 0])


def test_images_without_objects(root):
    (dog_and_accordion, empty) = list(imagenet_det.det_records(root, "val"))
    assert [imagenet_det.WNIDS[c] for c in dog_and_accordion["classes"]] == [
        "n02084071", "n02672831"]
    assert empty["boxes"].shape == (0, 4) and empty["classes"].shape == (0,)
    # The negative from the extra folders has no annotation file at all.
    negative = imagenet_det.read_image(
        root, "train", "ILSVRC2013_train_extra0/ILSVRC2013_train_00000001")
    assert negative["boxes"].shape == (0, 4) and negative["image"].shape == (H, W, 3)


def test_missing_or_malformed_copy_names_the_layout(root, tmp_path):
    with pytest.raises(layout.DataLayoutError, match="(?s)ImageSets/DET.*Data/DET/train"):
        imagenet_det.list_images(str(tmp_path / "nothing"), "train")
    with pytest.raises(layout.DataLayoutError, match="(?s)Annotations/DET/val.*Annotations/DET"):
        list(imagenet_det.det_records(str(tmp_path / "nothing"), "val"))
    fixtures.write(f"{root}/ImageSets/DET/train_7.txt", "ILSVRC2013_train/x/x_1 2\n")
    with pytest.raises(layout.DataLayoutError, match="(?s)line 'ILSVRC2013_train/x/x_1 2'.*"
                                                     "train_7.txt.*ImageSets/DET"):
        imagenet_det.list_images(root, "train")
    image_id = "ILSVRC2012_val_00000002"
    fixtures.write(f"{root}/Annotations/DET/val/{image_id}.xml", fixtures.det_xml(H + 1, W, []))
    with pytest.raises(layout.DataLayoutError, match=r"says size \(41, 60\)"):
        imagenet_det.read_image(root, "val", image_id)
    with pytest.raises(ValueError, match="split must be one of"):
        imagenet_det.list_images(root, "test")
