"""Single-frame training data for stage 1 (Sec. 3.4): clips split into shuffled frames.

Stage 1 trains the single-frame model with batch normalisation, which needs batches of
uncorrelated frames: clips are cut into frames, a few evenly spaced frames are kept per clip
(neighbouring frames of a clip are near duplicates), and frames of all clips are shuffled
together. Augmentation is a random left-right flip.

The pipeline is a pure function of `seed` and the step: the shuffle order is fixed by the seed
and each element's flip by `(seed, element index)`, so a run resumed at step `k` (by skipping
`k` batches) sees exactly the batches of an uninterrupted run.
"""
from typing import Dict, Tuple

import numpy as np
import tensorflow as tf

from patchwork_tf.data import clips as clips_lib
from patchwork_tf.data import synthetic

TASKS = synthetic.TASKS


def synthetic_frames(
    split: str,
    task: str,
    num_clips: int,
    frame_size: Tuple[int, int] = (128, 128),
    frames_per_clip: int = 4,
    clip_length: int = 16,
    max_objects: int = 4,
    start: int = 0,
) -> Dict[str, np.ndarray]:
    """Frames of clips `start .. start + num_clips - 1` of the synthetic benchmark, in memory.

    Args:
      split: "train", "validation" or "test".
      task: "detection" or "segmentation".
      num_clips: clips to generate.
      frame_size: `(H, W)` pixels.
      frames_per_clip: evenly spaced frames kept per clip, 1 to `clip_length`.
      clip_length: frames per generated clip.
      max_objects: K, object slots per frame.
      start: index of the first clip in the split.

    Returns:
      dict of numpy arrays over `N = num_clips * frames_per_clip` frames: `frames` uint8
      [N, H, W, 3], `boxes` float32 [N, K, 4], `classes` int32 [N, K], `valid` bool [N, K],
      `mask` uint8 [N, H, W].
    """
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}.")
    if num_clips < 1:
        raise ValueError(f"num_clips must be >= 1, got {num_clips}.")
    if not 1 <= frames_per_clip <= clip_length:
        raise ValueError(
            f"frames_per_clip must be in [1, clip_length={clip_length}], got {frames_per_clip}.")
    keep = np.linspace(0, clip_length - 1, frames_per_clip).round().astype(int)
    keys = (clips_lib.FRAMES, clips_lib.BOXES, clips_lib.CLASSES, clips_lib.VALID,
            clips_lib.MASK)
    parts = {key: [] for key in keys}
    for clip in synthetic.synthetic_clips(split, task, num_clips, frame_size, clip_length,
                                          max_objects, start):
        for key in keys:
            parts[key].append(clip[key][keep])
    return {key: np.concatenate(value) for key, value in parts.items()}


def _flip(example, index, seed):
    """Left-right flip of frame, boxes and mask (if any) with probability 1/2, fixed by
    (seed, index)."""
    flip = tf.random.stateless_uniform([], seed=tf.stack([tf.cast(seed, tf.int64), index])) < 0.5
    frames = example[clips_lib.FRAMES]
    boxes = example[clips_lib.BOXES]
    ymin, xmin, ymax, xmax = tf.unstack(boxes, axis=-1)
    flipped = tf.stack([ymin, 1.0 - xmax, ymax, 1.0 - xmin], axis=-1)
    flipped = tf.where(example[clips_lib.VALID][:, None], flipped, boxes)
    out = dict(example)
    out[clips_lib.FRAMES] = tf.cond(flip, lambda: tf.reverse(frames, [1]), lambda: frames)
    out[clips_lib.BOXES] = tf.cond(flip, lambda: flipped, lambda: boxes)
    if clips_lib.MASK in example:
        mask = example[clips_lib.MASK]
        out[clips_lib.MASK] = tf.cond(flip, lambda: tf.reverse(mask, [1]), lambda: mask)
    return out


def _to_model_inputs(example):
    images = clips_lib.preprocess_frames(example.pop(clips_lib.FRAMES))
    return images, example


def training_dataset(frames: Dict[str, np.ndarray], batch_size: int, seed: int = 0,
                     flip: bool = True, start_step: int = 0) -> tf.data.Dataset:
    """Endless shuffled batches of frames, starting at batch `start_step`.

    Args:
      frames: dict from `synthetic_frames`.
      batch_size: global batch size B.
      seed: fixes the shuffle order and the flips.
      flip: random left-right flips.
      start_step: batches to skip, to resume a run exactly.

    Returns:
      A dataset of `(images, labels)`: images float32 [B, H, W, 3] in [-1, 1]; labels a dict of
      `boxes` float32 [B, K, 4], `classes` int32 [B, K], `valid` bool [B, K], `mask` uint8
      [B, H, W].
    """
    num_frames = len(frames[clips_lib.FRAMES])
    dataset = tf.data.Dataset.from_tensor_slices(frames)
    dataset = dataset.shuffle(num_frames, seed=seed, reshuffle_each_iteration=True).repeat()
    dataset = batch_frames(dataset, batch_size, seed, flip)
    return dataset.skip(start_step).prefetch(tf.data.AUTOTUNE)


def batch_frames(frames: tf.data.Dataset, batch_size: int, seed: int = 0,
                 flip: bool = True) -> tf.data.Dataset:
    """Flips (fixed by `(seed, element index)`) and batches a dataset of shuffled frames.

    Args:
      frames: dataset of dicts `frames` uint8 [H, W, 3], `boxes` float32 [K, 4], `classes`
        int32 [K], `valid` bool [K], optionally `mask` uint8 [H, W].
      batch_size: B.
      seed: seed of the flips.
      flip: random left-right flips.

    Returns:
      A dataset of `(images, labels)` as `training_dataset` (`mask` only if `frames` has it).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
    if flip:
        frames = frames.enumerate().map(lambda i, x: _flip(x, i, seed))
    return frames.map(_to_model_inputs).batch(batch_size, drop_remainder=True)


def evaluation_dataset(frames: Dict[str, np.ndarray], batch_size: int) -> tf.data.Dataset:
    """The frames once, in order, as `(images, labels)` batches (see `training_dataset`)."""
    dataset = tf.data.Dataset.from_tensor_slices(frames).map(_to_model_inputs)
    return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)
