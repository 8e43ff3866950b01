"""ImageNet VID detection mAP at IoU 0.5 (Sec. 4.1), as the ILSVRC VID devkit computes it.

The devkit's rules (`eval_vid_detection.m`):
  * a ground-truth box of w x h pixels is found by a detection of its class with
    IoU >= min(0.5, w h / ((w + 10) (h + 10))), so that small objects get a looser threshold;
  * within a frame, detections are taken by descending score; each takes, among the
    not-yet-found ground-truth boxes of its class that it overlaps enough, the one with the
    largest IoU, else it is a false positive (each ground-truth box is found at most once);
  * per class, all frames' detections are ranked by score and AP is the area under the
    precision envelope with all-point interpolation (VOC 2010+ `VOCap`);
  * mAP is the mean over the classes that have ground truth.

Boxes here are continuous and normalized, so pixel sizes are `(xmax - xmin) * width` without
the devkit's `+ 1` for inclusive integer pixel indices; the frame size in pixels is needed
for the small-object threshold.

This is a streaming numpy accumulator: frames are matched as they are added, and only
(score, true-positive) pairs and ground-truth counts are kept.
"""
import numpy as np


def average_precision(recall, precision):
    """All-point interpolated AP (VOC `VOCap`): area under the precision envelope.

    Args:
      recall: float [D], non-decreasing, of the detections ranked by score.
      precision: float [D].

    Returns:
      float AP in [0, 1]; 0 for no detections.
    """
    recall = np.concatenate([[0.0], recall, [1.0]])
    precision = np.concatenate([[0.0], precision, [0.0]])
    precision = np.maximum.accumulate(precision[::-1])[::-1]
    steps = np.nonzero(recall[1:] != recall[:-1])[0] + 1
    return float(np.sum((recall[steps] - recall[steps - 1]) * precision[steps]))


def _iou_matrix(a, b):
    """IoU of pixel boxes a [D, 4] and b [K, 4]."""
    ih = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0])
    iw = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1])
    inter = np.maximum(ih, 0.0) * np.maximum(iw, 0.0)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


class VidMap:
    """Streaming ImageNet VID mAP@0.5.

    Usage:
      metric = VidMap(num_classes=30)
      metric.add_frame((height, width), gt_boxes, gt_classes, det_boxes, det_scores, det_classes)
      ...
      metric.result()  # {"mAP": float, "ap": float64 [num_classes], NaN without ground truth}
    """

    def __init__(self, num_classes, iou_threshold=0.5, pixel_tolerance=10.0):
        """
        Args:
          num_classes: number of object classes; class ids are 0-based.
          iou_threshold: IoU threshold for boxes large enough (0.5 for VID).
          pixel_tolerance: the devkit's 10 pixels of the small-object rule; 0 turns the rule off.
        """
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1; got {num_classes}.")
        self.num_classes = int(num_classes)
        self.iou_threshold = float(iou_threshold)
        self.pixel_tolerance = float(pixel_tolerance)
        self.reset()

    def reset(self):
        """Forgets all frames added so far."""
        self._scores = [[] for _ in range(self.num_classes)]
        self._true_positive = [[] for _ in range(self.num_classes)]
        self._num_gt = np.zeros(self.num_classes, np.int64)

    def _check(self, boxes, classes, name):
        boxes = np.asarray(boxes, np.float64)
        classes = np.asarray(classes)
        if boxes.size == 0 and classes.size == 0:
            return np.zeros((0, 4)), np.zeros(0, np.int64)
        if boxes.ndim != 2 or boxes.shape[-1] != 4 or classes.shape != boxes.shape[:1]:
            raise ValueError(
                f"{name}_boxes must be [n, 4] and {name}_classes [n]; got shapes {boxes.shape} and "
                f"{classes.shape}. Drop padding rows before add_frame, or use add_batch.")
        if classes.size and (classes.min() < 0 or classes.max() >= self.num_classes):
            raise ValueError(
                f"{name}_classes must be 0-based ids in [0, {self.num_classes}); got values from "
                f"{classes.min()} to {classes.max()}.")
        return boxes, classes.astype(np.int64)

    def add_frame(self, frame_size, gt_boxes, gt_classes, det_boxes, det_scores, det_classes):
        """Adds one frame's ground truth and detections.

        Args:
          frame_size: (height, width) of the frame in pixels.
          gt_boxes: float [K, 4] normalized (ymin, xmin, ymax, xmax), no padding.
          gt_classes: int [K] 0-based class ids.
          det_boxes: float [D, 4] normalized, no padding.
          det_scores: float [D].
          det_classes: int [D] 0-based class ids.
        """
        height, width = frame_size
        if height <= 0 or width <= 0:
            raise ValueError(
                f"frame_size must be positive (height, width) pixels; got {frame_size}.")
        gt_boxes, gt_classes = self._check(gt_boxes, gt_classes, "gt")
        det_boxes, det_classes = self._check(det_boxes, det_classes, "det")
        det_scores = np.asarray(det_scores, np.float64)
        if det_scores.shape != det_classes.shape:
            raise ValueError(
                f"det_scores must be [D] = {det_classes.shape}; got {det_scores.shape}.")
        scale = np.array([height, width, height, width], np.float64)
        gt_boxes, det_boxes = gt_boxes * scale, det_boxes * scale
        h = gt_boxes[:, 2] - gt_boxes[:, 0]
        w = gt_boxes[:, 3] - gt_boxes[:, 1]
        tol = self.pixel_tolerance
        thresholds = np.minimum(self.iou_threshold, w * h / ((w + tol) * (h + tol)))
        iou = _iou_matrix(det_boxes, gt_boxes)
        found = np.zeros(len(gt_boxes), bool)
        np.add.at(self._num_gt, gt_classes, 1)
        for d in np.argsort(-det_scores, kind="stable"):
            c = det_classes[d]
            candidates = (gt_classes == c) & ~found & (iou[d] >= thresholds)
            hit = bool(candidates.any())
            if hit:
                found[np.argmax(np.where(candidates, iou[d], -1.0))] = True
            self._scores[c].append(det_scores[d])
            self._true_positive[c].append(hit)

    def add_batch(self, frame_size, gt_boxes, gt_classes, gt_valid, detections):
        """Adds a batch of frames in the project's padded formats.

        Args:
          frame_size: (height, width) of the frames in pixels.
          gt_boxes: float [B, K, 4] normalized, padded (the clip format's `boxes`).
          gt_classes: int [B, K] 0-based, -1 padding.
          gt_valid: bool [B, K].
          detections: dict from `patchwork_tf.ops.postprocess.postprocess` (boxes [B, D, 4],
            scores [B, D], classes [B, D], num_detections [B]); tensors or arrays.
        """
        gt_boxes, gt_classes = np.asarray(gt_boxes), np.asarray(gt_classes)
        gt_valid = np.asarray(gt_valid, bool)
        det = {k: np.asarray(v) for k, v in detections.items()}
        for b in range(gt_boxes.shape[0]):
            n = int(det["num_detections"][b])
            self.add_frame(frame_size, gt_boxes[b][gt_valid[b]], gt_classes[b][gt_valid[b]],
                           det["boxes"][b, :n], det["scores"][b, :n], det["classes"][b, :n])

    def result(self):
        """Returns {"mAP": mean AP over classes with ground truth (NaN if none), "ap": [C]}."""
        ap = np.full(self.num_classes, np.nan)
        for c in range(self.num_classes):
            if self._num_gt[c] == 0:
                continue
            order = np.argsort(-np.asarray(self._scores[c]), kind="stable")
            tp = np.cumsum(np.asarray(self._true_positive[c], np.float64)[order])
            fp = np.cumsum(1.0 - np.asarray(self._true_positive[c], np.float64)[order])
            ap[c] = average_precision(tp / self._num_gt[c], tp / np.maximum(tp + fp, 1e-12))
        valid = ~np.isnan(ap)
        return {"mAP": float(np.mean(ap[valid])) if valid.any() else float("nan"), "ap": ap}
