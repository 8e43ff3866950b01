"""Reader for a local copy of ImageNet VID 2015 (paper Sec. 4.1): frames, clips, annotations.

Box convention. The ILSVRC 2015 devkit (`evaluation/eval_vid_detection.m`) takes
`<xmin> <ymin> <xmax> <ymax>` as inclusive pixel indices: a box's width is `xmax - xmin + 1`
pixels. They are 0-based (the widest box of a W-pixel frame spans `0 .. W - 1`, as the
published VID loaders, e.g. FGFA's, clip them); the devkit's evaluation uses only differences,
so the base shifts a box by one pixel at most and never changes an IoU. Here a box becomes
continuous pixel edges, normalized by the frame size:

    (ymin / H, xmin / W, (ymax + 1) / H, (xmax + 1) / W)

so a box over rows `r0 .. r1` has `ymin = r0 / H`, `ymax = (r1 + 1) / H`, the clip format's
convention (`patchwork_tf.data.clips`), and the continuous IoU of two such boxes equals the
devkit's inclusive IoU (see `patchwork_tf.metrics.vid_map`).

What is changed: the edges are clipped to the frame, `[0, W] x [0, H]` (the range that inclusive
indices `0 .. W - 1` can span); a box left with zero or negative width or height (e.g.
`xmax < xmin`, or a box wholly outside the frame) is dropped. Each annotation file with
dropped or clipped boxes logs one line that counts them. Nothing else is altered: objects keep
their XML order, and `<generated>` (interpolated) boxes are kept: `eval_vid_detection.m`
reads every object of every listed frame (its readme, Sec. 4.3, says frames with generated
boxes are ignored, which the code does not do). A frame without `<object>` has no boxes.
"""
import os
import xml.etree.ElementTree as ElementTree

from absl import logging
import numpy as np

from patchwork_tf.data import clips as clips_lib
from patchwork_tf.data import layout as layout_lib

CLASS_WNIDS = (
    "n02691156", "n02419796", "n02131653", "n02834778", "n01503061", "n02924116", "n02958343",
    "n02402425", "n02084071", "n02121808", "n02503517", "n02118333", "n02510455", "n02342885",
    "n02374451", "n02129165", "n01674464", "n02484322", "n03790512", "n02324045", "n02509815",
    "n02411705", "n01726692", "n02355227", "n02129604", "n04468005", "n01662784", "n04530566",
    "n02062744", "n02391049")
CLASS_NAMES = (
    "airplane", "antelope", "bear", "bicycle", "bird", "bus", "car", "cattle", "dog",
    "domestic_cat", "elephant", "fox", "giant_panda", "hamster", "horse", "lion", "lizard",
    "monkey", "motorcycle", "rabbit", "red_panda", "sheep", "snake", "squirrel", "tiger",
    "train", "turtle", "watercraft", "whale", "zebra")
SPLITS = ("train", "val")
_CLASS_INDEX = {wnid: i for i, wnid in enumerate(CLASS_WNIDS)}

LAYOUT = """<root>/  (the ILSVRC2015 folder of ImageNet VID 2015, ILSVRC2015_VID.tar.gz)
  Data/VID/train/ILSVRC2015_VID_train_000<k>/<video>/<frame>.JPEG   k = 0..3, e.g.
      Data/VID/train/ILSVRC2015_VID_train_0000/ILSVRC2015_train_00000000/000000.JPEG
  Data/VID/val/<video>/<frame>.JPEG   e.g. Data/VID/val/ILSVRC2015_val_00000000/000000.JPEG
  Annotations/VID/{train,val}/<same path>.xml   one per frame, VOC-style:
      <size><width/><height/></size>, zero or more <object><trackid/><name>WordNet id</name>
      <bndbox><xmin/><ymin/><xmax/><ymax/></bndbox></object>; corners are inclusive 0-based
      pixel indices (width = xmax - xmin + 1)
  ImageSets/VID/train_<1..30>.txt   lines '<video> <label>', <video> as
      ILSVRC2015_VID_train_0000/ILSVRC2015_train_00000000; label 1: the video shows class <c>,
      -1: it does not
  ImageSets/VID/val.txt             lines '<video>/<frame> <index>'"""


def image_set_lines(root, kind, split, layout):
    """Yields `(list name, line)` of an ILSVRC image-set folder `ImageSets/<kind>/` ("VID" or
    "DET"): every `train_<c>.txt` in name order for "train", `val.txt` for "val".

    Raises:
      layout.DataLayoutError: the folder, or every train list, is missing (naming `layout`).
    """
    sets_dir = layout_lib.require(os.path.join(root, "ImageSets", kind), f"ImageSets/{kind}",
                                  layout)
    if split == "train":
        names = sorted(n for n in os.listdir(sets_dir)
                       if n.startswith("train_") and n.endswith(".txt"))
        if not names:
            raise layout_lib.DataLayoutError(
                f"no ImageSets/{kind}/train_<c>.txt in {sets_dir!r}. Expected this layout:\n"
                f"{layout}")
    else:
        names = ["val.txt"]
    for name in names:
        for line in layout_lib.read_lines(os.path.join(sets_dir, name),
                                          f"ImageSets/{kind}/{name}", layout):
            yield name, line


def list_videos(root, split):
    """Video folders of a split, relative to `Data/VID/<split>`, from `ImageSets/VID`.

    `train` reads every `train_<c>.txt`. Their label says whether video shows class c (1) or
    not (-1); every train video is annotated for all 30 classes (devkit readme, Sec. 1.4), so
    the split is every video named in any list, whatever its label. `val` reads `val.txt`,
    whose lines name frames (`<video>/<frame> <index>`). Order is first appearance, lists in
    name order.
    """
    if split not in SPLITS:
        raise ValueError(f"ImageNet VID split must be one of {SPLITS}, got {split!r}.")
    videos = {}
    for name, line in image_set_lines(root, "VID", split, LAYOUT):
        fields = line.split()
        if len(fields) != 2 or not fields[1].lstrip("-").isdigit():
            raise layout_lib.DataLayoutError(
                f"cannot read line {line!r} of ImageSets/VID/{name}. Expected this "
                f"layout:\n{LAYOUT}")
        parts = fields[0].strip("/").split("/")
        if parts[0] == split:
            parts = parts[1:]
        if split == "val" and parts and parts[-1].isdigit():
            parts = parts[:-1]
        if not parts:
            raise layout_lib.DataLayoutError(
                f"cannot read a video from line {line!r} of ImageSets/VID/{name}. Expected "
                f"this layout:\n{LAYOUT}")
        videos.setdefault("/".join(parts), None)
    return list(videos)


def _number(node, name, path):
    child = node.find(name)
    try:
        return float(child.text)
    except (AttributeError, TypeError, ValueError):
        raise layout_lib.DataLayoutError(
            f"{path!r}: missing or non-numeric <{name}>. Expected this layout:\n{LAYOUT}"
        ) from None


def parse_xml(path, layout):
    """The root element of a VOC-style XML file; DataLayoutError naming `layout` if bad."""
    layout_lib.require(path, "annotation", layout)
    try:
        return ElementTree.parse(path).getroot()
    except ElementTree.ParseError as error:
        raise layout_lib.DataLayoutError(
            f"{path!r} is not valid XML ({error}). Expected this layout:\n{layout}") from error


def frame_size(tree, path, layout):
    """(height, width) in pixels from an annotation's `<size>`."""
    size = tree.find("size")
    if size is None:
        raise layout_lib.DataLayoutError(f"{path!r} has no <size>. Expected this layout:\n{layout}")
    height, width = _number(size, "height", path), _number(size, "width", path)
    if height <= 0 or width <= 0 or height != int(height) or width != int(width):
        raise layout_lib.DataLayoutError(
            f"{path!r}: <size> must be positive whole pixels, got height {height}, width "
            f"{width}.")
    return int(height), int(width)


def inclusive_to_edges(corners, size, path):
    """Normalized pixel-edge boxes from inclusive pixel corners, dropping degenerate ones.

    Args:
        corners: float [K, 4] `(xmin, ymin, xmax, ymax)` inclusive pixel indices, as in the XML.
        size: (height, width) of the frame in pixels.
        path: the annotation file, named in the log line.

    Returns:
        (boxes float32 [K', 4] `(ymin, xmin, ymax, xmax)` in [0, 1], keep bool [K]): the boxes
        with positive width and height after clipping to the frame, and which of the K were
        kept. Logs one line for `path` if any box was dropped or clipped.
    """
    height, width = size
    corners = np.asarray(corners, np.float64).reshape(-1, 4)
    edges = np.stack([corners[:, 1], corners[:, 0], corners[:, 3] + 1.0, corners[:, 2] + 1.0],
                     axis=-1)
    clipped = np.clip(edges, 0.0, [height, width, height, width])
    changed = np.any(clipped != edges, axis=-1)
    keep = (clipped[:, 2] > clipped[:, 0]) & (clipped[:, 3] > clipped[:, 1])
    dropped, cut = int(np.sum(~keep)), int(np.sum(changed & keep))
    if dropped or cut:
        logging.warning("%s: dropped %d degenerate boxes (no area inside the %dx%d frame), "
                        "clipped %d boxes to the frame", path, dropped, height, width, cut)
    boxes = clipped[keep] / np.array([height, width, height, width], np.float64)
    return boxes.astype(np.float32), keep


def parse_annotation(path):
    """One frame's XML.

    Returns:
        ((height, width), boxes float32 [K, 4] normalized `(ymin, xmin, ymax, xmax)` pixel
        edges, classes int32 [K] 0-based VID class, track_ids int32 [K]), degenerate boxes
        dropped (see the module docstring).
    """
    tree = parse_xml(path, LAYOUT)
    size = frame_size(tree, path, LAYOUT)
    corners, classes, tracks = [], [], []
    for node in tree.findall("object"):
        wnid = (node.findtext("name") or "").strip()
        if wnid not in _CLASS_INDEX:
            raise layout_lib.DataLayoutError(
                f"{path!r}: object class {wnid!r} is not one of the 30 VID WordNet ids.")
        box = node.find("bndbox")
        if box is None:
            raise layout_lib.DataLayoutError(f"{path!r}: an object has no <bndbox>.")
        corners.append([_number(box, name, path) for name in ("xmin", "ymin", "xmax", "ymax")])
        classes.append(_CLASS_INDEX[wnid])
        tracks.append(int(_number(node, "trackid", path)))
    boxes, keep = inclusive_to_edges(corners, size, path)
    return (size, boxes, np.array(classes, np.int32).reshape(-1)[keep],
            np.array(tracks, np.int32).reshape(-1)[keep])


def frame_names(root, split, video):
    """Sorted frame names (e.g. "000000", without `.JPEG`) of one video of a split."""
    frame_dir = layout_lib.require(os.path.join(root, "Data", "VID", split, video),
                                   f"frames of video {video!r}", LAYOUT)
    names = sorted(n[:-len(".JPEG")] for n in os.listdir(frame_dir) if n.endswith(".JPEG"))
    if not names:
        raise layout_lib.DataLayoutError(f"no .JPEG frames in {frame_dir!r}. Expected this "
                                         f"layout:\n{LAYOUT}")
    return names


def read_frame(root, split, video, name):
    """One frame at its original resolution and its annotation.

    Args:
        root: the local ILSVRC2015 folder (see LAYOUT).
        split: "train" or "val".
        video: a video folder from `list_videos`.
        name: a frame name from `frame_names`.

    Returns:
        dict `frame` uint8 [H, W, 3], `boxes` float32 [K, 4] normalized `(ymin, xmin, ymax,
        xmax)` pixel edges (module docstring), `classes` int32 [K] 0-based VID class,
        `track_ids` int32 [K]; K = 0 for a frame without objects.
    """
    frame = layout_lib.read_image(os.path.join(root, "Data", "VID", split, video, name + ".JPEG"),
                                  LAYOUT)
    size, boxes, classes, tracks = parse_annotation(
        os.path.join(root, "Annotations", "VID", split, video, name + ".xml"))
    if size != frame.shape[:2]:
        raise layout_lib.DataLayoutError(
            f"annotation of {video}/{name} says size {size}, the frame is {frame.shape[:2]}.")
    return {"frame": frame, "boxes": boxes, "classes": classes, "track_ids": tracks}


def read_video(root, split, video, start=0, length=None):
    """Frames `start .. start + length - 1` of one video (all from `start` if length is None).

    Returns:
        A clip dict without masks (`patchwork_tf.data.clips`); K = number of distinct tracks
        with a box in those frames. A track is `valid` in the frames where it has a box.
    """
    names = frame_names(root, split, video)
    names = names[start:None if length is None else start + length]
    frames = [read_frame(root, split, video, name) for name in names]
    tracks = sorted({int(track) for frame in frames for track in frame["track_ids"]})
    slot = {track: k for k, track in enumerate(tracks)}
    num_frames, num_tracks = len(frames), len(tracks)
    boxes = np.zeros((num_frames, num_tracks, 4), np.float32)
    classes = np.full((num_frames, num_tracks), -1, np.int32)
    valid = np.zeros((num_frames, num_tracks), bool)
    for t, frame in enumerate(frames):
        for box, class_id, track in zip(frame["boxes"], frame["classes"], frame["track_ids"]):
            boxes[t, slot[track]], valid[t, slot[track]] = box, True
            classes[:, slot[track]] = class_id
    return {
        clips_lib.FRAMES: np.stack([frame["frame"] for frame in frames]),
        clips_lib.BOXES: boxes,
        clips_lib.CLASSES: classes,
        clips_lib.TRACK_IDS: np.tile(np.array(tracks, np.int32), (num_frames, 1)),
        clips_lib.VALID: valid,
        clips_lib.CLIP_ID: f"imagenet_vid/{split}/{video}/{start}",
    }


def vid_clips(root, split, clip_length=16, clip_stride=None, max_videos=None):
    """Yields clips of `clip_length` consecutive frames from the videos of a split.

    Args:
        root: the local ILSVRC2015 folder (see LAYOUT).
        split: "train" or "val".
        clip_length: T.
        clip_stride: frames between clip starts (default `clip_length`, no overlap). A video's
            tail shorter than `clip_length` yields no clip.
        max_videos: read at most this many videos.
    """
    stride = clip_length if clip_stride is None else clip_stride
    for video in list_videos(root, split)[:max_videos]:
        count = len(frame_names(root, split, video))
        for start in range(0, count - clip_length + 1, stride):
            yield read_video(root, split, video, start, clip_length)
