"""COCO as a source of still images for fake videos (paper Sec. 3.4), read with pycocotools.

Yields still records (see `patchwork_tf.data.fake_video`):
  * boxes from COCO's `bbox` `[x, y, w, h]`, which is in continuous pixel coordinates (the
    image spans x in [0, width], y in [0, height]; pixel i covers [i, i + 1)): the record keeps
    that convention, normalized, as `[y / H, x / W, (y + h) / H, (x + w) / W]`, clipped to the
    image. A box with no width or height left after clipping is dropped with its annotation;
    their number is logged once per annotation file;
  * classes as the 0-based index of the category id in sorted order (COCO's 80 detection
    categories have ids 1 .. 90 with gaps: class 0 is id 1, class 79 id 90);
  * instance masks from `COCO.annToMask` (polygons, and the RLE of crowd annotations, whose
    counts are an uncompressed list, or a compressed string);
  * images without annotations give records without objects.

Decoding. `CocoStills.stills` yields each image as a `fake_video.Still`: its labels come from
the json alone (masks too: `annToMask` draws them from the json), and `read_image` decodes the
file and checks its size against the json's. `records` and `record` decode every image; a
source that drops images by their labels (`training.sources`) decodes only those it keeps.

Crowd annotations (`iscrowd` 1) mark a region of many instances. The official evaluation
(`COCOeval.evaluate`) sets them to ignore: a detection matched to one is neither a true nor a
false positive. So for detection (`with_masks=False`) they are left out of the boxes, as
detectors are usually trained. For segmentation (`with_masks=True`) a crowd region is still
foreground, so it is kept as an instance and marked in `is_crowd`.
"""
import contextlib
import io
import json
import os

from absl import logging
import numpy as np
from pycocotools import coco as coco_api

from patchwork_tf.data import fake_video
from patchwork_tf.data import layout as layout_lib

LAYOUT = """<root>/  (a COCO 2017 copy)
  annotations/instances_<split>2017.json   COCO detection json: images, annotations
      (bbox [x, y, w, h], category_id, segmentation (polygons, or RLE when iscrowd is 1),
      iscrowd), categories
  <split>2017/<file_name>.jpg              the images named in the json"""


def _pixel_box(annotation, height, width):
    """The annotation's box as pixel edges (x0, y0, x1, y1), clipped to the image."""
    x, y, w, h = annotation["bbox"]
    return (min(max(x, 0.0), width), min(max(y, 0.0), height),
            min(max(x + w, 0.0), width), min(max(y + h, 0.0), height))


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
            self._degenerate = set()
            for annotation in self._coco.anns.values():
                info = self._coco.imgs[annotation["image_id"]]
                x0, y0, x1, y1 = _pixel_box(annotation, info["height"], info["width"])
                if x1 <= x0 or y1 <= y0:
                    self._degenerate.add(annotation["id"])
        except (json.JSONDecodeError, KeyError, TypeError, ValueError, AssertionError) as error:
            raise layout_lib.DataLayoutError(
                f"cannot read COCO annotations {annotation_file!r} ({error!r}). Expected this "
                f"layout:\n{LAYOUT}") from error
        if self._degenerate:
            logging.warning("%s: dropped %d of %d annotations whose box has no width or height "
                            "inside the image.", annotation_file, len(self._degenerate),
                            len(self._coco.anns))
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

    def still(self, image_id, with_masks=True):
        """One image as a `fake_video.Still`: its labels from the json, its file decoded only
        by `read_image`, which checks the image's size against the json's.

        Args:
            image_id: a COCO image id.
            with_masks: add `instance_masks` uint8 [K, H, W] and keep crowd annotations (see
                the module docstring); without, crowd annotations are left out.

        Returns:
            A `fake_video.Still` whose labels are `boxes` float32 [K, 4] normalized
            [ymin, xmin, ymax, xmax], `classes` int32 [K], `is_crowd` bool [K], `image_id`
            (and `instance_masks`).
        """
        info = self._coco.imgs[image_id]
        height, width = info["height"], info["width"]
        annotations = [a for a in self._coco.loadAnns(self._coco.getAnnIds(imgIds=image_id))
                       if a["id"] not in self._degenerate
                       and (with_masks or not a.get("iscrowd", 0))]
        boxes = np.zeros((len(annotations), 4), np.float32)
        for k, annotation in enumerate(annotations):
            x0, y0, x1, y1 = _pixel_box(annotation, height, width)
            boxes[k] = [y0 / height, x0 / width, y1 / height, x1 / width]
        labels = {
            "boxes": boxes,
            "classes": np.array([self._class_index[a["category_id"]] for a in annotations],
                                np.int32),
            "is_crowd": np.array([bool(a.get("iscrowd", 0)) for a in annotations], bool),
            "image_id": f"coco/{image_id}",
        }
        if with_masks:
            masks = [self._coco.annToMask(a) for a in annotations]
            labels["instance_masks"] = (np.stack(masks).astype(np.uint8) if masks
                                        else np.zeros((0, height, width), np.uint8))

        def read_image():
            image = layout_lib.read_image(os.path.join(self._image_dir, info["file_name"]),
                                          LAYOUT)
            if image.shape[:2] != (height, width):
                raise layout_lib.DataLayoutError(
                    f"COCO says image {image_id} is {height}x{width}, the file "
                    f"{info['file_name']!r} is {image.shape[0]}x{image.shape[1]}.")
            return image

        return fake_video.Still(labels, read_image)

    def record(self, image_id, with_masks=True):
        """The still record of one image (`still`'s labels and the decoded `image` uint8
        [H, W, 3])."""
        return self.still(image_id, with_masks).record()

    def stills(self, with_masks=True, max_images=None):
        """Yields the images as `fake_video.Still`s in id order; nothing is decoded."""
        for image_id in self.image_ids[:max_images]:
            yield self.still(image_id, with_masks)

    def records(self, with_masks=True, max_images=None):
        """Yields the still records of the images in id order, every image decoded."""
        for image in self.stills(with_masks, max_images):
            yield image.record()
