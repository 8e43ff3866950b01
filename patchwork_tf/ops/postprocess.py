"""SSD post-processing: decode box codes, sigmoid scores, per-class NMS.

The last global op of the detection head (docs/design.md section 2): it always runs on the full-frame
predictions, so the output is a detection of the whole frame. Scores are sigmoids, matching
the focal loss in `patchwork_tf.losses.detection`; column 0 (background) is dropped.
"""
import tensorflow as tf

from patchwork_tf.ops import box_coder
from patchwork_tf.ops import box_ops


def postprocess(box_encodings, class_logits, anchors, max_detections=100,
                max_detections_per_class=100, iou_threshold=0.6, score_threshold=1e-8,
                scale_factors=box_coder.SSD_SCALE_FACTORS):
    """Turns raw SSD head outputs into a padded list of detections per frame.

    Defaults are those of the TF OD API's SSDLite MobileNetV2 config (IoU 0.6, score 1e-8,
    100 per class, 100 in total).

    Args:
      box_encodings: float32 [B, N, 4] box codes relative to `anchors`.
      class_logits: float32 [B, N, C + 1], column 0 background.
      anchors: float32 [N, 4] normalized (ymin, xmin, ymax, xmax).
      max_detections: D, detections kept per frame.
      max_detections_per_class: detections kept per class before the top D are taken.
      iou_threshold: NMS overlap above which the lower-scored box of a class is suppressed.
      score_threshold: scores at or below it are dropped before NMS.
      scale_factors: box coder scale factors used in training.

    Returns:
      dict of
        boxes: float32 [B, D, 4] normalized, clipped to the frame, zero padding;
        scores: float32 [B, D] sigmoid scores, descending, zero padding;
        classes: int32 [B, D] 0-based class ids, 0 in the padding;
        num_detections: int32 [B], number of valid rows.
    """
    box_encodings = box_ops.check_boxes(box_encodings, "box_encodings")
    class_logits = tf.convert_to_tensor(class_logits, tf.float32)
    if box_encodings.shape.rank != 3 or class_logits.shape.rank != 3:
        raise ValueError(
            f"box_encodings must be [B, N, 4] and class_logits [B, N, C + 1]; got shapes "
            f"{box_encodings.shape} and {class_logits.shape}.")
    if class_logits.shape[-1] is not None and class_logits.shape[-1] < 2:
        raise ValueError(
            f"class_logits needs a background column and at least one class: [B, N, C + 1] with "
            f"C >= 1; got shape {class_logits.shape}.")
    boxes = box_coder.decode(box_encodings, anchors, scale_factors)
    scores = tf.sigmoid(class_logits[..., 1:])
    nmsed = tf.image.combined_non_max_suppression(
        boxes[:, :, None, :], scores, max_output_size_per_class=max_detections_per_class,
        max_total_size=max_detections, iou_threshold=iou_threshold,
        score_threshold=score_threshold, pad_per_class=False, clip_boxes=True)
    return dict(boxes=nmsed.nmsed_boxes, scores=nmsed.nmsed_scores,
                classes=tf.cast(nmsed.nmsed_classes, tf.int32),
                num_detections=nmsed.valid_detections)
