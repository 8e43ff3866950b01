"""Faster R-CNN / SSD center-size box coder.

The encoding of the TF Object Detection API's `FasterRcnnBoxCoder`, used by SSD and SSDLite
(Liu et al., ECCV 2016; Sandler et al., CVPR 2018): a box relative to an anchor is

    ty = sy * (yc - yc_a) / h_a      tx = sx * (xc - xc_a) / w_a
    th = sh * log(h / h_a)           tw = sw * log(w / w_a)

with (yc, xc, h, w) the box center and size, `_a` the anchor's, and scale factors
(sy, sx, sh, sw) = (10, 10, 5, 5). As in the API, a tiny epsilon is added to the sizes while
encoding so that degenerate boxes give finite codes.
"""
import tensorflow as tf

from patchwork_tf.ops import box_ops

SSD_SCALE_FACTORS = (10.0, 10.0, 5.0, 5.0)
_EPSILON = 1e-8


def _center_size(boxes):
    ymin, xmin, ymax, xmax = tf.unstack(boxes, axis=-1)
    return (ymin + ymax) / 2.0, (xmin + xmax) / 2.0, ymax - ymin, xmax - xmin


def _check_scale_factors(scale_factors):
    if len(scale_factors) != 4 or any(s <= 0 for s in scale_factors):
        raise ValueError(
            f"scale_factors must be four positive numbers (sy, sx, sh, sw); got {scale_factors}. "
            f"SSD uses {SSD_SCALE_FACTORS}.")


def encode(boxes, anchors, scale_factors=SSD_SCALE_FACTORS):
    """Encodes boxes relative to anchors.

    Args:
      boxes: float32 [..., N, 4] normalized (ymin, xmin, ymax, xmax).
      anchors: float32 [N, 4] (or any shape broadcastable to `boxes`), same convention.
      scale_factors: (sy, sx, sh, sw).

    Returns:
      float32 [..., N, 4] codes (ty, tx, th, tw).
    """
    _check_scale_factors(scale_factors)
    boxes = box_ops.check_boxes(boxes)
    anchors = box_ops.check_boxes(anchors, "anchors")
    yc, xc, h, w = _center_size(boxes)
    yca, xca, ha, wa = _center_size(anchors)
    ha += _EPSILON
    wa += _EPSILON
    h += _EPSILON
    w += _EPSILON
    sy, sx, sh, sw = scale_factors
    return tf.stack([
        sy * (yc - yca) / ha,
        sx * (xc - xca) / wa,
        sh * tf.math.log(h / ha),
        sw * tf.math.log(w / wa),
    ], axis=-1)


def decode(codes, anchors, scale_factors=SSD_SCALE_FACTORS):
    """Decodes codes relative to anchors back to boxes; the inverse of `encode`.

    Args:
      codes: float32 [..., N, 4] (ty, tx, th, tw), e.g. a box predictor's output.
      anchors: float32 [N, 4] (or any shape broadcastable to `codes`), normalized
        (ymin, xmin, ymax, xmax).
      scale_factors: (sy, sx, sh, sw); must be those used to encode.

    Returns:
      float32 [..., N, 4] normalized (ymin, xmin, ymax, xmax), not clipped to the frame.
    """
    _check_scale_factors(scale_factors)
    codes = box_ops.check_boxes(codes, "codes")
    anchors = box_ops.check_boxes(anchors, "anchors")
    yca, xca, ha, wa = _center_size(anchors)
    ty, tx, th, tw = tf.unstack(codes, axis=-1)
    sy, sx, sh, sw = scale_factors
    h = tf.exp(th / sh) * ha
    w = tf.exp(tw / sw) * wa
    yc = ty / sy * ha + yca
    xc = tx / sx * wa + xca
    return tf.stack([yc - h / 2.0, xc - w / 2.0, yc + h / 2.0, xc + w / 2.0], axis=-1)
