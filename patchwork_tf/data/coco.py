"""COCO as a source of still images for fake videos (paper Sec. 3.4), read with pycocotools.

Yields still records (see `patchwork_tf.data.fake_video`): boxes from COCO's `[x, y, w, h]`
pixel boxes, classes as the 0-based index of the category id in sorted order, instance masks
from `COCO.annToMask`. Crowd annotations are skipped.
"""
import contextlib
import io
import json
import os

import numpy as np
from pycocotools import coco as coco_api

from patchwork_tf.data import layout as layout_lib

LAYOUT = """<root>/  (a COCO 2017 copy)
  annotations/instances_<split>2017.json   COCO detection json: images, annotations
      (bbox [x, y, w, h], category_id, segmentation, iscrowd), categories
  <split>2017/<file_name>.jpg              the images named in the json"""


class CocoStills:
    """The images of one COCO annotation file.

    Args:
        annotation_file: path of an `instances_*.json`.
        image_dir: folder holding the images named in it.
    """

    def __init__(self, annotation_file, image_dir):
        layout_lib.require(annotation_file, "COCO annotation file", LAYOUT)
        layout_lib.require(image_dir, "COCO image folder", LAYOUT)
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                self._coco = coco_api.COCO(annotation_file)
        except (json.JSONDecodeError, KeyError, TypeError, AssertionError) as error:
            raise layout_lib.DataLayoutError(
                f"cannot read COCO annotations {annotation_file!r} ({error!r}). Expected this "
                f"layout:\n{LAYOUT}") from error
        self._image_dir = image_dir
        self.category_ids = tuple(sorted(self._coco.getCatIds()))
        self.class_names = tuple(self._coco.cats[i]["name"] for i in self.category_ids)
        self._class_index = {cat: i for i, cat in enumerate(self.category_ids)}
        self.image_ids = tuple(sorted(self._coco.getImgIds()))

    @classmethod
    def from_root(cls, root, split="train"):
        """The standard layout: `<root>/annotations/instances_<split>2017.json`."""
        return cls(os.path.join(root, "annotations", f"instances_{split}2017.json"),
                   os.path.join(root, f"{split}2017"))

    def __len__(self):
        return len(self.image_ids)

    def record(self, image_id, with_masks=True):
        """The still record of one image (boxes clipped to the image)."""
        info = self._coco.imgs[image_id]
        image = layout_lib.read_image(os.path.join(self._image_dir, info["file_name"]), LAYOUT)
        height, width = image.shape[:2]
        if (info["height"], info["width"]) != (height, width):
            raise layout_lib.DataLayoutError(
                f"COCO says image {image_id} is {info['height']}x{info['width']}, the file "
                f"{info['file_name']!r} is {height}x{width}.")
        annotations = [a for a in self._coco.loadAnns(self._coco.getAnnIds(imgIds=image_id))
                       if not a.get("iscrowd", 0)]
        boxes = np.zeros((len(annotations), 4), np.float32)
        for k, annotation in enumerate(annotations):
            x, y, w, h = annotation["bbox"]
            boxes[k] = [y / height, x / width, (y + h) / height, (x + w) / width]
        record = {
            "image": image,
            "boxes": np.clip(boxes, 0.0, 1.0),
            "classes": np.array([self._class_index[a["category_id"]] for a in annotations],
                                np.int32),
            "image_id": f"coco/{image_id}",
        }
        if with_masks:
            masks = [self._coco.annToMask(a) for a in annotations]
            record["instance_masks"] = (np.stack(masks).astype(np.uint8) if masks
                                        else np.zeros((0, height, width), np.uint8))
        return record

    def records(self, with_masks=True, max_images=None):
        """Yields the still records of the images in id order."""
        for image_id in self.image_ids[:max_images]:
            yield self.record(image_id, with_masks)
