"""The clip format that every data source in patchwork_tf produces.

A clip is a dict of arrays (numpy from the Python sources, tensors inside tf.data) for `T`
consecutive frames holding at most `K` objects; object slot `k` is the same object (the same
track) in every frame, and padding slots carry class and track id -1.

| key              | dtype   | shape          | meaning                                          |
|------------------|---------|----------------|--------------------------------------------------|
| `frames`         | uint8   | [T, H, W, 3]   | RGB frames                                       |
| `boxes`          | float32 | [T, K, 4]      | `(ymin, xmin, ymax, xmax)` normalized to [0, 1]; |
|                  |         |                | pixel-edge convention: a box covering rows       |
|                  |         |                | `r0..r1` has `ymin = r0 / H`, `ymax = (r1+1)/H`; |
|                  |         |                | all zeros where `valid` is False                 |
| `classes`        | int32   | [T, K]         | 0-based class id, -1 for padding slots           |
| `track_ids`      | int32   | [T, K]         | track id (unique within the clip), -1 padding    |
| `valid`          | bool    | [T, K]         | the object is present and visible in frame t     |
| `instance_masks` | uint8   | [T, K, H, W]   | 0/1 visible pixels of each object (optional)     |
| `mask`           | uint8   | [T, H, W]      | 0/1 primary-object / foreground mask (optional,  |
|                  |         |                | DAVIS 2016 style)                                |
| `clip_id`        | string  | []             | where the clip came from                         |

`instance_masks` and `mask` are omitted by sources that have no masks (ImageNet VID, Pascal VOC
without `SegmentationObject`). The number of classes is a property of the source (its
`CLASS_NAMES`), not of the clip.

Models take float32 frames in [-1, 1] (MobileNetV2's convention): see `preprocess_frames`.
"""
import numpy as np
import tensorflow as tf

FRAMES = "frames"
BOXES = "boxes"
CLASSES = "classes"
TRACK_IDS = "track_ids"
VALID = "valid"
INSTANCE_MASKS = "instance_masks"
MASK = "mask"
CLIP_ID = "clip_id"

REQUIRED_KEYS = (FRAMES, BOXES, CLASSES, TRACK_IDS, VALID, CLIP_ID)
OPTIONAL_KEYS = (INSTANCE_MASKS, MASK)

_DTYPES = {
        FRAMES: np.uint8,
        BOXES: np.float32,
        CLASSES: np.int32,
        TRACK_IDS: np.int32,
        VALID: np.bool_,
        INSTANCE_MASKS: np.uint8,
        MASK: np.uint8,
}


def preprocess_frames(frames):
    """Maps uint8 RGB frames to the float32 [-1, 1] range that MobileNetV2 expects.

    Args:
        frames: uint8 tensor of any shape ending in 3 channels, e.g. [T, H, W, 3].

    Returns:
        float32 tensor of the same shape, `frames / 127.5 - 1`.
    """
    frames = tf.convert_to_tensor(frames)
    if frames.dtype != tf.uint8:
        raise TypeError(f"preprocess_frames expects uint8 frames, got {frames.dtype.name}; "
                        "pass the clip's raw `frames`, not frames already scaled.")
    return tf.cast(frames, tf.float32) / 127.5 - 1.0


def clip_signature(clip_length=None, frame_size=(None, None), max_objects=None,
                   with_instance_masks=True, with_mask=True):
    """The `tf.TensorSpec`s of a clip, for `tf.data.Dataset.from_generator`.

    Args:
        clip_length: T, or None when clips vary in length.
        frame_size: (H, W); entries may be None.
        max_objects: K, or None when it varies.
        with_instance_masks: whether the clip carries `instance_masks`.
        with_mask: whether the clip carries `mask`.

    Returns:
        dict key -> tf.TensorSpec.
    """
    t, k = clip_length, max_objects
    h, w = frame_size
    spec = {
        FRAMES: tf.TensorSpec([t, h, w, 3], tf.uint8),
        BOXES: tf.TensorSpec([t, k, 4], tf.float32),
        CLASSES: tf.TensorSpec([t, k], tf.int32),
        TRACK_IDS: tf.TensorSpec([t, k], tf.int32),
        VALID: tf.TensorSpec([t, k], tf.bool),
        CLIP_ID: tf.TensorSpec([], tf.string),
    }
    if with_instance_masks:
        spec[INSTANCE_MASKS] = tf.TensorSpec([t, k, h, w], tf.uint8)
    if with_mask:
        spec[MASK] = tf.TensorSpec([t, h, w], tf.uint8)
    return spec


def validate_clip(clip):
    """Checks that a numpy clip follows the format above; raises ValueError naming what is wrong.

    Args:
        clip: dict of numpy arrays (and a str / bytes `clip_id`).

    Returns:
        The clip, unchanged, so sources can `return validate_clip(clip)`.
    """
    missing = [key for key in REQUIRED_KEYS if key not in clip]
    if missing:
        raise ValueError(f"clip lacks required keys {missing}; a clip needs {list(REQUIRED_KEYS)} "
                         f"and may have {list(OPTIONAL_KEYS)}.")
    unknown = sorted(set(clip) - set(REQUIRED_KEYS) - set(OPTIONAL_KEYS))
    if unknown:
        raise ValueError(f"clip has unknown keys {unknown}; allowed are "
                         f"{list(REQUIRED_KEYS + OPTIONAL_KEYS)}.")
    for key, dtype in _DTYPES.items():
        if key in clip and np.asarray(clip[key]).dtype != dtype:
            raise ValueError(f"clip[{key!r}] has dtype {np.asarray(clip[key]).dtype}, expected "
                             f"{np.dtype(dtype).name}.")
    frames = clip[FRAMES]
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"clip['frames'] has shape {frames.shape}, expected [T, H, W, 3].")
    t, h, w, _ = frames.shape
    k = clip[CLASSES].shape[-1] if clip[CLASSES].ndim == 2 else None
    expected = {
        BOXES: (t, k, 4), CLASSES: (t, k), TRACK_IDS: (t, k), VALID: (t, k),
        INSTANCE_MASKS: (t, k, h, w), MASK: (t, h, w),
    }
    for key, shape in expected.items():
        if key in clip and (k is None or clip[key].shape != shape):
            raise ValueError(f"clip[{key!r}] has shape {clip[key].shape}, expected {shape} "
                             f"(T={t}, K={k}, H={h}, W={w}).")
    boxes = clip[BOXES]
    if np.any(boxes < 0.0) or np.any(boxes > 1.0):
        raise ValueError("clip['boxes'] has coordinates outside [0, 1]; boxes are normalized "
                         "(ymin, xmin, ymax, xmax).")
    if np.any(clip[CLASSES][clip[VALID]] < 0):
        raise ValueError("clip has a valid object with class -1; -1 marks padding slots only.")
    return clip

