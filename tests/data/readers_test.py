"""Tests for the real-data readers on small fixture copies of each layout."""
import json
import os

import numpy as np
import tensorflow as tf

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


class ImagenetVidTest(tf.test.TestCase):

    def _fixture(self):
        root = self.get_temp_dir() + "/vid"
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

    def test_reads_clips_with_tracks_and_classes(self):
        root, video = self._fixture()
        self.assertEqual(imagenet_vid.list_videos(root, "val"), [video])
        clips = list(imagenet_vid.vid_clips(root, "val", clip_length=2))
        self.assertLen(clips, 2)                       # frames 0-1 and 2-3; frame 4 is a tail
        clip = clips_lib.validate_clip(clips[1])
        self.assertEqual(clip["frames"].shape, (2, 40, 80, 3))
        self.assertAllEqual(clip["track_ids"], [[0, 3], [0, 3]])
        self.assertAllEqual(clip["classes"][0], [0, 29])
        # Inclusive columns 8..40 are pixel edges 8 and 41; rows 4..22 (t = 2) edges 4 and 23.
        self.assertAllClose(clip["boxes"][0, 0], [4 / 40, 8 / 80, 23 / 40, 41 / 80])
        self.assertAllClose(clip["boxes"][1, 1], [0.0, 0.0, 1.0, 1.0])
        self.assertAllEqual(clips[0]["valid"], [[True], [True]])
        self.assertNear(float(clip["frames"][1].mean()), 60.0, 2.0)
        self.assertEqual(imagenet_vid.CLASS_NAMES[imagenet_vid.CLASS_WNIDS.index("n02391049")],
                         "zebra")

    def test_read_frame_drops_degenerate_boxes_and_clips_to_the_frame(self):
        root, video = self._fixture()
        _write(f"{root}/Annotations/VID/val/{video}/000001.xml", _vid_xml(40, 80, [
            (0, "n02691156", (8, 4, 40, 20)),
            (1, "n02691156", (30, 10, 29, 20)),       # xmax < xmin: width 0, dropped
            (2, "n02391049", (70, 30, 85, 45)),       # beyond the 80 x 40 frame: clipped
            (4, "n02391049", (90, 0, 95, 10)),        # wholly outside: nothing left, dropped
            (6, "n02391049", (5, 5, 5, 5))]))         # a single pixel is a 1 x 1 box
        with self.assertLogs("absl", "WARNING") as logs:
            frame = imagenet_vid.read_frame(root, "val", video, "000001")
        self.assertLen(logs.output, 1)
        self.assertRegex(logs.output[0], "000001.xml: dropped 2 degenerate boxes.*clipped 1")
        self.assertEqual(frame["frame"].shape, (40, 80, 3))
        self.assertAllEqual(frame["track_ids"], [0, 2, 6])
        self.assertAllEqual(frame["classes"], [0, 29, 29])
        self.assertAllClose(frame["boxes"], [[4 / 40, 8 / 80, 21 / 40, 41 / 80],
                                             [30 / 40, 70 / 80, 1.0, 1.0],
                                             [5 / 40, 5 / 80, 6 / 40, 6 / 80]])
        self.assertEqual(frame["boxes"].dtype, np.float32)
        self.assertEqual(frame["track_ids"].dtype, np.int32)

    def test_frame_without_objects(self):
        root, video = self._fixture()
        _write(f"{root}/Annotations/VID/val/{video}/000003.xml", _vid_xml(40, 80, []))
        frame = imagenet_vid.read_frame(root, "val", video, "000003")
        self.assertEqual(frame["boxes"].shape, (0, 4))
        self.assertEqual(frame["classes"].shape, (0,))
        self.assertEqual(frame["track_ids"].shape, (0,))
        clip = clips_lib.validate_clip(imagenet_vid.read_video(root, "val", video, 3, 2))
        self.assertAllEqual(clip["track_ids"][0], [0, 3])
        self.assertAllEqual(clip["valid"], [[False, False], [True, True]])
        self.assertAllEqual(clip["boxes"][0], np.zeros((2, 4)))

    def test_fixture_copy_follows_the_official_layout(self):
        root = fixtures.write_vid(self.get_temp_dir() + "/official", num_frames=(5, 4))
        videos = imagenet_vid.list_videos(root, "train")
        self.assertEqual(videos, [f"ILSVRC2015_VID_train_0000/ILSVRC2015_train_0000000{v}"
                                  for v in range(2)])
        with open(f"{root}/ImageSets/VID/train_1.txt") as f:
            self.assertEqual(f.read().split(), [videos[0], "1", videos[1], "-1"])
        self.assertEqual(imagenet_vid.frame_names(root, "train", videos[1]),
                         ["000000", "000001", "000002", "000003", "000004"])
        for t, name in enumerate(imagenet_vid.frame_names(root, "val", "ILSVRC2015_val_00000001")):
            frame = imagenet_vid.read_frame(root, "val", "ILSVRC2015_val_00000001", name)
            if t == 3:                                 # the last frame has no object
                self.assertEqual(frame["boxes"].shape, (0, 4))
                continue
            # The degenerate box of frame 1 is dropped; the zebra is on even frames.
            self.assertAllEqual(frame["track_ids"], [0, 5] if t % 2 == 0 else [0])
            self.assertAllEqual(frame["classes"][0], 1)
            # The reader's box of track 0 bounds the painted pixels exactly.
            red = (frame["frame"][..., 0] > 170) & (frame["frame"][..., 1] < 90)
            rows, cols = np.nonzero(red)
            painted = [rows.min(), cols.min(), rows.max() + 1, cols.max() + 1]
            self.assertAllClose(frame["boxes"][0] * [48, 64, 48, 64], painted, atol=1e-4)

    def test_train_lists_name_videos_with_either_label(self):
        root = self.get_temp_dir() + "/lists"
        lines = {"train_1.txt": "ILSVRC2015_VID_train_0000/a 1\nILSVRC2015_VID_train_0001/b -1\n",
                 "train_2.txt": "ILSVRC2015_VID_train_0000/a -1\nILSVRC2015_VID_train_0002/c 1\n"}
        for name, text in lines.items():
            _write(f"{root}/ImageSets/VID/{name}", text)
        # b is a negative of class 1 only, but it is an (annotated) training video all the same.
        self.assertEqual(imagenet_vid.list_videos(root, "train"), [
            "ILSVRC2015_VID_train_0000/a", "ILSVRC2015_VID_train_0001/b",
            "ILSVRC2015_VID_train_0002/c"])
        _write(f"{root}/ImageSets/VID/train_3.txt", "ILSVRC2015_VID_train_0000/a\n")
        with self.assertRaisesRegex(layout.DataLayoutError, "(?s)train_3.txt.*Data/VID"):
            imagenet_vid.list_videos(root, "train")

    def test_malformed_annotation_is_named(self):
        root, video = self._fixture()
        _write(f"{root}/Annotations/VID/val/{video}/000001.xml", "<annotation><size>")
        with self.assertRaisesRegex(layout.DataLayoutError, "000001.xml.*not valid XML"):
            list(imagenet_vid.vid_clips(root, "val", clip_length=2))
        _write(f"{root}/Annotations/VID/val/{video}/000001.xml",
               _vid_xml(40, 80, [(0, "n99999999", (0, 0, 1, 1))]))
        with self.assertRaisesRegex(layout.DataLayoutError, "n99999999"):
            list(imagenet_vid.vid_clips(root, "val", clip_length=2))
        _write(f"{root}/Annotations/VID/val/{video}/000001.xml", _vid_xml(41, 80, []))
        with self.assertRaisesRegex(layout.DataLayoutError, r"says size \(41, 80\)"):
            imagenet_vid.read_frame(root, "val", video, "000001")

    def test_missing_copy_names_the_layout(self):
        with self.assertRaisesRegex(layout.DataLayoutError, "(?s)ImageSets/VID.*Data/VID"):
            imagenet_vid.list_videos(self.get_temp_dir() + "/nothing", "train")
        root, video = self._fixture()
        with self.assertRaisesRegex(layout.DataLayoutError, "(?s)frames of video 'gone'.*Data"):
            imagenet_vid.frame_names(root, "val", "gone")
        os.makedirs(f"{root}/Data/VID/val/empty")
        with self.assertRaisesRegex(layout.DataLayoutError, "(?s)no .JPEG frames.*Data/VID"):
            imagenet_vid.frame_names(root, "val", "empty")


class DavisTest(tf.test.TestCase):

    def _fixture(self):
        root = self.get_temp_dir() + "/davis"
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

    def test_reads_foreground_masks(self):
        root = self._fixture()
        self.assertEqual(davis.list_sequences(root, "val"), ["bear"])
        (clip,) = list(davis.davis_clips(root, "train"))
        clips_lib.validate_clip(clip)
        self.assertEqual(clip["mask"].shape, (3, 24, 32))
        self.assertEqual(clip["mask"][0].sum(), 0)
        self.assertEqual(clip["mask"][1].sum(), 5 * 8)    # value 255 is foreground
        self.assertEqual(clip["mask"][2].sum(), 5 * 7)    # so is value 1
        self.assertAllEqual(clip["valid"][:, 0], [False, True, True])
        self.assertAllClose(clip["boxes"][2, 0], [5 / 24, 5 / 32, 10 / 24, 12 / 32])
        self.assertAllEqual(clip["instance_masks"][:, 0], clip["mask"])
        self.assertLen(list(davis.davis_clips(root, "train", clip_length=2)), 1)

    def test_malformed_annotation_is_named(self):
        root = self._fixture()
        _write(f"{root}/Annotations/480p/bear/00001.png", "not a png")
        with self.assertRaisesRegex(layout.DataLayoutError, "00001.png"):
            list(davis.davis_clips(root, "train"))
        _write_image(f"{root}/Annotations/480p/bear/00001.png", np.zeros((10, 10), np.uint8))
        with self.assertRaisesRegex(layout.DataLayoutError, "must match"):
            list(davis.davis_clips(root, "train"))

    def test_missing_copy_names_the_layout(self):
        with self.assertRaisesRegex(layout.DataLayoutError, "(?s)ImageSets/2016.*JPEGImages/480p"):
            davis.list_sequences(self.get_temp_dir() + "/nothing", "val")


class CocoTest(tf.test.TestCase):

    def _fixture(self):
        root = self.get_temp_dir() + "/coco"
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

    def test_reads_records(self):
        source = coco.CocoStills.from_root(self._fixture(), "val")
        self.assertEqual(source.class_names, ("car", "dog"))
        (record,) = list(source.records(with_masks=False))
        self.assertAllEqual(record["classes"], [1])                 # crowd car skipped
        (record,) = list(source.records())
        self.assertEqual(record["image"].shape, (20, 30, 3))
        self.assertAllClose(record["boxes"][0], [2 / 20, 3 / 30, 10 / 20, 13 / 30])
        self.assertAllEqual(record["classes"], [1, 0])              # crowd car kept for masks
        self.assertEqual(record["instance_masks"][1].sum(), 20 * 30)
        rows, cols = np.nonzero(record["instance_masks"][0])
        self.assertEqual((rows.min(), cols.min()), (2, 3))
        self.assertAllClose([rows.max(), cols.max()], [10, 13], atol=1)

    def test_malformed_file_is_named(self):
        root = self._fixture()
        _write(f"{root}/annotations/instances_val2017.json", "{\"images\": [")
        with self.assertRaisesRegex(layout.DataLayoutError, "instances_val2017.json"):
            coco.CocoStills.from_root(root, "val")
        with self.assertRaisesRegex(layout.DataLayoutError, "instances_<split>2017.json"):
            coco.CocoStills.from_root(root, "train")


class PascalVocTest(tf.test.TestCase):

    def _fixture(self):
        root = self.get_temp_dir() + "/voc"
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

    def test_reads_records_with_masks(self):
        root = self._fixture()
        (record,) = list(pascal_voc.voc_records(root, "train"))
        self.assertAllClose(record["boxes"], [[2 / 20, 0.0, 0.5, 0.5], [0.0, 0.5, 1.0, 1.0]])
        self.assertAllEqual(record["classes"], [11, 14])            # dog, person; difficult cat
        self.assertNotIn("instance_masks", record)
        (record,) = list(pascal_voc.voc_records(root, "train", with_masks=True))
        self.assertEqual(record["instance_masks"].shape, (2, 20, 40))
        self.assertEqual(record["instance_masks"][0].sum(), 4 * 8)
        self.assertEqual(record["instance_masks"][1].sum(), 19 * 5)  # row 8 is void (255)

    def test_malformed_annotation_is_named(self):
        root = self._fixture()
        _write(f"{root}/Annotations/2008_000001.xml", "<annotation><size><width>x</width>"
               "<height>20</height></size></annotation>")
        with self.assertRaisesRegex(layout.DataLayoutError, "non-numeric <width>"):
            list(pascal_voc.voc_records(root, "train"))
        with self.assertRaisesRegex(layout.DataLayoutError, "ImageSets/Main/val.txt"):
            list(pascal_voc.voc_records(root, "val"))


if __name__ == "__main__":
    tf.test.main()
