"""Reader for a local copy of ImageNet VID 2015 (paper Sec. 4.1), yielding clips.

Boxes come from the VOC-style XML written for every frame; a track keeps its object slot for
the whole clip. Box corners are read as pixel edges and divided by the frame size.
"""
import os
import xml.etree.ElementTree as ElementTree

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

LAYOUT = """<root>/  (the ILSVRC2015 folder of ImageNet VID 2015)
  Data/VID/{train,val}/<video>/<frame>.JPEG   e.g. Data/VID/val/ILSVRC2015_val_00000000/000000.JPEG
  Annotations/VID/{train,val}/<video>/<frame>.xml   VOC-style: <size><width/><height/></size>,
      <object><trackid/><name>WordNet id</name><bndbox><xmin/><ymin/><xmax/><ymax/></bndbox></object>
  ImageSets/VID/train_<1..30>.txt   lines '<video> <label>' (train videos may sit in
      ILSVRC2015_VID_train_000<i>/ folders, part of <video>)
  ImageSets/VID/val.txt             lines '<video>/<frame> <index>'"""


def list_videos(root, split):
    """Video folders of a split, relative to `Data/VID/<split>`, from `ImageSets/VID`.

    `train` reads every `train_<c>.txt`, `val` reads `val.txt`; a line's first token is a video
    folder or a frame inside one. Order is first appearance.
    """
    if split not in SPLITS:
        raise ValueError(f"ImageNet VID split must be one of {SPLITS}, got {split!r}.")
    sets_dir = layout_lib.require(os.path.join(root, "ImageSets", "VID"), "ImageSets/VID",
                                  LAYOUT)
    if split == "train":
        names = sorted(n for n in os.listdir(sets_dir)
                       if n.startswith("train_") and n.endswith(".txt"))
        if not names:
            raise layout_lib.DataLayoutError(
                f"no ImageSets/VID/train_<c>.txt in {sets_dir!r}. Expected this layout:\n{LAYOUT}")
    else:
        names = ["val.txt"]
    videos = {}
    for name in names:
        for line in layout_lib.read_lines(os.path.join(sets_dir, name), f"ImageSets/VID/{name}",
                                          LAYOUT):
            parts = line.split()[0].strip("/").split("/")
            if parts[0] == split:
                parts = parts[1:]
            if parts and parts[-1].isdigit():
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


def parse_annotation(path):
    """One frame's XML: ((height, width), [(track_id, class_id, box normalized [4])...])."""
    layout_lib.require(path, "annotation", LAYOUT)
    try:
        tree = ElementTree.parse(path).getroot()
    except ElementTree.ParseError as error:
        raise layout_lib.DataLayoutError(
            f"{path!r} is not valid XML ({error}). Expected this layout:\n{LAYOUT}") from error
    size = tree.find("size")
    if size is None:
        raise layout_lib.DataLayoutError(f"{path!r} has no <size>. Expected this layout:\n{LAYOUT}")
    height, width = _number(size, "height", path), _number(size, "width", path)
    objects = []
    for node in tree.findall("object"):
        wnid = (node.findtext("name") or "").strip()
        if wnid not in _CLASS_INDEX:
            raise layout_lib.DataLayoutError(
                f"{path!r}: object class {wnid!r} is not one of the 30 VID WordNet ids.")
        box = node.find("bndbox")
        if box is None:
            raise layout_lib.DataLayoutError(f"{path!r}: an object has no <bndbox>.")
        corners = np.array([_number(box, "ymin", path) / height, _number(box, "xmin", path) / width,
                            _number(box, "ymax", path) / height, _number(box, "xmax", path) / width])
        objects.append((int(_number(node, "trackid", path)), _CLASS_INDEX[wnid],
                        np.clip(corners, 0.0, 1.0)))
    return (int(height), int(width)), objects


def read_video(root, split, video, start=0, length=None):
    """Frames `start .. start + length - 1` of one video (all from `start` if length is None).

    Returns:
        A clip dict without masks; K = number of distinct tracks in those frames.
    """
    frame_dir = layout_lib.require(os.path.join(root, "Data", "VID", split, video),
                                   "video frames", LAYOUT)
    names = sorted(n[:-len(".JPEG")] for n in os.listdir(frame_dir) if n.endswith(".JPEG"))
    if not names:
        raise layout_lib.DataLayoutError(f"no .JPEG frames in {frame_dir!r}. Expected this "
                                         f"layout:\n{LAYOUT}")
    names = names[start:None if length is None else start + length]
    frames, annotations = [], []
    for name in names:
        frame = layout_lib.read_image(os.path.join(frame_dir, name + ".JPEG"), LAYOUT)
        size, objects = parse_annotation(
            os.path.join(root, "Annotations", "VID", split, video, name + ".xml"))
        if size != frame.shape[:2]:
            raise layout_lib.DataLayoutError(
                f"annotation of {video}/{name} says size {size}, the frame is {frame.shape[:2]}.")
        frames.append(frame)
        annotations.append(objects)
    tracks = sorted({track for objects in annotations for track, _, _ in objects})
    slot = {track: k for k, track in enumerate(tracks)}
    num_frames, num_tracks = len(frames), len(tracks)
    boxes = np.zeros((num_frames, num_tracks, 4), np.float32)
    classes = np.full((num_frames, num_tracks), -1, np.int32)
    valid = np.zeros((num_frames, num_tracks), bool)
    for t, objects in enumerate(annotations):
        for track, class_id, box in objects:
            boxes[t, slot[track]], valid[t, slot[track]] = box, True
            classes[:, slot[track]] = class_id
    return {
        clips_lib.FRAMES: np.stack(frames),
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
        frame_dir = layout_lib.require(os.path.join(root, "Data", "VID", split, video),
                                       "video frames", LAYOUT)
        count = sum(n.endswith(".JPEG") for n in os.listdir(frame_dir))
        for start in range(0, count - clip_length + 1, stride):
            yield read_video(root, split, video, start, clip_length)
