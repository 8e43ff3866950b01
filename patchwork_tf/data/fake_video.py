"""Fake videos from still images (paper Sec. 3.4).

From one image with boxes and / or instance masks, two random view boxes are drawn; the view
moves from the first to the second at a speed drawn from a Gaussian and stops when it gets
there. At least one of the two views covers at least `min_overlap` of some ground-truth box,
and that view is always in the clip (the first frame, or the last when the view arrives
before the clip ends), so the video is not all background. Each frame is the view cropped and resized to the output
size (bilinear for the image, nearest for masks); the labels are transformed with the view,
boxes clipped to it and dropped (`valid` False) when less than `min_visible_fraction` of their
area is inside.

Still images come as *still records* (what the COCO, Pascal VOC and ImageNet DET readers
yield): `image` uint8 [H, W, 3], `boxes` float32 [K, 4] normalized `(ymin, xmin, ymax, xmax)`,
`classes` int32 [K], optional `instance_masks` uint8 [K, H, W] (0/1), `image_id` str. The
readers first yield each image as a `Still`: the record's labels, read from the annotation
alone, and `read_image`, which decodes the pixels; a caller that drops an image by its labels
(`training.sources`) never decodes it.
"""
from typing import Callable, NamedTuple

import numpy as np
from PIL import Image

from patchwork_tf.data import clips as clips_lib


class Still(NamedTuple):
    """One still image before its pixels are decoded.

    Attributes:
        labels: every field of its still record but `image` (from the annotation alone).
        read_image: decodes the image, uint8 [H, W, 3], and checks its size against the
            annotation (layout.DataLayoutError naming the file on a mismatch).
    """

    labels: dict
    read_image: Callable[[], np.ndarray]

    def record(self):
        """The still record: the decoded image and the labels."""
        return {"image": self.read_image(), **self.labels}


def transform_boxes(boxes, view, min_visible_fraction):
    """Boxes of the image in the coordinates of a view, clipped to it.

    Args:
        boxes: float [K, 4] normalized image coordinates `(ymin, xmin, ymax, xmax)`.
        view: float [4], the view box in the same coordinates.
        min_visible_fraction: a box is kept when the share of its area inside the view is at
            least this (and above zero).

    Returns:
        (boxes float32 [K, 4] normalized to the view and clipped to [0, 1], zeros where not
        kept; keep bool [K]).
    """
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    vy0, vx0, vy1, vx1 = np.asarray(view, np.float64)
    scale = np.array([vy1 - vy0, vx1 - vx0, vy1 - vy0, vx1 - vx0])
    moved = (boxes - np.array([vy0, vx0, vy0, vx0])) / scale
    clipped = np.clip(moved, 0.0, 1.0)
    area = np.prod(moved[:, 2:] - moved[:, :2], axis=1)
    inside = np.prod(np.maximum(clipped[:, 2:] - clipped[:, :2], 0.0), axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        fraction = np.where(area > 0, inside / area, 0.0)
    keep = (inside > 0) & (fraction >= min_visible_fraction)
    clipped[~keep] = 0.0
    return clipped.astype(np.float32), keep


def view_path(start, end, num_frames, speed):
    """The view boxes of a fake video: from `start` towards `end` at `speed`, then still.

    Args:
        start, end: float [4] view boxes, normalized image coordinates.
        num_frames: T.
        speed: distance the view's centre moves per frame, in normalized image units.

    Returns:
        float64 [T, 4]; row t is `start + (end - start) * min(1, t * speed / distance)`.
    """
    start, end = np.asarray(start, np.float64), np.asarray(end, np.float64)
    distance = np.linalg.norm((end[:2] + end[2:] - start[:2] - start[2:]) / 2.0)
    steps = np.arange(num_frames, dtype=np.float64) * speed
    progress = np.ones(num_frames) if distance == 0 else np.minimum(steps / distance, 1.0)
    return start + (end - start) * progress[:, None]


def _coverage(view, boxes):
    """Largest share of any box's area that lies inside `view`; 0 without boxes."""
    if not len(boxes):
        return 0.0
    top_left = np.maximum(boxes[:, :2], view[:2])
    bottom_right = np.minimum(boxes[:, 2:], view[2:])
    inter = np.prod(np.maximum(bottom_right - top_left, 0.0), axis=1)
    area = np.prod(boxes[:, 2:] - boxes[:, :2], axis=1)
    return float(np.max(np.where(area > 0, inter / np.maximum(area, 1e-12), 0.0)))


def _random_view(rng, image_size, frame_size, scale_range, centre=None):
    """A view box with the output's aspect ratio, `scale` of the largest that fits."""
    img_h, img_w = image_size
    out_h, out_w = frame_size
    largest_h = min(img_h, img_w * out_h / out_w)
    view_h = rng.uniform(*scale_range) * largest_h
    view_w = view_h * out_w / out_h
    if centre is None:
        y0 = rng.uniform(0.0, img_h - view_h)
        x0 = rng.uniform(0.0, img_w - view_w)
    else:
        y0 = np.clip(centre[0] * img_h - view_h / 2, 0.0, img_h - view_h)
        x0 = np.clip(centre[1] * img_w - view_w / 2, 0.0, img_w - view_w)
    return np.array([y0 / img_h, x0 / img_w, (y0 + view_h) / img_h, (x0 + view_w) / img_w])


def sample_views(rng, boxes, image_size, frame_size, scale_range=(0.4, 0.9), min_overlap=0.5,
                 max_tries=50):
    """Draws the two view boxes of a fake video.

    Rejection sampling: pairs are drawn until one view covers at least `min_overlap` of some
    box's area. After `max_tries` the covering view is centred on a random box at the largest
    scale, the closest to the requirement that the image allows. Without boxes any pair goes.

    Returns:
        (covering, other), float64 [4] each, normalized image coordinates; `covering` is the
        view that meets the overlap requirement.
    """
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    for _ in range(max_tries):
        start = _random_view(rng, image_size, frame_size, scale_range)
        end = _random_view(rng, image_size, frame_size, scale_range)
        if not len(boxes) or _coverage(start, boxes) >= min_overlap:
            return start, end
        if _coverage(end, boxes) >= min_overlap:
            return end, start
    target = boxes[rng.integers(len(boxes))]
    centre = (target[:2] + target[2:]) / 2.0
    start = _random_view(rng, image_size, frame_size, (scale_range[1], scale_range[1]), centre)
    return start, _random_view(rng, image_size, frame_size, scale_range)


def _render(image, view, frame_size, resample):
    img_h, img_w = image.shape[:2]
    vy0, vx0, vy1, vx1 = view
    extent = (vx0 * img_w, vy0 * img_h, vx1 * img_w, vy1 * img_h)
    out_h, out_w = frame_size
    return np.asarray(Image.fromarray(image).transform(
        (out_w, out_h), Image.Transform.EXTENT, extent, resample=resample))


def render_views(image, boxes, classes, views, frame_size, instance_masks=None,
                 min_visible_fraction=0.25, clip_id="fake"):
    """Renders a clip of the image seen through `views`, with labels transformed.

    Args:
        image: uint8 [H, W, 3].
        boxes: float [K, 4] normalized image coordinates.
        classes: int [K], 0-based.
        views: float [T, 4] view boxes, normalized image coordinates.
        frame_size: (h, w) of the output frames.
        instance_masks: optional uint8 [K, H, W] 0/1.
        min_visible_fraction: see `transform_boxes`.
        clip_id: stored as the clip's `clip_id`.

    Returns:
        A clip dict (see `patchwork_tf.data.clips`), K object slots, track id k for object k;
        with `instance_masks` (zeroed where not valid) and `mask` (all objects' visible pixels)
        when masks were given.
    """
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(f"image must be uint8 [H, W, 3], got {image.dtype} {image.shape}.")
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    classes = np.asarray(classes, np.int32).reshape(-1)
    if len(classes) != len(boxes):
        raise ValueError(f"got {len(boxes)} boxes but {len(classes)} classes.")
    if instance_masks is not None and np.shape(instance_masks) != (len(boxes),) + image.shape[:2]:
        raise ValueError(f"instance_masks has shape {np.shape(instance_masks)}, expected "
                         f"{(len(boxes),) + image.shape[:2]} (K, H, W).")
    num_frames, num_objects = len(views), len(boxes)
    frame_size = tuple(int(v) for v in frame_size)
    frames = np.stack([_render(image, view, frame_size, Image.Resampling.BILINEAR)
                       for view in views])
    out_boxes = np.zeros((num_frames, num_objects, 4), np.float32)
    valid = np.zeros((num_frames, num_objects), bool)
    for t, view in enumerate(views):
        out_boxes[t], valid[t] = transform_boxes(boxes, view, min_visible_fraction)
    clip = {
        clips_lib.FRAMES: frames,
        clips_lib.BOXES: out_boxes,
        clips_lib.CLASSES: np.tile(classes, (num_frames, 1)),
        clips_lib.TRACK_IDS: np.tile(np.arange(num_objects, dtype=np.int32), (num_frames, 1)),
        clips_lib.VALID: valid,
        clips_lib.CLIP_ID: clip_id,
    }
    if instance_masks is not None:
        masks = np.zeros((num_frames, num_objects) + frame_size, np.uint8)
        for t, view in enumerate(views):
            for k in range(num_objects):
                masks[t, k] = _render(np.asarray(instance_masks[k], np.uint8), view, frame_size,
                                      Image.Resampling.NEAREST)
        clip[clips_lib.MASK] = masks.max(axis=1, initial=0)
        clip[clips_lib.INSTANCE_MASKS] = masks * valid[:, :, None, None]
    return clip


def fake_video(record, rng, num_frames=16, frame_size=(128, 128), scale_range=(0.4, 0.9),
               speed_mean=0.03, speed_std=0.015, min_overlap=0.5, min_visible_fraction=0.25):
    """A fake video clip from one still record (paper Sec. 3.4).

    Args:
        record: a still record (see the module docstring).
        rng: `np.random.Generator`; the clip is a pure function of its state.
        num_frames: T.
        frame_size: (h, w) output pixels.
        scale_range: view side as a fraction of the largest view with the output's aspect
            ratio that fits in the image.
        speed_mean, speed_std: the Gaussian of the view centre's speed, normalized image units
            per frame (folded at zero).
        min_overlap: one of the two views covers at least this share of some box's area.
        min_visible_fraction: boxes with less of their area in the view are dropped.

    Returns:
        A clip dict; `clip_id` is "fake/<image_id>".
    """
    image = np.asarray(record["image"])
    covering, other = sample_views(rng, record["boxes"], image.shape[:2], frame_size,
                                   scale_range, min_overlap)
    speed = abs(rng.normal(speed_mean, speed_std))
    views = view_path(covering, other, num_frames, speed)
    if np.allclose(views[-1], other) and rng.random() < 0.5:
        # The covering view is in the clip either way, so the direction can be random.
        views = views[::-1]
    return render_views(image, record["boxes"], record["classes"], views, frame_size,
                        record.get("instance_masks"), min_visible_fraction,
                        clip_id=f"fake/{record.get('image_id', '')}")
