"""Reader for a local copy of DAVIS 2016 (paper Sec. 4.2), frame by frame or as clips.

Two downloads hold the DAVIS 2016 sequences, both read here (see LAYOUT):
  * DAVIS 2016 itself: `ImageSets/480p/{train,val,trainval}.txt` list every frame as a line
    `/JPEGImages/480p/<sequence>/<frame>.jpg /Annotations/480p/<sequence>/<frame>.png`, and
    the annotations are single-object masks, 0 background and non-zero (255) foreground;
  * DAVIS 2017 (trainval): `ImageSets/2016/{train,val}.txt` list the DAVIS 2016 sequences, one
    name per line (`ImageSets/2017/` lists the 2017 ones, not read here), and the annotations
    are palette PNGs whose values are object ids 1, 2, ... with 0 background and 255 void
    (davis2017-evaluation's `DAVIS.VOID_LABEL`).
Where both lists exist, `ImageSets/2016` is read.

Unsupervised DAVIS 2016 is binary: the foreground `mask` is every object. In the DAVIS 2016
download that is every non-zero annotation value, whatever the PNG's mode, as the DAVIS 2016
toolkits count it (`im_annot > 0` in davis-matlab's `db_read_annot.m`, `annotation != 0` in
the Python toolkit); in a palette annotation of the DAVIS 2017 download it is every object id,
the void 255 excepted. Void pixels are reported apart (`read_frame`'s `void`), so the
evaluation can leave them out as davis2017-evaluation does.

A clip also carries the foreground as one track (class 0, track id 0) with the mask's bounding
box, so detection code can read DAVIS too.
"""
import os

import numpy as np
from PIL import Image

from patchwork_tf.data import clips as clips_lib
from patchwork_tf.data import layout as layout_lib

CLASS_NAMES = ("foreground",)
SPLITS = ("train", "val")
VOID_ID = 255

LAYOUT = """<root>/  a DAVIS 2016 download, or a DAVIS 2017 download (its ImageSets/2016 split)
  JPEGImages/480p/<sequence>/<frame>.jpg    e.g. JPEGImages/480p/bear/00000.jpg
  Annotations/480p/<sequence>/<frame>.png   one per frame, e.g. Annotations/480p/bear/00000.png
  and either (DAVIS 2017)
  ImageSets/2016/{train,val}.txt            one sequence name per line, e.g. 'bear';
      annotations are palette PNGs of object ids (0 background, 255 void)
  or (DAVIS 2016)
  ImageSets/480p/{train,val}.txt            one frame per line, e.g.
      '/JPEGImages/480p/bear/00000.jpg /Annotations/480p/bear/00000.png';
      annotations are grey PNGs, 0 background and 255 foreground"""


def _split_file(root, split):
    """The split list of either layout: (path, name shown in errors)."""
    if split not in SPLITS:
        raise ValueError(f"DAVIS 2016 split must be one of {SPLITS}, got {split!r}.")
    for year_dir in ("2016", "480p"):
        path = os.path.join(root, "ImageSets", year_dir, f"{split}.txt")
        if os.path.exists(path):
            return path, f"ImageSets/{year_dir}/{split}.txt"
    raise layout_lib.DataLayoutError(
        f"no DAVIS split list for {split!r} under {root!r}: neither ImageSets/2016/{split}.txt "
        f"(DAVIS 2017 download) nor ImageSets/480p/{split}.txt (DAVIS 2016 download). Expected "
        f"this layout:\n{LAYOUT}")


def list_sequences(root, split):
    """Sequence names of a split, in file order (each once).

    Reads `ImageSets/2016/<split>.txt` (sequence names) or `ImageSets/480p/<split>.txt`
    (frame lines, whose third path component is the sequence).
    """
    path, name = _split_file(root, split)
    sequences = {}
    for line in layout_lib.read_lines(path, name, LAYOUT):
        token = line.split()[0]
        if "/" in token:
            parts = token.strip("/").split("/")
            if len(parts) != 4 or parts[:2] != ["JPEGImages", "480p"]:
                raise layout_lib.DataLayoutError(
                    f"cannot read a sequence from line {line!r} of {name}. Expected this "
                    f"layout:\n{LAYOUT}")
            token = parts[2]
        sequences.setdefault(token, None)
    return list(sequences)


def frame_names(root, sequence):
    """Sorted frame names of a sequence (file names without `.jpg`, e.g. '00000')."""
    frame_dir = layout_lib.require(os.path.join(root, "JPEGImages", "480p", sequence),
                                   f"frames of {sequence!r}", LAYOUT)
    names = sorted(n[:-len(".jpg")] for n in os.listdir(frame_dir) if n.endswith(".jpg"))
    if not names:
        raise layout_lib.DataLayoutError(f"no .jpg frames in {frame_dir!r}. Expected this "
                                         f"layout:\n{LAYOUT}")
    return names


def _is_davis2017(root):
    """Whether `root` is a DAVIS 2017 download (it has `ImageSets/2016` or `ImageSets/2017`)."""
    return any(os.path.isdir(os.path.join(root, "ImageSets", year)) for year in ("2016", "2017"))


def _read_annotation(path, davis2017):
    """(foreground bool [H, W], void bool [H, W]) of one annotation PNG (see the module
    docstring); `davis2017`: whether it comes from a DAVIS 2017 download."""
    layout_lib.require(path, "annotation", LAYOUT)
    try:
        with Image.open(path) as image:
            mode = image.mode
            values = np.asarray(image)
    except OSError as error:
        raise layout_lib.DataLayoutError(
            f"cannot decode annotation {path!r} ({error}). Expected this layout:\n"
            f"{LAYOUT}") from error
    if davis2017 and mode == "P":                     # object ids, 255 void
        void = values == VOID_ID
        return (values != 0) & ~void, void
    if values.ndim == 3:                              # a palette rendered as colours
        values = values.any(axis=2)
    return values != 0, np.zeros(values.shape, bool)


def read_frame(root, sequence, name):
    """One frame and its annotation at the original (e.g. 480p) resolution.

    Returns:
        dict: `frame` uint8 [H, W, 3]; `mask` uint8 [H, W], 1 where any object is (not void);
        `void` bool [H, W], the void (255) pixels of a DAVIS 2017 palette annotation (none in
        the DAVIS 2016 download).
    """
    frame = layout_lib.read_image(
        os.path.join(root, "JPEGImages", "480p", sequence, name + ".jpg"), LAYOUT)
    foreground, void = _read_annotation(
        os.path.join(root, "Annotations", "480p", sequence, name + ".png"), _is_davis2017(root))
    if foreground.shape != frame.shape[:2]:
        raise layout_lib.DataLayoutError(
            f"annotation {sequence}/{name}.png is {foreground.shape}, its frame is "
            f"{frame.shape[:2]}; they must match.")
    return {"frame": frame, "mask": foreground.astype(np.uint8), "void": void}


def read_sequence(root, sequence, start=0, length=None):
    """Frames `start .. start + length - 1` of a sequence (all from `start` if length is None).

    Returns:
        A clip dict with K = 1: `frames` uint8 [T, H, W, 3], `mask` uint8 [T, H, W] (see
        `read_frame`), `instance_masks` [T, 1, H, W], `boxes` of the mask, `valid` where the
        mask is non-empty.
    """
    names = frame_names(root, sequence)[start:None if length is None else start + length]
    frames = [read_frame(root, sequence, name) for name in names]
    mask = np.stack([f["mask"] for f in frames])
    num_frames, height, width = mask.shape
    valid = mask.any(axis=(1, 2))
    boxes = np.zeros((num_frames, 1, 4), np.float32)
    for t in np.flatnonzero(valid):
        rows, cols = np.nonzero(mask[t])
        boxes[t, 0] = [rows.min() / height, cols.min() / width, (rows.max() + 1) / height,
                       (cols.max() + 1) / width]
    return {
        clips_lib.FRAMES: np.stack([f["frame"] for f in frames]),
        clips_lib.BOXES: boxes,
        clips_lib.CLASSES: np.zeros((num_frames, 1), np.int32),
        clips_lib.TRACK_IDS: np.zeros((num_frames, 1), np.int32),
        clips_lib.VALID: valid[:, None],
        clips_lib.INSTANCE_MASKS: mask[:, None],
        clips_lib.MASK: mask,
        clips_lib.CLIP_ID: f"davis2016/{sequence}/{start}",
    }


def davis_clips(root, split, clip_length=None, clip_stride=None):
    """Yields the sequences of a split, whole (`clip_length` None) or cut into clips.

    Args:
        root: the local DAVIS folder (see LAYOUT).
        split: "train" or "val".
        clip_length: T, or None for whole sequences.
        clip_stride: frames between clip starts (default `clip_length`); a tail shorter than
            `clip_length` yields no clip.
    """
    for sequence in list_sequences(root, split):
        if clip_length is None:
            yield read_sequence(root, sequence)
            continue
        count = len(frame_names(root, sequence))
        for start in range(0, count - clip_length + 1, clip_stride or clip_length):
            yield read_sequence(root, sequence, start, clip_length)
