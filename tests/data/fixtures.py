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
    "ILSVRC2014_train_0000/ILSVRC2014_train_00000002": (
        [("n07739125", (3, 4, 20, 30))], {2: -1, 5: 1}),
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
    without XML; an ILSVRC2014 positive of apple alone (no VID class).
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


def davis_palette():
    """The colour map of DAVIS 2017 (and Pascal VOC) palette PNGs, 256 * 3 ints: the bits of
    index i, three at a time, fill red, green and blue from their highest bit down."""
    palette = []
    for index in range(256):
        rgb = [0, 0, 0]
        for bit in range(8):
            for channel in range(3):
                rgb[channel] |= ((index >> (3 * bit + channel)) & 1) << (7 - bit)
        palette.extend(rgb)
    return palette


def write_palette_png(path, indices):
    """A palette ("P") PNG of uint8 indices [H, W] with `davis_palette` colours."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    indices = np.ascontiguousarray(indices, np.uint8)
    image = Image.frombytes("P", indices.shape[::-1], indices.tobytes())
    image.putpalette(davis_palette())
    image.save(path)


def write_davis(root, num_sequences=(2, 2), num_frames=(12, 6), size=(48, 64), year=2016,
                absent_frame=None):
    """A DAVIS copy holding the DAVIS 2016 sequences: (train, val) sequences with one moving
    foreground rectangle.

    Args:
        year: 2016 for the DAVIS 2016 download (grey 0 / 255 annotations, every frame listed in
            `ImageSets/480p/{train,val,trainval}.txt` as '/JPEGImages/480p/<seq>/<frame>.jpg
            /Annotations/480p/<seq>/<frame>.png'); 2017 for the DAVIS 2017 download (palette
            annotations of object ids: the rectangle is object 1, a 4 x 4 square object 2 on
            every third frame, a void (255) column right of the rectangle on frame 1; sequence
            names in `ImageSets/2016/{train,val}.txt`, and in `ImageSets/2017/` with one more
            2017-only sequence per split).
        absent_frame: index of a frame of every sequence without any object, or None.
    """
    if year not in (2016, 2017):
        raise ValueError(f"year must be 2016 or 2017, got {year!r}.")
    rng = np.random.default_rng(1)
    height, width = size
    lines = {}

    def write_sequence(sequence, length):
        for t in range(length):
            box = _moving_box(t, width)
            write_image(f"{root}/JPEGImages/480p/{sequence}/{t:05d}.jpg",
                        _scene(rng, height, width, box))
            annotation = np.zeros((height, width), np.uint8)
            png = f"{root}/Annotations/480p/{sequence}/{t:05d}.png"
            lines.setdefault(sequence, []).append(
                f"/JPEGImages/480p/{sequence}/{t:05d}.jpg /Annotations/480p/{sequence}/"
                f"{t:05d}.png")
            x0, y0, x1, y1 = box
            if t != absent_frame:
                annotation[y0:y1, x0:x1] = 255 if year == 2016 else 1
                if year == 2017 and t % 3 == 0:
                    annotation[height - 6:height - 2, width - 6:width - 2] = 2
                if year == 2017 and t == 1:
                    annotation[y0:y1, x1] = 255
            if year == 2016:
                write_image(png, annotation)
            else:
                write_palette_png(png, annotation)

    splits = {}
    for split, count, length in zip(("train", "val"), num_sequences, num_frames):
        splits[split] = [f"{split}seq{s}" for s in range(count)]
        for sequence in splits[split]:
            write_sequence(sequence, length)
    if year == 2016:
        for split, names in [*splits.items(), ("trainval", splits["train"] + splits["val"])]:
            write(f"{root}/ImageSets/480p/{split}.txt",
                  "".join(line + "\n" for name in names for line in lines[name]))
        return root
    for split, names in splits.items():
        write(f"{root}/ImageSets/2016/{split}.txt", "\n".join(names) + "\n")
        write_sequence(f"{split}only2017", 3)
        write(f"{root}/ImageSets/2017/{split}.txt",
              "\n".join(sorted(names + [f"{split}only2017"])) + "\n")
    return root


def uncompressed_rle(mask):
    """COCO's uncompressed RLE of a 0/1 mask [H, W]: run lengths of the column-major pixels,
    starting with a run of zeros (maybe empty)."""
    pixels = np.asarray(mask, np.uint8).flatten(order="F")
    changes = np.flatnonzero(np.diff(pixels)) + 1
    bounds = np.concatenate([[0], changes, [pixels.size]])
    counts = np.diff(bounds).tolist()
    if pixels[0]:
        counts.insert(0, 0)
    return {"counts": counts, "size": list(mask.shape)}


COCO_CROWD_BOX = (40, 30, 16, 8)      # x, y, w, h of the crowd region on image 1 (id 2)


def write_coco(root, split="train", num_images=3, size=(40, 60)):
    """A COCO 2017 copy in the official instances format.

    Images 0 .. num_images - 1 (ids 1 .. num_images) each show a person (category id 1, no VID
    class) and, from image 1 on, a cow (id 21, VID "cattle"); categories 1, 17 (cat, unused)
    and 21 have id gaps as in COCO. Image 1 also has a crowd of persons (`iscrowd` 1, an
    uncompressed RLE over `COCO_CROWD_BOX`), image 2 a cow whose box lies outside the image
    (nothing left after clipping), and one more image (id num_images + 1) has no annotation.
    """
    rng = np.random.default_rng(2)
    height, width = size
    images, annotations = [], []

    def annotate(image_id, category, bbox, **fields):
        x, y, w, h = bbox
        annotation = {"id": len(annotations) + 1, "image_id": image_id,
                      "category_id": category, "bbox": list(bbox), "area": w * h,
                      "iscrowd": 0, "segmentation": [[x, y, x + w, y, x + w, y + h, x, y + h]]}
        annotation.update(fields)
        annotations.append(annotation)

    for i in range(num_images + 1):
        write_image(f"{root}/{split}2017/{i:012d}.jpg", _scene(rng, height, width, (5, 5, 25, 20)))
        images.append({"id": i + 1, "file_name": f"{i:012d}.jpg", "height": height,
                       "width": width})
        if i == num_images:
            continue
        annotate(i + 1, 1, (30, 10, 20, 25))                          # person
        if i > 0:
            annotate(i + 1, 21, (5, 5, 20, 15))                       # cow
        if i == 1:
            x, y, w, h = COCO_CROWD_BOX
            crowd = np.zeros((height, width), np.uint8)
            crowd[y:y + h, x:x + w] = 1
            annotate(i + 1, 1, COCO_CROWD_BOX, iscrowd=1, segmentation=uncompressed_rle(crowd))
        if i == 2:
            annotate(i + 1, 21, (width + 2, 5, 10, 10))               # degenerate
    categories = [{"id": 1, "name": "person", "supercategory": "person"},
                  {"id": 17, "name": "cat", "supercategory": "animal"},
                  {"id": 21, "name": "cow", "supercategory": "animal"}]
    write(f"{root}/annotations/instances_{split}2017.json",
          json.dumps({"info": {"description": "fixture"}, "licenses": [], "images": images,
                      "annotations": annotations, "categories": categories}))
    return root


def write_voc(root, split="trainval", num_images=2, size=(40, 60), others=False):
    """A Pascal VOC 2012 year folder (boxes and SegmentationObject masks).

    Every image has, in XML order: a motorbike (inclusive corners (5, 7)-(24, 20)), a person
    ((31, 11)-(50, 35)), a difficult dog ((51, 2)-(58, 9)) and a bottle whose box has no width
    (xmin 40 > xmax 39). `SegmentationObject` is a palette PNG of the objects' 1-based XML
    positions with a 1-pixel void (255) border around each object, as VOC draws it.

    Args:
        others: also list two images that a source keeping ImageNet VID's classes drops for
            detection, after the others: a chair ((9, 9)-(30, 28)) and the difficult dog (no
            VID class; the chair's mask keeps it for segmentation), then the difficult dog and
            the bottle alone (no object left for either task).
    """
    rng = np.random.default_rng(3)
    height, width = size
    motorbike, person = ("motorbike", 0, (5, 7, 24, 20)), ("person", 0, (31, 11, 50, 35))
    dog, bottle = ("dog", 1, (51, 2, 58, 9)), ("bottle", 0, (40, 20, 39, 25))
    images = {f"2008_{i:06d}": (motorbike, person, dog, bottle) for i in range(num_images)}
    if others:
        images[f"2008_{num_images:06d}"] = (("chair", 0, (9, 9, 30, 28)), dog)
        images[f"2008_{num_images + 1:06d}"] = (dog, bottle)
    for image_id, objects in images.items():
        body = "".join(
            f"<object><name>{name}</name><pose>Unspecified</pose><truncated>0</truncated>"
            f"<difficult>{difficult}</difficult><bndbox><xmin>{x0}</xmin><ymin>{y0}</ymin>"
            f"<xmax>{x1}</xmax><ymax>{y1}</ymax></bndbox></object>"
            for name, difficult, (x0, y0, x1, y1) in objects)
        write_image(f"{root}/JPEGImages/{image_id}.jpg",
                    _scene(rng, height, width, (4, 6, 24, 20)))
        write(f"{root}/Annotations/{image_id}.xml",
              f"<annotation><folder>VOC2012</folder><filename>{image_id}.jpg</filename>"
              f"<size><width>{width}</width><height>{height}</height><depth>3</depth></size>"
              f"<segmented>1</segmented>{body}</annotation>")
        indices = np.zeros((height, width), np.uint8)
        for index, (_, _, (x0, y0, x1, y1)) in enumerate(objects, start=1):
            if x1 >= x0 and y1 >= y0:
                indices[max(y0 - 2, 0):y1 + 1, max(x0 - 2, 0):x1 + 1] = 255
        for index, (_, _, (x0, y0, x1, y1)) in enumerate(objects, start=1):
            if x1 >= x0 and y1 >= y0:
                indices[y0 - 1:y1, x0 - 1:x1] = index
        write_palette_png(f"{root}/SegmentationObject/{image_id}.png", indices)
    for lists in ("Main", "Segmentation"):
        write(f"{root}/ImageSets/{lists}/{split}.txt", "\n".join(images) + "\n")
    return root
