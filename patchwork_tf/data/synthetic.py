"""The synthetic video benchmark: patchwork_tf's embedded default data (docs/design.md section 10).

Clips are generated with numpy from an integer seed (`np.random.default_rng(seed)`), so the same
seed gives the same clip byte for byte and nothing is ever downloaded. A clip shows shapes of
`len(CLASS_NAMES)` classes, told apart by outline (colour, size and rotation are jittered), on a
static textured background. The statistics are chosen so that attention matters (paper Sec. 1,
docs/design.md section 10): most objects are static, one or two move, and only for part of the clip;
moving objects enter and leave the frame and pass in front of or behind others; a minority of
clips has a slow camera pan, during which the whole frame changes.

Two task flavours come from the same generator:
- `"detection"`: 1 to `max_objects` objects; boxes of the visible extent, classes, track ids,
  instance masks; `mask` is the union of all visible objects.
- `"segmentation"` (DAVIS 2016 style): one large primary object that moves through the clip in
  slot 0 (track id 0) plus up to `max_objects - 1` smaller distractors; `mask` is the primary
  object's visible pixels.

Splits draw seeds from disjoint ranges (`split_seed`): train from [0, 1e8), validation from
[1e8, 2e8), test from [2e8, 3e8).

Output follows `patchwork_tf.data.clips` (the clip format); boxes use the pixel-edge convention.
"""
import colorsys
import dataclasses
import math

import numpy as np
import tensorflow as tf
from matplotlib import path as mpath
from PIL import Image

from patchwork_tf import tasks
from patchwork_tf.data import clips as clips_lib

CLASS_NAMES = ("circle", "square", "triangle", "cross", "star")
TASKS = tasks.TASKS
SPLITS = ("train", "validation", "test")
CLIPS_PER_SPLIT = 10**8
_SPLIT_INDEX = {split: i for i, split in enumerate(SPLITS)}


@dataclasses.dataclass(frozen=True)
class SyntheticConfig:
    """Parameters of the synthetic benchmark.

    Attributes:
        frame_size: (H, W) pixels. 128 x 128 keeps Patchwork windows of an M=4 grid on multiples
            of stride 32.
        clip_length: T, frames per clip.
        max_objects: K, object slots per clip (detection draws 1..K objects).
        max_moving: at most this many objects move in a detection clip (at least one does).
        object_size: (min, max) side of an object's bounding square, as a fraction of min(H, W).
        primary_size: (min, max) side of the segmentation flavour's primary object, same unit.
        speed_mean: mean speed of a moving object, fraction of min(H, W) per frame.
        speed_std: standard deviation of that speed (a Gaussian, folded at zero).
        enter_probability: chance that a moving detection object starts outside the frame.
        partial_motion_probability: chance that a moving object that starts inside the frame
            moves only during a sub-interval of the clip (it is still before and after).
        pan_probability: chance that a clip has a slow camera pan.
        pan_speed: pan speed, fraction of min(H, W) per frame.
        rotation_jitter: maximum rotation of a shape in degrees (either way).
        min_visible_fraction: an object is `valid` in a frame when at least this fraction of its
            shape's pixels is visible (not occluded, inside the frame).
    """

    frame_size: tuple = (128, 128)
    clip_length: int = 16
    max_objects: int = 4
    max_moving: int = 2
    object_size: tuple = (0.15, 0.40)
    primary_size: tuple = (0.30, 0.45)
    speed_mean: float = 0.025
    speed_std: float = 0.01
    enter_probability: float = 0.4
    partial_motion_probability: float = 0.5
    pan_probability: float = 0.15
    pan_speed: float = 0.004
    rotation_jitter: float = 20.0
    min_visible_fraction: float = 0.1

    def __post_init__(self):
        height, width = self.frame_size
        if height < 32 or width < 32:
            raise ValueError(f"frame_size {self.frame_size} is too small; use at least 32 x 32.")
        if self.clip_length < 1:
            raise ValueError(f"clip_length must be >= 1, got {self.clip_length}.")
        if not 1 <= self.max_objects <= 127 or self.max_moving < 1:
            raise ValueError(f"need 1 <= max_objects <= 127 and max_moving >= 1, got "
                             f"{self.max_objects} and {self.max_moving}.")
        for name in ("object_size", "primary_size"):
            low, high = getattr(self, name)
            if not 0.0 < low <= high <= 1.0:
                raise ValueError(f"{name} must be (min, max) with 0 < min <= max <= 1, got "
                                 f"{(low, high)}.")


def split_seed(split, index):
    """The seed of clip `index` of `split`; the splits' seed ranges are disjoint."""
    if split not in _SPLIT_INDEX:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}.")
    if not 0 <= index < CLIPS_PER_SPLIT:
        raise ValueError(f"clip index must be in [0, {CLIPS_PER_SPLIT}), got {index}.")
    return _SPLIT_INDEX[split] * CLIPS_PER_SPLIT + index


def _polygon(class_name):
    """Vertices of a shape's outline in [-1, 1]^2 (x, y), or None for the circle."""
    if class_name == "square":
        return np.array([[-0.85, -0.85], [0.85, -0.85], [0.85, 0.85], [-0.85, 0.85]])
    if class_name == "triangle":
        return np.array([[0.0, -1.0], [0.95, 0.8], [-0.95, 0.8]])
    if class_name == "cross":
        a, b = 0.32, 1.0
        return np.array([[-a, -b], [a, -b], [a, -a], [b, -a], [b, a], [a, a], [a, b], [-a, b],
                         [-a, a], [-b, a], [-b, -a], [-a, -a]])
    if class_name == "star":
        angles = -np.pi / 2 + np.arange(10) * np.pi / 5
        radii = np.where(np.arange(10) % 2 == 0, 1.0, 0.45)
        return np.stack([radii * np.cos(angles), radii * np.sin(angles)], axis=1)
    return None


def shape_mask(class_id, size, angle_degrees=0.0):
    """The pixels of one shape drawn in a `size x size` square.

    Args:
        class_id: index into `CLASS_NAMES`.
        size: side of the square in pixels.
        angle_degrees: rotation of the outline about the square's centre.

    Returns:
        bool [size, size].
    """
    coords = (np.arange(size) + 0.5) / size * 2.0 - 1.0
    xs, ys = np.meshgrid(coords, coords)
    vertices = _polygon(CLASS_NAMES[class_id])
    if vertices is None:
        return xs**2 + ys**2 <= 1.0
    angle = math.radians(angle_degrees)
    rotation = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    outline = mpath.Path(vertices @ rotation.T)
    points = np.stack([xs.ravel(), ys.ravel()], axis=1)
    return outline.contains_points(points).reshape(size, size)


def _smooth_noise(rng, height, width, cell):
    """Smooth random field in [0, 1]: coarse uniform noise upsampled bicubically."""
    coarse = rng.random((height // cell + 2, width // cell + 2)).astype(np.float32)
    image = Image.fromarray(coarse, mode="F").resize((width, height), Image.Resampling.BICUBIC)
    return np.clip(np.asarray(image), 0.0, 1.0)


def _hsv(hue, saturation, value):
    return np.array(colorsys.hsv_to_rgb(hue, saturation, value), np.float32) * 255.0


def _background(rng, height, width):
    """A static, low-saturation texture: two colours blended by smooth noise and stripes."""
    hue = rng.random()
    first = _hsv(hue, rng.uniform(0.0, 0.3), rng.uniform(0.3, 0.6))
    second = _hsv((hue + rng.uniform(-0.15, 0.15)) % 1.0, rng.uniform(0.0, 0.3),
                  rng.uniform(0.4, 0.75))
    blend = 0.7 * _smooth_noise(rng, height, width, int(rng.integers(8, 33)))
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    theta = rng.uniform(0.0, np.pi)
    period = rng.uniform(6.0, 24.0)
    stripes = np.sin((xs * np.cos(theta) + ys * np.sin(theta)) * 2.0 * np.pi / period)
    blend = np.clip(blend + 0.15 * stripes + 0.15, 0.0, 1.0)[..., None]
    grain = rng.normal(0.0, 4.0, (height, width, 1)).astype(np.float32)
    image = first * (1.0 - blend) + second * blend + grain
    return np.clip(image, 0.0, 255.0).astype(np.uint8)


def _appearance(rng, size):
    """A saturated object colour with a linear shading gradient: uint8 [size, size, 3]."""
    colour = _hsv(rng.random(), rng.uniform(0.6, 1.0), rng.uniform(0.65, 1.0))
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32) / max(size - 1, 1) - 0.5
    theta = rng.uniform(0.0, 2.0 * np.pi)
    shade = 1.0 + 0.3 * (xs * np.cos(theta) + ys * np.sin(theta))
    return np.clip(colour * shade[..., None], 0.0, 255.0).astype(np.uint8)


@dataclasses.dataclass
class _Object:
    class_id: int
    mask: np.ndarray
    appearance: np.ndarray
    start: np.ndarray
    velocity: np.ndarray
    active: tuple

    def centre(self, t):
        steps = np.clip(t, *self.active) - self.active[0]
        return self.start + self.velocity * steps


def _make_object(rng, config, size_range, side):
    class_id = int(rng.integers(len(CLASS_NAMES)))
    size = max(4, int(round(rng.uniform(*size_range) * side)))
    angle = rng.uniform(-config.rotation_jitter, config.rotation_jitter)
    return _Object(class_id=class_id, mask=shape_mask(class_id, size, angle),
                   appearance=_appearance(rng, size), start=np.zeros(2), velocity=np.zeros(2),
                   active=(0, 0))


def _speed(rng, config, side):
    return max(0.5, abs(rng.normal(config.speed_mean, config.speed_std)) * side)


def _place_static(rng, obj, height, width):
    obj.start = np.array([rng.uniform(0, height), rng.uniform(0, width)])


def _place_moving(rng, obj, config, height, width, enters):
    side = min(height, width)
    speed = _speed(rng, config, side)
    length = config.clip_length
    if enters:
        size = obj.mask.shape[0]
        edge = rng.integers(4)
        along = rng.uniform(0.15, 0.85)
        start = [(-size / 2, along * width), (height + size / 2, along * width),
                 (along * height, -size / 2), (along * height, width + size / 2)][edge]
        target = np.array([rng.uniform(0.3, 0.7) * height, rng.uniform(0.3, 0.7) * width])
        obj.start = np.array(start)
        direction = target - obj.start
        obj.active = (0, length)
    else:
        obj.start = np.array([rng.uniform(0.1, 0.9) * height, rng.uniform(0.1, 0.9) * width])
        direction = rng.normal(size=2)
        if length > 4 and rng.random() < config.partial_motion_probability:
            duration = int(rng.integers(max(2, length // 4), length))
            first = int(rng.integers(0, length - duration + 1))
            obj.active = (first, first + duration)
        else:
            obj.active = (0, length)
    obj.velocity = direction / max(np.linalg.norm(direction), 1e-6) * speed


def _objects(rng, task, config):
    height, width = config.frame_size
    side = min(height, width)
    objects = []
    if not tasks.get(task).uses_mask:
        count = int(rng.integers(1, config.max_objects + 1))
        moving = int(rng.integers(1, min(config.max_moving, count) + 1))
        for i in range(count):
            obj = _make_object(rng, config, config.object_size, side)
            if i < moving:
                _place_moving(rng, obj, config, height, width,
                              enters=rng.random() < config.enter_probability)
            else:
                _place_static(rng, obj, height, width)
            objects.append(obj)
    else:
        primary = _make_object(rng, config, config.primary_size, side)
        primary.start = np.array([rng.uniform(0.3, 0.7) * height, rng.uniform(0.3, 0.7) * width])
        direction = rng.normal(size=2)
        primary.velocity = direction / max(np.linalg.norm(direction), 1e-6) * _speed(
            rng, config, side)
        primary.active = (0, config.clip_length)
        objects.append(primary)
        small = (config.object_size[0], min(config.object_size[1], config.primary_size[0]))
        for _ in range(int(rng.integers(0, config.max_objects))):
            obj = _make_object(rng, config, small, side)
            if rng.random() < 0.5:
                _place_moving(rng, obj, config, height, width, enters=False)
            else:
                _place_static(rng, obj, height, width)
            objects.append(obj)
    return objects


def _paste(target, source, top, left, where):
    """Writes `source[where]` into `target` with `source`'s top-left at (top, left), clipped."""
    height, width = target.shape[:2]
    size_y, size_x = where.shape
    y0, x0 = max(top, 0), max(left, 0)
    y1, x1 = min(top + size_y, height), min(left + size_x, width)
    if y0 >= y1 or x0 >= x1:
        return
    crop = (slice(y0 - top, y1 - top), slice(x0 - left, x1 - left))
    region = target[y0:y1, x0:x1]
    region[where[crop]] = source[crop][where[crop]]


def synthetic_clip(seed, task="detection", config=SyntheticConfig(), clip_id=None):
    """Generates one clip of the synthetic benchmark.

    Args:
        seed: non-negative integer; the clip is a pure function of (seed, task, config).
        task: "detection" or "segmentation".
        config: a `SyntheticConfig`.
        clip_id: string stored as `clip_id`; defaults to "synthetic/<task>/<seed>".

    Returns:
        A clip dict (see `patchwork_tf.data.clips`) of numpy arrays with T = clip_length,
        K = max_objects, H, W = frame_size, including `instance_masks` and `mask`.
    """
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}.")
    rng = np.random.default_rng(seed)
    height, width = config.frame_size
    length, slots = config.clip_length, config.max_objects
    side = min(height, width)
    objects = _objects(rng, task, config)
    depth = rng.permutation(len(objects))

    pan = np.zeros(2)
    if rng.random() < config.pan_probability:
        angle = rng.uniform(0.0, 2.0 * np.pi)
        pan = np.array([np.sin(angle), np.cos(angle)]) * config.pan_speed * side
    margin = int(np.ceil(np.abs(pan).max() * length)) + 1
    background = _background(rng, height + 2 * margin, width + 2 * margin)

    frames = np.empty((length, height, width, 3), np.uint8)
    owner = np.full((length, height, width), -1, np.int8)
    for t in range(length):
        camera = pan * t
        shift = np.round(camera).astype(int)
        frames[t] = background[margin + shift[0]:margin + shift[0] + height,
                               margin + shift[1]:margin + shift[1] + width]
        for k in depth:
            obj = objects[k]
            size = obj.mask.shape[0]
            top, left = np.round(obj.centre(t) - camera - size / 2).astype(int)
            _paste(frames[t], obj.appearance, top, left, obj.mask)
            _paste(owner[t], np.full(obj.mask.shape, k, np.int8), top, left, obj.mask)

    visible = owner[:, None] == np.arange(slots, dtype=np.int8)[None, :, None, None]
    areas = np.zeros(slots)
    areas[:len(objects)] = [obj.mask.sum() for obj in objects]
    counts = visible.sum(axis=(2, 3))
    valid = (counts > 0) & (counts >= config.min_visible_fraction * areas[None])
    instance_masks = (visible & valid[:, :, None, None]).astype(np.uint8)

    rows = instance_masks.any(axis=3)
    cols = instance_masks.any(axis=2)
    boxes = np.stack([
        rows.argmax(axis=2) / height,
        cols.argmax(axis=2) / width,
        (height - rows[..., ::-1].argmax(axis=2)) / height,
        (width - cols[..., ::-1].argmax(axis=2)) / width,
    ], axis=-1).astype(np.float32)
    boxes[~valid] = 0.0

    classes = np.full(slots, -1, np.int32)
    classes[:len(objects)] = [obj.class_id for obj in objects]
    track_ids = np.full(slots, -1, np.int32)
    track_ids[:len(objects)] = np.arange(len(objects))
    if tasks.get(task).uses_mask:   # the primary object in slot 0
        mask = (owner == 0).astype(np.uint8)
    else:
        mask = (owner >= 0).astype(np.uint8)
    return {
        clips_lib.FRAMES: frames,
        clips_lib.BOXES: boxes,
        clips_lib.CLASSES: np.tile(classes, (length, 1)),
        clips_lib.TRACK_IDS: np.tile(track_ids, (length, 1)),
        clips_lib.VALID: valid,
        clips_lib.INSTANCE_MASKS: instance_masks,
        clips_lib.MASK: mask,
        clips_lib.CLIP_ID: clip_id if clip_id is not None else f"synthetic/{task}/{seed}",
    }


def synthetic_clips(split, task="detection", num_clips=16, frame_size=(128, 128),
                    clip_length=16, max_objects=4, start=0, **config_overrides):
    """Yields clips `start .. start + num_clips - 1` of one split of the synthetic benchmark.

    Args:
        split: "train", "validation" or "test" (disjoint seed ranges, see `split_seed`).
        task: "detection" or "segmentation".
        num_clips: number of clips to yield.
        frame_size: (H, W) pixels, or one int for square frames.
        clip_length: T.
        max_objects: K.
        start: index of the first clip in the split.
        **config_overrides: other `SyntheticConfig` fields.

    Yields:
        Clip dicts of numpy arrays; `clip_id` is "synthetic/<split>/<task>/<index>".
    """
    config = make_config(frame_size, clip_length, max_objects, **config_overrides)
    for index in range(start, start + num_clips):
        yield synthetic_clip(split_seed(split, index), task, config,
                             clip_id=f"synthetic/{split}/{task}/{index}")


def make_config(frame_size=(128, 128), clip_length=16, max_objects=4, **overrides):
    """A `SyntheticConfig`; `frame_size` may be one int for square frames."""
    if isinstance(frame_size, (int, np.integer)):
        frame_size = (int(frame_size), int(frame_size))
    return SyntheticConfig(frame_size=tuple(frame_size), clip_length=clip_length,
                           max_objects=max_objects, **overrides)


def synthetic_dataset(split, task="detection", num_clips=16, frame_size=(128, 128),
                      clip_length=16, max_objects=4, start=0, **config_overrides):
    """The clips of `synthetic_clips` as a `tf.data.Dataset` with fully static shapes.

    Each element is a clip dict of tensors (see `patchwork_tf.data.clips`):
    `frames` uint8 [T, H, W, 3], `boxes` float32 [T, K, 4], `classes`, `track_ids` int32
    [T, K], `valid` bool [T, K], `instance_masks` uint8 [T, K, H, W], `mask` uint8 [T, H, W],
    `clip_id` string []. Generation runs in Python; `.cache()` the result when it is iterated
    more than once.
    """
    config = make_config(frame_size, clip_length, max_objects, **config_overrides)
    signature = clips_lib.clip_signature(config.clip_length, config.frame_size,
                                         config.max_objects)
    return tf.data.Dataset.from_generator(
        lambda: synthetic_clips(split, task, num_clips, config.frame_size, config.clip_length,
                                config.max_objects, start, **config_overrides),
        output_signature=signature)
