"""Box arithmetic on normalized (ymin, xmin, ymax, xmax) boxes.

Boxes follow the project convention: float32, coordinates normalized to [0, 1] of the frame
height (y) and width (x), in TensorFlow's `(ymin, xmin, ymax, xmax)` order. All functions are
pure, broadcast over leading batch dimensions and run in graph mode.
"""
import tensorflow as tf


def check_boxes(boxes, name="boxes"):
    """Returns `boxes` as a float32 tensor after checking its last dimension is 4.

    Args:
      boxes: float tensor [..., 4], (ymin, xmin, ymax, xmax).
      name: what to call the argument in the error message.

    Raises:
      ValueError: if the static last dimension is not 4.
    """
    boxes = tf.convert_to_tensor(boxes, dtype=tf.float32)
    if boxes.shape.rank is not None and (
        boxes.shape.rank == 0 or boxes.shape[-1] not in (None, 4)):
        raise ValueError(
            f"{name} must have shape [..., 4] (boxes: ymin, xmin, ymax, xmax; box codes: ty, tx, "
            f"th, tw); got shape {boxes.shape}. Stack the four coordinates on the last axis.")
    return boxes


def area(boxes):
    """Area of each box.

    Args:
      boxes: float32 [..., 4] normalized (ymin, xmin, ymax, xmax).

    Returns:
      float32 [...], in units of the frame area; 0 for degenerate boxes (ymax <= ymin or
      xmax <= xmin).
    """
    boxes = check_boxes(boxes)
    ymin, xmin, ymax, xmax = tf.unstack(boxes, axis=-1)
    return tf.maximum(ymax - ymin, 0.0) * tf.maximum(xmax - xmin, 0.0)


def pairwise_intersection(boxes1, boxes2):
    """Intersection area of every pair of boxes.

    Args:
      boxes1: float32 [..., N, 4].
      boxes2: float32 [..., M, 4]; leading dimensions broadcast with those of `boxes1`.

    Returns:
      float32 [..., N, M].
    """
    boxes1 = check_boxes(boxes1, "boxes1")
    boxes2 = check_boxes(boxes2, "boxes2")
    ymin1, xmin1, ymax1, xmax1 = tf.unstack(boxes1[..., :, None, :], axis=-1)
    ymin2, xmin2, ymax2, xmax2 = tf.unstack(boxes2[..., None, :, :], axis=-1)
    height = tf.maximum(tf.minimum(ymax1, ymax2) - tf.maximum(ymin1, ymin2), 0.0)
    width = tf.maximum(tf.minimum(xmax1, xmax2) - tf.maximum(xmin1, xmin2), 0.0)
    return height * width


def pairwise_iou(boxes1, boxes2):
    """Intersection over union of every pair of boxes.

    Args:
      boxes1: float32 [..., N, 4].
      boxes2: float32 [..., M, 4]; leading dimensions broadcast with those of `boxes1`.

    Returns:
      float32 [..., N, M] in [0, 1]; 0 where the union is empty (two degenerate boxes).
    """
    intersection = pairwise_intersection(boxes1, boxes2)
    union = area(boxes1)[..., :, None] + area(boxes2)[..., None, :] - intersection
    return tf.math.divide_no_nan(intersection, union)


def clip_to_window(boxes, window=(0.0, 0.0, 1.0, 1.0)):
    """Clips boxes to a window, e.g. the frame (the default) or an attention window.

    Args:
      boxes: float32 [..., 4] normalized (ymin, xmin, ymax, xmax).
      window: (ymin, xmin, ymax, xmax) of the window, normalized; a sequence or a float32
        tensor [4] or [..., 4] broadcastable to `boxes`.

    Returns:
      float32 [..., 4]; boxes outside the window collapse to zero area on its border.
    """
    boxes = check_boxes(boxes)
    window = check_boxes(window, "window")
    wymin, wxmin, wymax, wxmax = tf.unstack(window, axis=-1)
    ymin, xmin, ymax, xmax = tf.unstack(boxes, axis=-1)
    return tf.stack([
        tf.clip_by_value(ymin, wymin, wymax),
        tf.clip_by_value(xmin, wxmin, wxmax),
        tf.clip_by_value(ymax, wymin, wymax),
        tf.clip_by_value(xmax, wxmin, wxmax),
    ], axis=-1)



def flip_left_right(boxes):
    """Mirrors normalized `(ymin, xmin, ymax, xmax)` boxes `[..., 4]` about `x = 1/2`."""
    ymin, xmin, ymax, xmax = tf.unstack(boxes, axis=-1)
    return tf.stack([ymin, 1.0 - xmax, ymax, 1.0 - xmin], axis=-1)
