"""Anchor-to-ground-truth matching and training targets for SSD-style detection heads.

Implements the TF Object Detection API's `ArgMaxMatcher` with the SSD defaults and its target
assigner, batched over padded ground truth:

* every anchor takes the ground-truth box it overlaps most (IoU);
* an anchor whose best IoU is >= `matched_threshold` is a positive;
* an anchor whose best IoU is < `unmatched_threshold` is a negative (background);
* an anchor in between is ignored (no loss at all); `unmatched_threshold == matched_threshold`
  (the SSD default, 0.5 / 0.5) removes the ignore band, RetinaNet uses 0.5 / 0.4;
* with `force_match`, each valid ground-truth box also claims the anchor it overlaps most, so
  no object is left without a positive anchor (SSD, Sec. 2.2 "matching strategy").
"""
import tensorflow as tf

from patchwork_tf.ops import box_coder
from patchwork_tf.ops import box_ops

NEGATIVE = -1
IGNORED = -2


def match(anchors, gt_boxes, gt_valid, matched_threshold=0.5, unmatched_threshold=0.5,
          force_match=True):
    """Matches each anchor to a ground-truth box index, a negative, or the ignore band.

    Args:
      anchors: float32 [N, 4] normalized (ymin, xmin, ymax, xmax).
      gt_boxes: float32 [B, K, 4] normalized, padded.
      gt_valid: bool [B, K], False for padding.
      matched_threshold: IoU at or above which an anchor is positive.
      unmatched_threshold: IoU below which an anchor is negative; <= `matched_threshold`.
      force_match: give each valid ground-truth box its best anchor regardless of thresholds.

    Returns:
      int32 [B, N]: the matched ground-truth index in [0, K), `NEGATIVE` (-1) or `IGNORED` (-2).
    """
    if not 0.0 <= unmatched_threshold <= matched_threshold:
        raise ValueError(
            f"need 0 <= unmatched_threshold <= matched_threshold; got unmatched_threshold="
            f"{unmatched_threshold}, matched_threshold={matched_threshold}. Equal values disable "
            "the ignore band.")
    anchors = box_ops.check_boxes(anchors, "anchors")
    gt_boxes = box_ops.check_boxes(gt_boxes, "gt_boxes")
    gt_valid = tf.convert_to_tensor(gt_valid, dtype=tf.bool)
    if gt_boxes.shape.rank != 3 or gt_valid.shape.rank != 2:
        raise ValueError(
            f"gt_boxes must be [B, K, 4] and gt_valid [B, K]; got shapes {gt_boxes.shape} and "
            f"{gt_valid.shape}. Add a batch axis for a single frame.")
    # Padding gets IoU -1 so that it never wins an argmax, not even against zero overlap; a
    # sentinel padding row keeps the argmaxes defined when K = 0.
    batch_size = tf.shape(gt_boxes)[0]
    gt_boxes = tf.concat([gt_boxes, tf.zeros([batch_size, 1, 4])], axis=1)
    gt_valid = tf.concat([gt_valid, tf.zeros([batch_size, 1], tf.bool)], axis=1)
    iou = box_ops.pairwise_iou(gt_boxes, anchors[None])
    iou = tf.where(gt_valid[:, :, None], iou, -1.0)  # [B, K + 1, N]

    best_gt = tf.argmax(iou, axis=1, output_type=tf.int32)  # [B, N]
    best_iou = tf.reduce_max(iou, axis=1)
    matches = tf.where(best_iou >= matched_threshold, best_gt,
                       tf.where(best_iou < unmatched_threshold, NEGATIVE, IGNORED))
    if force_match:
        best_anchor = tf.argmax(iou, axis=2, output_type=tf.int32)  # [B, K + 1]
        claims = tf.one_hot(best_anchor, tf.shape(anchors)[0], dtype=tf.int32)
        claims *= tf.cast(gt_valid, tf.int32)[:, :, None]  # [B, K + 1, N]
        # Where two boxes claim one anchor, the first box keeps it (as the OD API's matcher).
        claimant = tf.argmax(claims, axis=1, output_type=tf.int32)
        claimed = tf.reduce_max(claims, axis=1) > 0
        matches = tf.where(claimed, claimant, matches)
    return matches


def assign_targets(anchors, gt_boxes, gt_classes, gt_valid, matched_threshold=0.5,
                   unmatched_threshold=0.5, force_match=True,
                   scale_factors=box_coder.SSD_SCALE_FACTORS):
    """Per-anchor classification and regression targets and weights.

    Args:
      anchors: float32 [N, 4] normalized (ymin, xmin, ymax, xmax).
      gt_boxes: float32 [B, K, 4] normalized, padded.
      gt_classes: int32 [B, K], 0-based class ids; any value where `gt_valid` is False.
      gt_valid: bool [B, K], False for padding.
      matched_threshold, unmatched_threshold, force_match: see `match`.
      scale_factors: box coder scale factors (SSD: (10, 10, 5, 5)).

    Returns:
      dict of
        cls_targets: int32 [B, N]; 0 = background, class_id + 1 for positives; 0 where ignored.
        cls_weights: float32 [B, N]; 1 for positives and negatives, 0 in the ignore band.
        reg_targets: float32 [B, N, 4] box codes of the matched box; 0 where not positive.
        reg_weights: float32 [B, N]; 1 for positives, else 0.
        matches: int32 [B, N], as returned by `match`.
        num_positives: float32 [B], positives per frame.
    """
    matches = match(anchors, gt_boxes, gt_valid, matched_threshold, unmatched_threshold,
                    force_match)
    gt_boxes = box_ops.check_boxes(gt_boxes, "gt_boxes")
    gt_classes = tf.convert_to_tensor(gt_classes, dtype=tf.int32)
    positive = matches >= 0
    # Non-positives gather a zero sentinel entry, so the gather is defined when K = 0.
    batch_size = tf.shape(gt_boxes)[0]
    index = tf.where(positive, matches, tf.shape(gt_boxes)[1])
    matched_boxes = tf.gather(tf.concat([gt_boxes, tf.zeros([batch_size, 1, 4])], axis=1),
                              index, batch_dims=1)  # [B, N, 4]
    matched_classes = tf.gather(tf.concat([gt_classes, tf.zeros([batch_size, 1], tf.int32)], 1),
                                index, batch_dims=1)
    reg_weights = tf.cast(positive, tf.float32)
    codes = box_coder.encode(matched_boxes, box_ops.check_boxes(anchors, "anchors")[None],
                             scale_factors)
    return dict(
        cls_targets=tf.where(positive, matched_classes + 1, 0),
        cls_weights=tf.cast(matches != IGNORED, tf.float32),
        reg_targets=tf.where(positive[..., None], codes, 0.0),
        reg_weights=reg_weights,
        matches=matches,
        num_positives=tf.reduce_sum(reg_weights, axis=1),
    )
