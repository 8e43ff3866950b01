"""Reader for a local copy of DAVIS 2016 (paper Sec. 4.2), yielding clips.

Unsupervised DAVIS 2016 is binary: the foreground `mask` is every non-zero annotation pixel.
The clip also carries that object as one track (class 0, track id 0) with the mask's bounding
box, so detection code can read DAVIS too.
"""
import os

import numpy as np

from patchwork_tf.data import clips as clips_lib
from patchwork_tf.data import layout as layout_lib

CLASS_NAMES = ("foreground",)
SPLITS = ("train", "val")

LAYOUT = """<root>/  (DAVIS 2016, or the DAVIS 2017 package that contains it)
  JPEGImages/480p/<sequence>/<frame>.jpg    e.g. JPEGImages/480p/bear/00000.jpg
  Annotations/480p/<sequence>/<frame>.png   one per frame, non-zero pixels = foreground
  ImageSets/2016/{train,val}.txt            one sequence name per line (or DAVIS 2016's
      '/JPEGImages/480p/<sequence>/<frame>.jpg /Annotations/480p/...' lines)"""


def list_sequences(root, split):
    """Sequence names of a split, in file order, from `ImageSets/2016/<split>.txt`."""
    if split not in SPLITS:
        raise ValueError(f"DAVIS 2016 split must be one of {SPLITS}, got {split!r}.")
    lines = layout_lib.read_lines(os.path.join(root, "ImageSets", "2016", f"{split}.txt"),
                                  f"ImageSets/2016/{split}.txt", LAYOUT)
    sequences = {}
    for line in lines:
        token = line.split()[0]
        if "/" in token:
            parts = token.strip("/").split("/")
            if len(parts) < 4 or parts[0] != "JPEGImages":
                raise layout_lib.DataLayoutError(
                    f"cannot read a sequence from line {line!r} of ImageSets/2016/{split}.txt. "
                    f"Expected this layout:\n{LAYOUT}")
            token = parts[2]
        sequences.setdefault(token, None)
    return list(sequences)


def read_sequence(root, sequence, start=0, length=None):
    """Frames `start .. start + length - 1` of a sequence (all from `start` if length is None).

    Returns:
        A clip dict with K = 1: `frames`, `mask` uint8 [T, H, W] (annotation != 0),
        `instance_masks` [T, 1, H, W], `boxes` of the mask, `valid` where the mask is non-empty.
    """
    frame_dir = layout_lib.require(os.path.join(root, "JPEGImages", "480p", sequence),
                                   f"frames of {sequence!r}", LAYOUT)
    mask_dir = layout_lib.require(os.path.join(root, "Annotations", "480p", sequence),
                                  f"annotations of {sequence!r}", LAYOUT)
    names = sorted(n[:-len(".jpg")] for n in os.listdir(frame_dir) if n.endswith(".jpg"))
    if not names:
        raise layout_lib.DataLayoutError(f"no .jpg frames in {frame_dir!r}. Expected this "
                                         f"layout:\n{LAYOUT}")
    names = names[start:None if length is None else start + length]
    frames, masks = [], []
    for name in names:
        frame = layout_lib.read_image(os.path.join(frame_dir, name + ".jpg"), LAYOUT)
        annotation = layout_lib.read_image(os.path.join(mask_dir, name + ".png"), LAYOUT, None)
        if annotation.ndim == 3:
            annotation = annotation.any(axis=2)
        if annotation.shape != frame.shape[:2]:
            raise layout_lib.DataLayoutError(
                f"annotation {sequence}/{name}.png is {annotation.shape}, its frame is "
                f"{frame.shape[:2]}; they must match.")
        frames.append(frame)
        masks.append((annotation != 0).astype(np.uint8))
    mask = np.stack(masks)
    num_frames, height, width = mask.shape
    valid = mask.any(axis=(1, 2))
    boxes = np.zeros((num_frames, 1, 4), np.float32)
    for t in np.flatnonzero(valid):
        rows, cols = np.nonzero(mask[t])
        boxes[t, 0] = [rows.min() / height, cols.min() / width, (rows.max() + 1) / height,
                       (cols.max() + 1) / width]
    return {
        clips_lib.FRAMES: np.stack(frames),
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
        frame_dir = layout_lib.require(os.path.join(root, "JPEGImages", "480p", sequence),
                                       f"frames of {sequence!r}", LAYOUT)
        count = sum(n.endswith(".jpg") for n in os.listdir(frame_dir))
        for start in range(0, count - clip_length + 1, clip_stride or clip_length):
            yield read_sequence(root, sequence, start, clip_length)
