"""Writers of tiny local copies of the real data sets, in each reader's layout, for tests."""
import json
import os

import numpy as np
from PIL import Image

from patchwork_tf.data import imagenet_vid


def write_image(path, array):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if path.endswith((".jpg", ".JPEG")):
        Image.fromarray(array).save(path, quality=95)
    else:
        Image.fromarray(array).save(path)


def flat(height, width, value):
    return np.full((height, width, 3), value, np.uint8)


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def vid_xml(height, width, objects, folder="v", filename="000000"):
    """VOC-style XML of one ImageNet VID frame, as in ILSVRC2015's Annotations/VID.

    Args:
        objects: (track, wnid, (xmin, ymin, xmax, ymax)) with the devkit's inclusive 0-based
            pixel indices (a box over columns 8..40 has xmin 8, xmax 40); none for a frame
            without objects.
    """
    body = "".join(
        f"<object><trackid>{track}</trackid><name>{wnid}</name><bndbox><xmax>{x1}</xmax>"
        f"<xmin>{x0}</xmin><ymax>{y1}</ymax><ymin>{y0}</ymin></bndbox><occluded>0</occluded>"
        f"<generated>0</generated></object>"
        for track, wnid, (x0, y0, x1, y1) in objects)
    return (f"<annotation><folder>{folder}</folder><filename>{filename}</filename><source>"
            f"<database>ILSVRC_2015</database></source><size><width>{width}</width>"
            f"<height>{height}</height></size>{body}</annotation>")


def _scene(rng, height, width, box):
    """A noisy grey frame with a saturated rectangle at `box` = (x0, y0, x1, y1) pixels."""
    frame = rng.integers(60, 120, (height, width, 3)).astype(np.uint8)
    x0, y0, x1, y1 = box
    frame[y0:y1, x0:x1] = (220, 40, 30)
    return frame


def _moving_box(t, width):
    x0 = 2 + (2 * t) % max(1, width - 24)
    return (x0, 8, x0 + 20, 26)


def write_vid(root, num_videos=(2, 2), num_frames=(20, 6), size=(48, 64)):
    """An ImageNet VID copy in ILSVRC2015's layout: `num_videos` (train, val) videos of
    `num_frames` .JPEG frames. Video `v` shows a moving object (track 0) of class `v` painted
    over pixel edges `_moving_box(t)`, and a zebra (track 5) on the even frames; frame 1 also
    has a degenerate box (track 7, xmax < xmin) that readers must drop, and the last frame has
    no object. Train videos sit in `ILSVRC2015_VID_train_0000/`; `train_<c>.txt` lists every
    train video with label 1 if it shows class c (the track-0 classes), else -1."""
    rng = np.random.default_rng(0)
    height, width = size
    for split, count, length in zip(("train", "val"), num_videos, num_frames):
        videos = [(f"ILSVRC2015_VID_train_0000/ILSVRC2015_train_{v:08d}" if split == "train"
                   else f"ILSVRC2015_val_{v:08d}") for v in range(count)]
        val_lines = []
        for v, video in enumerate(videos):
            for t in range(length):
                x0, y0, x1, y1 = box = _moving_box(t, width)
                write_image(f"{root}/Data/VID/{split}/{video}/{t:06d}.JPEG",
                            _scene(rng, height, width, box))
                objects = [(0, imagenet_vid.CLASS_WNIDS[v], (x0, y0, x1 - 1, y1 - 1))]
                if t % 2 == 0:
                    objects.append((5, "n02391049", (40, 30, 59, 45)))
                if t == 1:
                    objects.append((7, "n02391049", (30, 10, 29, 20)))
                if t == length - 1:
                    objects = []
                write(f"{root}/Annotations/VID/{split}/{video}/{t:06d}.xml",
                      vid_xml(height, width, objects, video.split("/")[-1], f"{t:06d}"))
                val_lines.append(f"{video}/{t:06d} {len(val_lines) + 1}")
        if split == "val":
            write(f"{root}/ImageSets/VID/val.txt", "\n".join(val_lines) + "\n")
            continue
        for c in range(count):
            write(f"{root}/ImageSets/VID/train_{c + 1}.txt",
                  "".join(f"{video} {1 if v == c else -1}\n" for v, video in enumerate(videos)))
    return root


def det_xml(height, width, objects, folder="f", filename="f"):
    """VOC-style XML of one ImageNet DET image; objects are (wnid, (xmin, ymin, xmax, ymax))
    inclusive 0-based pixel indices."""
    body = "".join(
        f"<object><name>{wnid}</name><bndbox><xmin>{x0}</xmin><ymin>{y0}</ymin>"
        f"<xmax>{x1}</xmax><ymax>{y1}</ymax></bndbox></object>"
        for wnid, (x0, y0, x1, y1) in objects)
    return (f"<annotation><folder>{folder}</folder><filename>{filename}</filename><source>"
            f"<database>ILSVRC_2014</database></source><size><width>{width}</width>"
            f"<height>{height}</height></size>{body}</annotation>")


DET_TRAIN = {
    # image id: objects (wnid, inclusive corners), list labels {c: label}; None: no XML.
    "ILSVRC2013_train/n02691156/n02691156_1001": (
        [("n02691156", (4, 6, 23, 19))], {2: 1}),
    "ILSVRC2014_train_0000/ILSVRC2014_train_00000001": (
        [("n02402425", (10, 5, 29, 24)), ("n07739125", (40, 2, 49, 11)),
         ("n02402425", (50, 10, 45, 20))], {2: -1, 5: 1, 39: 1}),
    "ILSVRC2013_train/n02391049/n02391049_77": (
        [("n02391049", (0, 0, 59, 39))], {2: -1, 26: 0, 200: 1}),
    "ILSVRC2013_train_extra0/ILSVRC2013_train_00000001": (None, {2: -1, 39: -1}),
}
DET_VAL = {
    "ILSVRC2012_val_00000001": [("n02084071", (1, 1, 10, 10)), ("n02672831", (20, 20, 30, 35))],
    "ILSVRC2012_val_00000002": [],
}


def write_det(root, size=(40, 60)):
    """An ImageNet DET copy in ILSVRC2015's layout: the images of `DET_TRAIN` and `DET_VAL`,
    each a noisy grey image, with VOC-style XML (none for the negative from the extra
    folders). Train: an airplane positive from ILSVRC2013_train; an ILSVRC2014 image positive
    for cattle (c=39) and apple (c=5) that also has a degenerate cattle box (xmax < xmin); a
    zebra positive that is a partial positive (label 0) of bird (c=26); a negative-only image
    without XML.
    Val: a dog and an accordion; an image without objects."""
    rng = np.random.default_rng(4)
    height, width = size
    lists = {}
    for split, images in (("train", DET_TRAIN), ("val", DET_VAL)):
        for index, (image_id, entry) in enumerate(images.items()):
            objects, labels = entry if split == "train" else (entry, {})
            write_image(f"{root}/Data/DET/{split}/{image_id}.JPEG",
                        rng.integers(60, 120, (height, width, 3)).astype(np.uint8))
            if objects is not None:
                folder, name = os.path.split(image_id)
                write(f"{root}/Annotations/DET/{split}/{image_id}.xml",
                      det_xml(height, width, objects, folder, name))
            for c, label in labels.items():
                lists.setdefault(f"train_{c}.txt", []).append(f"{image_id} {label}")
            if split == "val":
                lists.setdefault("val.txt", []).append(f"{image_id} {index + 1}")
    for name, lines in lists.items():
        write(f"{root}/ImageSets/DET/{name}", "\n".join(lines) + "\n")
    return root


def write_davis(root, num_sequences=(2, 2), num_frames=(12, 6), size=(48, 64)):
    """A DAVIS 2016 copy: (train, val) sequences with one moving foreground rectangle."""
    rng = np.random.default_rng(1)
    height, width = size
    for split, count, length in zip(("train", "val"), num_sequences, num_frames):
        names = [f"{split}seq{s}" for s in range(count)]
        for sequence in names:
            for t in range(length):
                box = _moving_box(t, width)
                write_image(f"{root}/JPEGImages/480p/{sequence}/{t:05d}.jpg",
                            _scene(rng, height, width, box))
                annotation = np.zeros((height, width), np.uint8)
                x0, y0, x1, y1 = box
                annotation[y0:y1, x0:x1] = 255
                write_image(f"{root}/Annotations/480p/{sequence}/{t:05d}.png", annotation)
        write(f"{root}/ImageSets/2016/{split}.txt", "\n".join(names) + "\n")
    return root


def write_coco(root, split="train", num_images=3, size=(40, 60)):
    """A COCO 2017 copy: images with a cow (VID "cattle"), a person (no VID class) and, on
    image 0 only, nothing of a VID class."""
    rng = np.random.default_rng(2)
    height, width = size
    images, annotations = [], []
    for i in range(num_images):
        write_image(f"{root}/{split}2017/{i:012d}.jpg", _scene(rng, height, width, (5, 5, 25, 20)))
        images.append({"id": i + 1, "file_name": f"{i:012d}.jpg", "height": height,
                       "width": width})
        objects = [(1, [30, 10, 20, 25])]                          # person
        if i > 0:
            objects.append((21, [5, 5, 20, 15]))                   # cow
        for category, (x, y, w, h) in objects:
            annotations.append({
                "id": len(annotations) + 1, "image_id": i + 1, "category_id": category,
                "bbox": [x, y, w, h], "area": w * h, "iscrowd": 0,
                "segmentation": [[x, y, x + w, y, x + w, y + h, x, y + h]]})
    categories = [{"id": 1, "name": "person"}, {"id": 17, "name": "cat"},
                  {"id": 21, "name": "cow"}]
    write(f"{root}/annotations/instances_{split}2017.json",
          json.dumps({"images": images, "annotations": annotations, "categories": categories}))
    return root


def write_voc(root, split="trainval", num_images=2, size=(40, 60)):
    """A Pascal VOC copy (boxes and SegmentationObject masks): a motorbike and a person."""
    rng = np.random.default_rng(3)
    height, width = size
    ids = [f"2008_{i:06d}" for i in range(num_images)]
    for image_id in ids:
        write_image(f"{root}/JPEGImages/{image_id}.jpg",
                    _scene(rng, height, width, (4, 6, 24, 20)))
        write(f"{root}/Annotations/{image_id}.xml",
              f"<annotation><size><width>{width}</width><height>{height}</height></size>"
              "<object><name>motorbike</name><difficult>0</difficult><bndbox><xmin>5</xmin>"
              "<ymin>7</ymin><xmax>24</xmax><ymax>20</ymax></bndbox></object>"
              "<object><name>person</name><difficult>0</difficult><bndbox><xmin>31</xmin>"
              "<ymin>11</ymin><xmax>50</xmax><ymax>35</ymax></bndbox></object></annotation>")
        objects = np.zeros((height, width), np.uint8)
        objects[6:20, 4:24] = 1
        objects[10:35, 30:50] = 2
        write_image(f"{root}/SegmentationObject/{image_id}.png", objects)
    for lists in ("Main", "Segmentation"):
        write(f"{root}/ImageSets/{lists}/{split}.txt", "\n".join(ids) + "\n")
    return root
