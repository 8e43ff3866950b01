"""Pascal VOC as a source of still images for fake videos (paper Sec. 3.4).

Yields still records (see `patchwork_tf.data.fake_video`).
  * Boxes: VOC's `<bndbox>` holds 1-based, inclusive pixel indices (the devkit's
    `VOCevaldet.m` measures a box as `xmax - xmin + 1` wide), so its pixel edges are
    `(xmin - 1, xmax)` and `(ymin - 1, ymax)` in continuous coordinates; they are normalized by
    the image size and clipped to it. A box with no width or height left is dropped, with a
    logged count per annotation file.
  * Difficult objects (`<difficult>1</difficult>`) are ignored by the official evaluation
    (neither true nor false positives in `VOCevaldet.m`); they are left out by default
    (`skip_difficult`), as detectors trained on VOC usually do.
  * Masks: `SegmentationObject/<id>.png` is a palette PNG whose value i marks the i-th object
    of the XML, 0 is background and 255 the void border drawn around objects (background
    here); instances follow the kept objects. The PNG's size is checked against the XML's.

Decoding. `voc_stills` yields each image as a `fake_video.Still`: labels from the XML (and the
masks from the `SegmentationObject` PNG, part of the annotation), and `read_image`, which
decodes the JPEG and checks its size against the XML's `<size>`. `voc_records` decodes every
image; a source that drops images by their labels (`training.sources`) decodes only those it
keeps.
"""
import os
import xml.etree.ElementTree as ElementTree

from absl import logging
import numpy as np

from patchwork_tf.data import fake_video
from patchwork_tf.data import layout as layout_lib

CLASS_NAMES = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
    "train", "tvmonitor")
_CLASS_INDEX = {name: i for i, name in enumerate(CLASS_NAMES)}

LAYOUT = """<root>/  (a year folder, e.g. VOCdevkit/VOC2012 or VOCdevkit/VOC2007)
  JPEGImages/<id>.jpg
  Annotations/<id>.xml        <size><width/><height/></size>, <object><name/><difficult/>
                              <bndbox><xmin/><ymin/><xmax/><ymax/></bndbox></object>
  ImageSets/Main/<split>.txt  one image id per line (boxes only)
  ImageSets/Segmentation/<split>.txt and SegmentationObject/<id>.png  (with masks: palette
                              PNG, i = i-th object of the XML, 0 background, 255 void)"""


def _number(node, name, path):
    try:
        return float(node.find(name).text)
    except (AttributeError, TypeError, ValueError):
        raise layout_lib.DataLayoutError(
            f"{path!r}: missing or non-numeric <{name}>. Expected this layout:\n{LAYOUT}"
        ) from None


def parse_annotation(path, skip_difficult=True):
    """One image's XML.

    Returns:
        ((height, width), boxes float32 [K, 4] normalized [ymin, xmin, ymax, xmax], classes
        int32 [K], xml_indices int [K]: the kept objects' positions in the file, 0-based).
    """
    layout_lib.require(path, "annotation", LAYOUT)
    try:
        root = ElementTree.parse(path).getroot()
    except ElementTree.ParseError as error:
        raise layout_lib.DataLayoutError(
            f"{path!r} is not valid XML ({error}). Expected this layout:\n{LAYOUT}") from error
    size = root.find("size")
    if size is None:
        raise layout_lib.DataLayoutError(f"{path!r} has no <size>. Expected this layout:\n{LAYOUT}")
    height, width = _number(size, "height", path), _number(size, "width", path)
    boxes, classes, indices = [], [], []
    degenerate = 0
    for index, node in enumerate(root.findall("object")):
        name = (node.findtext("name") or "").strip()
        if name not in _CLASS_INDEX:
            raise layout_lib.DataLayoutError(f"{path!r}: class {name!r} is not a VOC class.")
        if skip_difficult and (node.findtext("difficult") or "0").strip() == "1":
            continue
        box = node.find("bndbox")
        if box is None:
            raise layout_lib.DataLayoutError(f"{path!r}: an object has no <bndbox>.")
        x0 = min(max(_number(box, "xmin", path) - 1, 0.0), width)
        y0 = min(max(_number(box, "ymin", path) - 1, 0.0), height)
        x1 = min(max(_number(box, "xmax", path), 0.0), width)
        y1 = min(max(_number(box, "ymax", path), 0.0), height)
        if x1 <= x0 or y1 <= y0:
            degenerate += 1
            continue
        boxes.append([y0 / height, x0 / width, y1 / height, x1 / width])
        classes.append(_CLASS_INDEX[name])
        indices.append(index)
    if degenerate:
        logging.warning("%s: dropped %d object(s) whose box has no width or height inside the "
                        "image.", path, degenerate)
    boxes = np.array(boxes, np.float32).reshape(-1, 4)
    return (int(height), int(width)), boxes, np.array(classes, np.int32), np.array(indices, int)


def voc_stills(root, split="train", with_masks=False, max_images=None, skip_difficult=True):
    """Yields the images of a split as `fake_video.Still`s: labels from the XML (and masks from
    `SegmentationObject`), the JPEG decoded only by `read_image`, which checks its size
    against the XML's `<size>`.

    Args:
        root: the VOC year folder (see LAYOUT).
        split: a list name under ImageSets (e.g. "train", "val", "trainval").
        with_masks: read `ImageSets/Segmentation/<split>.txt` and instance masks from
            `SegmentationObject`; otherwise `ImageSets/Main/<split>.txt`, boxes only.
        max_images: at most this many images.
        skip_difficult: leave out objects marked difficult (see the module docstring).

    Yields:
        `fake_video.Still`s whose labels are `boxes` float32 [K, 4], `classes` int32 [K],
        `image_id`, and with masks `instance_masks` uint8 [K, H, W].
    """
    list_dir = "Segmentation" if with_masks else "Main"
    ids = layout_lib.read_lines(os.path.join(root, "ImageSets", list_dir, f"{split}.txt"),
                                f"ImageSets/{list_dir}/{split}.txt", LAYOUT)
    for image_id in ids[:max_images]:
        yield _still(root, image_id.split()[0], with_masks, skip_difficult)


def _still(root, image_id, with_masks, skip_difficult):
    """One image as a `fake_video.Still` (`voc_stills`' arguments)."""
    size, boxes, classes, indices = parse_annotation(
        os.path.join(root, "Annotations", image_id + ".xml"), skip_difficult)
    labels = {"boxes": boxes, "classes": classes, "image_id": f"voc/{image_id}"}
    if with_masks:
        objects = layout_lib.read_image(
            os.path.join(root, "SegmentationObject", image_id + ".png"), LAYOUT, None)
        if objects.shape != size:
            raise layout_lib.DataLayoutError(
                f"SegmentationObject/{image_id}.png is {objects.shape}, the image is {size}; "
                "expected a palette PNG of object indices.")
        labels["instance_masks"] = np.array([objects == i + 1 for i in indices],
                                            np.uint8).reshape(len(indices), *size)

    def read_image():
        image = layout_lib.read_image(os.path.join(root, "JPEGImages", image_id + ".jpg"), LAYOUT)
        if image.shape[:2] != size:
            raise layout_lib.DataLayoutError(
                f"Annotations/{image_id}.xml says size {size}, the image is {image.shape[:2]}.")
        return image

    return fake_video.Still(labels, read_image)


def voc_records(root, split="train", with_masks=False, max_images=None, skip_difficult=True):
    """Yields the still records of a split, every image decoded (`voc_stills`' arguments).

    Yields:
        dict: `image` uint8 [H, W, 3] and the labels of `voc_stills`.
    """
    for image in voc_stills(root, split, with_masks, max_images, skip_difficult):
        yield image.record()
