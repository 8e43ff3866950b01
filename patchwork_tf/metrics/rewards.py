"""Q-learning rewards of the attention policy (Sec. 3.3, Eq. 2 and 3).

Per-frame quality measures `f(gt, p)` and the reward `R_t = max(0, f(gt_t, p_t) -
f(gt_t, p_{t-1}))` (Eq. 2): the gain of the current prediction over keeping the previous
frame's prediction, for the same ground truth. They run per frame for a batch of streams
inside the RL environment, so they are TF functions on padded tensors, graph-mode safe.

Detection (Eq. 3): `f = (1/K) sum_k IoU(gt_k, p~_k)`. Predictions with score > 0.5 (class
ignored) are matched greedily to the K valid ground-truth boxes: the pair with the highest
IoU first, then the highest among the unused boxes and predictions, and so on; a ground-truth
box left unmatched contributes 0. With K = 0 there is nothing to find: f = 1 when no
prediction passes the threshold and 0 otherwise, mirroring J's convention for an empty
ground-truth mask (a false alarm on an empty frame is a miss, a quiet frame is perfect).

Segmentation: `f` = the frame's J (foreground IoU, 1 when both masks are empty), the same
measure as `patchwork_tf.metrics.davis.region_similarity`.
"""
import tensorflow as tf

from patchwork_tf.ops import box_ops

SCORE_THRESHOLD = 0.5


def detection_overlap(gt_boxes, gt_valid, detections, score_threshold=SCORE_THRESHOLD):
    """Eq. 3: average greedy-matched IoU over the ground-truth boxes of each frame.

    Args:
      gt_boxes: float32 [B, K, 4] normalized (ymin, xmin, ymax, xmax), padded.
      gt_valid: bool [B, K], False for padding.
      detections: dict as from `patchwork_tf.ops.postprocess.postprocess`: boxes [B, D, 4],
        scores [B, D], num_detections [B] (classes are not used).
      score_threshold: predictions with a score strictly above it take part.

    Returns:
      float32 [B] in [0, 1].
    """
    gt_boxes = box_ops.check_boxes(gt_boxes, "gt_boxes")
    gt_valid = tf.convert_to_tensor(gt_valid, tf.bool)
    det_boxes = box_ops.check_boxes(detections["boxes"], "detections['boxes']")
    scores = tf.convert_to_tensor(detections["scores"], tf.float32)
    num_detections = tf.convert_to_tensor(detections["num_detections"], tf.int32)
    if gt_boxes.shape.rank != 3 or det_boxes.shape.rank != 3 or gt_valid.shape.rank != 2:
        raise ValueError(
            f"gt_boxes must be [B, K, 4], gt_valid [B, K] and detections['boxes'] [B, D, 4]; got "
            f"{gt_boxes.shape}, {gt_valid.shape} and {det_boxes.shape}.")
    num_det_slots = tf.shape(det_boxes)[1]
    confident = (scores > score_threshold) & (
        tf.range(num_det_slots)[None, :] < num_detections[:, None])
    usable = gt_valid[:, :, None] & confident[:, None, :]
    iou = tf.where(usable, box_ops.pairwise_iou(gt_boxes, det_boxes), -1.0)  # [B, K, D]

    def take_best_pair(step, iou, total):
        flat = tf.reshape(iou, [tf.shape(iou)[0], -1])
        best = tf.reduce_max(flat, axis=1)
        index = tf.argmax(flat, axis=1, output_type=tf.int32)
        used_gt = tf.one_hot(index // num_det_slots, tf.shape(iou)[1], on_value=True,
                             off_value=False)
        used_det = tf.one_hot(index % num_det_slots, num_det_slots, on_value=True,
                              off_value=False)
        iou = tf.where(used_gt[:, :, None] | used_det[:, None, :], -1.0, iou)
        return step + 1, iou, total + tf.maximum(best, 0.0)

    num_pairs = tf.minimum(tf.shape(iou)[1], num_det_slots)
    _, _, total = tf.while_loop(
        lambda step, *_: step < num_pairs, take_best_pair,
        (tf.constant(0), iou, tf.zeros(tf.shape(iou)[:1])))
    num_gt = tf.reduce_sum(tf.cast(gt_valid, tf.float32), axis=1)
    empty_frame_score = 1.0 - tf.cast(tf.reduce_any(confident, axis=1), tf.float32)
    return tf.where(num_gt > 0, total / tf.maximum(num_gt, 1.0), empty_frame_score)


def segmentation_overlap(gt_masks, predicted_masks):
    """Frame J: IoU of the foreground masks, 1 when both are empty.

    Args:
      gt_masks: bool or 0/1 integer [B, H, W] (the clip format's `mask`).
      predicted_masks: same shape; threshold logits or probabilities before calling.

    Returns:
      float32 [B] in [0, 1].
    """
    gt_masks = tf.convert_to_tensor(gt_masks)
    predicted_masks = tf.convert_to_tensor(predicted_masks)
    if (gt_masks.shape.rank != 3 or
        not gt_masks.shape.is_compatible_with(predicted_masks.shape)):
        raise ValueError(
            f"gt_masks and predicted_masks must both be [B, H, W]; got {gt_masks.shape} and "
            f"{predicted_masks.shape}. Resize the prediction to the frame first.")
    if predicted_masks.dtype.is_floating:
        raise ValueError(
            f"predicted_masks must be bool or 0/1 integers; got {predicted_masks.dtype}. "
            "Threshold the logits or probabilities first.")
    gt = tf.cast(gt_masks, tf.bool)
    pred = tf.cast(predicted_masks, tf.bool)
    inter = tf.reduce_sum(tf.cast(gt & pred, tf.float32), axis=[1, 2])
    union = tf.reduce_sum(tf.cast(gt | pred, tf.float32), axis=[1, 2])
    return tf.where(union > 0, inter / tf.maximum(union, 1.0), 1.0)


CLIPPED = "clipped"
DIFFERENCE = "difference"
REWARDS = (CLIPPED, DIFFERENCE)


def improvement_reward(f_current, f_previous, kind=CLIPPED):
    """Eq. 2, float32 [B]: "clipped" (the paper) R_t = max(0, f(gt_t, p_t) - f(gt_t, p_{t-1}));
    "difference" (ours) the same without the clipping at 0.

    The baseline f(gt_t, p_{t-1}) does not depend on the window chosen for frame t, so both
    rank the windows of a frame alike; the clipping gives every window 0 on frames where no
    window beats the kept prediction, which on the synthetic benchmark is most frames
    (`evaluation.attention_diagnostics`), so "difference" keeps a learning signal there.
    """
    if kind not in REWARDS:
        raise ValueError(f"reward must be one of {REWARDS}, got {kind!r}.")
    gain = (tf.convert_to_tensor(f_current, tf.float32) -
            tf.convert_to_tensor(f_previous, tf.float32))
    return tf.maximum(gain, 0.0) if kind == CLIPPED else gain


def detection_reward(gt_boxes, gt_valid, detections, previous_detections,
                     score_threshold=SCORE_THRESHOLD):
    """Eq. 2 with Eq. 3: the gain of this frame's detections over the previous frame's.

    Args:
      gt_boxes, gt_valid: ground truth of the current frame t, as in `detection_overlap`.
      detections: the prediction p_t for frame t.
      previous_detections: the prediction p_{t-1} made at frame t - 1.
      score_threshold: see `detection_overlap`.

    Returns:
      float32 [B] in [0, 1].
    """
    return improvement_reward(
        detection_overlap(gt_boxes, gt_valid, detections, score_threshold),
        detection_overlap(gt_boxes, gt_valid, previous_detections, score_threshold))


def segmentation_reward(gt_masks, predicted_masks, previous_masks):
    """Eq. 2 with f = J: gain of mask p_t over p_{t-1} on frame t's ground truth, float32 [B]."""
    return improvement_reward(segmentation_overlap(gt_masks, predicted_masks),
                              segmentation_overlap(gt_masks, previous_masks))
