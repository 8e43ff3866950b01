"""ImageNet VID detection mAP at IoU 0.5 (Sec. 4.1), as the ILSVRC 2015 devkit computes it.

The devkit's rules (`evaluation/eval_vid_detection.m`, `VOCap.m`), on boxes given as inclusive
pixel indices `(xmin, ymin, xmax, ymax)`:
  * IoU counts pixels: intersection `iw = min(xmax) - max(xmin) + 1` (likewise `ih`), a box's
    area `(xmax - xmin + 1) (ymax - ymin + 1)`, IoU = `iw ih / (area_det + area_gt - iw ih)`;
  * a ground-truth box of w x h pixels (w = xmax - xmin + 1) is found by a detection of its
    class with IoU >= min(0.5, w h / ((w + 10) (h + 10))), so small objects get a looser
    threshold (0.25 for 10 x 10 pixels);
  * within a frame, detections are taken by descending score (a stable sort); each takes,
    among the not-yet-found ground-truth boxes of its class whose threshold it meets, the one
    of largest IoU (the first in annotation order on a tie), else it is a false positive, so
    each ground-truth box is found at most once and a duplicate is a false positive;
  * per class, all frames' detections are ranked by score (a stable sort over the frames in
    evaluation order) and AP is the area under the precision envelope with all-point
    interpolation (`VOCap`);
  * mAP is the mean over the classes; here classes without ground truth are left out (NaN).

Boxes here are continuous pixel edges, normalized: `(ymin, xmin, ymax, xmax)` with `ymax`
the edge after the last row. `patchwork_tf.data.imagenet_vid` reads the devkit's inclusive
corners as edges `(xmin, xmax + 1)`, so a box's continuous width `xmax_edge - xmin_edge` is the
devkit's `xmax - xmin + 1`, and the continuous intersection `min(edge) - max(edge)` is the
devkit's `min(xmax) - max(xmin) + 1`: the continuous IoU and threshold below equal the
devkit's on the same boxes, term by term. A detection with edges `(x0, x1)` is the devkit's
`xmin = x0, xmax = x1 - 1` (write it so for a devkit submission).

Pixel coordinates are `normalized * frame size`, rounded to 1/1000 pixel: float32 boxes of a
frame up to ~8000 pixels carry less than that error, so the rounding gives back the integer
edges of annotated boxes exactly, and a detection whose IoU ties the threshold is decided as
the devkit decides it. The frame size must be the one the boxes are annotated in (the
original resolution), since the small-object threshold counts pixels.

This is a streaming numpy accumulator: frames are matched as they are added, and only
(score, true-positive) pairs and ground-truth counts are kept. `state` / `merge_state` save
and combine them (to resume an evaluation, or to evaluate videos apart and merge); merging
states in evaluation order reproduces the devkit's order among equal scores.
"""
import numpy as np

# Pixel coordinates are rounded to this many decimals (see the module docstring).
PIXEL_DECIMALS = 3
_STATE_KEYS = ("num_classes", "iou_threshold", "pixel_tolerance", "num_gt", "scores",
               "true_positive")


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
      saved = metric.state()  # JSON-serializable; VidMap(30).merge_state(saved) resumes it
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
        gt_boxes = np.round(gt_boxes * scale, PIXEL_DECIMALS)
        det_boxes = np.round(det_boxes * scale, PIXEL_DECIMALS)
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

    def state(self):
        """Everything added so far, as a JSON-serializable dict of plain lists and numbers.

        Returns:
          {"num_classes": C, "iou_threshold": float, "pixel_tolerance": float,
           "num_gt": [C] ints, "scores": [C] lists of floats, "true_positive": [C] lists of
           0/1 ints} (per class, the detections in the order they were added).
        """
        return {
            "num_classes": self.num_classes,
            "iou_threshold": self.iou_threshold,
            "pixel_tolerance": self.pixel_tolerance,
            "num_gt": [int(n) for n in self._num_gt],
            "scores": [[float(s) for s in scores] for scores in self._scores],
            "true_positive": [[int(bool(t)) for t in tp] for tp in self._true_positive],
        }

    def merge_state(self, state):
        """Adds the frames of a `state()` (of this or another VidMap) after those added so far.

        Raises:
          ValueError: the state is malformed or from a metric with other settings.
        """
        missing = [key for key in _STATE_KEYS if key not in state]
        if missing:
            raise ValueError(f"VidMap state lacks {missing}; pass a dict from VidMap.state().")
        settings = (int(state["num_classes"]), float(state["iou_threshold"]),
                    float(state["pixel_tolerance"]))
        if settings != (self.num_classes, self.iou_threshold, self.pixel_tolerance):
            raise ValueError(
                f"cannot merge a VidMap state with (num_classes, iou_threshold, "
                f"pixel_tolerance) = {settings} into a metric with "
                f"{(self.num_classes, self.iou_threshold, self.pixel_tolerance)}.")
        lengths = [len(state[key]) for key in ("num_gt", "scores", "true_positive")]
        if lengths != [self.num_classes] * 3 or any(
                len(s) != len(t) for s, t in zip(state["scores"], state["true_positive"])):
            raise ValueError(
                f"VidMap state has per-class lists of lengths {lengths} (want {self.num_classes}"
                ") or scores and true_positive of different lengths; pass a dict from "
                "VidMap.state().")
        self._num_gt += np.array(state["num_gt"], np.int64)
        for c in range(self.num_classes):
            self._scores[c].extend(float(s) for s in state["scores"][c])
            self._true_positive[c].extend(bool(t) for t in state["true_positive"][c])

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
