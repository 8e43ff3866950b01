"""DAVIS 2016 region similarity J and boundary accuracy F (Sec. 4.2).

As the DAVIS toolkit (`db_eval_iou`, `db_eval_boundary` with `bound_th=0.008`):
  * J is the IoU of the predicted and ground-truth foreground, 1 when both are empty;
  * F is the F-measure of boundary pixels: boundaries by the `seg2bmap` rule (a pixel is on
    the boundary when it differs from its east, south or south-east neighbour), a boundary
    pixel counts as matched when a boundary pixel of the other mask lies within Euclidean
    distance `ceil(0.008 * image diagonal)` pixels (dilation by a disk of that radius);
    an empty boundary has precision 1 or recall 1 as in the toolkit, F = 0 when P + R = 0;
  * scores are averaged over the frames of a sequence, then over sequences.

The toolkit's semi-supervised evaluation drops the first (given) and last frames of each
sequence; to reproduce that, slice the sequence before `DavisJF.add`.

numpy only: the disk dilation is done here rather than with scipy / OpenCV.
"""
import math

import numpy as np

BOUNDARY_THRESHOLD = 0.008


def _check_masks(prediction, ground_truth):
    prediction = np.asarray(prediction)
    ground_truth = np.asarray(ground_truth)
    if prediction.shape != ground_truth.shape or prediction.ndim < 2:
        raise ValueError(
            f"prediction and ground_truth must be masks of one shape [..., H, W]; got "
            f"{prediction.shape} and {ground_truth.shape}. Resize the prediction to the "
            "annotation's size first.")
    return prediction.astype(bool), ground_truth.astype(bool)


def region_similarity(prediction, ground_truth):
    """J: IoU of two binary masks, 1 for two empty masks.

    Args:
      prediction: bool / 0-1 array [..., H, W].
      ground_truth: same shape.

    Returns:
      float64 [...] in [0, 1].
    """
    prediction, ground_truth = _check_masks(prediction, ground_truth)
    inter = np.sum(prediction & ground_truth, axis=(-2, -1))
    union = np.sum(prediction | ground_truth, axis=(-2, -1))
    return np.where(union == 0, 1.0, inter / np.maximum(union, 1))


def boundary_map(mask):
    """The `seg2bmap` boundary of a binary mask [H, W]: pixels differing from E, S or SE.

    On the last row only the east neighbour counts, on the last column only the south one,
    and the bottom-right pixel is never a boundary.
    """
    mask = np.asarray(mask, bool)
    east = np.zeros_like(mask)
    south = np.zeros_like(mask)
    south_east = np.zeros_like(mask)
    east[:, :-1] = mask[:, 1:]
    south[:-1, :] = mask[1:, :]
    south_east[:-1, :-1] = mask[1:, 1:]
    boundary = (mask ^ east) | (mask ^ south) | (mask ^ south_east)
    boundary[-1, :] = mask[-1, :] ^ east[-1, :]
    boundary[:, -1] = mask[:, -1] ^ south[:, -1]
    boundary[-1, -1] = False
    return boundary


def dilate_disk(mask, radius):
    """Binary dilation of a mask [H, W] by the disk {(dy, dx): dy^2 + dx^2 <= radius^2}.

    The disk is a stack of rows of half-width floor(sqrt(r^2 - dy^2)): the mask is dilated
    along x once per half-width (each from the previous), then the rows are OR-ed at their
    vertical offsets; about 4 r array ORs instead of one per disk pixel.
    """
    mask = np.asarray(mask, bool)
    r = int(radius)
    height = mask.shape[0]
    rows = [mask]
    for k in range(1, r + 1):
        grown = rows[-1].copy()
        grown[:, k:] |= mask[:, :-k]
        grown[:, :-k] |= mask[:, k:]
        rows.append(grown)
    out = np.zeros_like(mask)
    for dy in range(-min(r, height - 1), min(r, height - 1) + 1):
        shifted = rows[math.isqrt(r * r - dy * dy)]
        if dy >= 0:
            out[:height - dy] |= shifted[dy:]
        else:
            out[-dy:] |= shifted[:height + dy]
    return out


def boundary_radius(shape, bound_th=BOUNDARY_THRESHOLD):
    """Tolerance in pixels: `bound_th` itself if >= 1, else ceil(bound_th * diagonal)."""
    if bound_th >= 1:
        return int(bound_th)
    return int(math.ceil(bound_th * math.hypot(shape[0], shape[1])))


def boundary_f_measure(prediction, ground_truth, bound_th=BOUNDARY_THRESHOLD):
    """F: boundary F-measure of one frame.

    Args:
      prediction: bool / 0-1 array [H, W].
      ground_truth: same shape.
      bound_th: tolerance as a fraction of the image diagonal (< 1) or in pixels (>= 1).

    Returns:
      float in [0, 1].
    """
    prediction, ground_truth = _check_masks(prediction, ground_truth)
    if prediction.ndim != 2:
        raise ValueError(f"boundary_f_measure takes one frame [H, W]; got {prediction.shape}.")
    radius = boundary_radius(prediction.shape, bound_th)
    pred_boundary = boundary_map(prediction)
    gt_boundary = boundary_map(ground_truth)
    num_pred, num_gt = pred_boundary.sum(), gt_boundary.sum()
    if num_pred == 0 or num_gt == 0:
        precision = 1.0 if num_pred == 0 else 0.0
        recall = 1.0 if num_gt == 0 else 0.0
    else:
        precision = np.sum(pred_boundary & dilate_disk(gt_boundary, radius)) / num_pred
        recall = np.sum(gt_boundary & dilate_disk(pred_boundary, radius)) / num_gt
    if precision + recall == 0:
        return 0.0
    return float(2 * precision * recall / (precision + recall))


class DavisJF:
    """Streaming DAVIS J and F: per-frame scores, mean per sequence, mean over sequences.

    Usage:
      metric = DavisJF()
      metric.add("bear", predicted_masks, annotation_masks)  # [T, H, W] each; may be repeated
      metric.result()  # {"J": float, "F": float, "J&F": float, "per_sequence": {...}}
    """

    def __init__(self, bound_th=BOUNDARY_THRESHOLD):
        self.bound_th = bound_th
        self.reset()

    def reset(self):
        """Forgets all frames added so far."""
        self._j = {}
        self._f = {}

    def add(self, sequence_id, predictions, ground_truth):
        """Adds frames of one sequence.

        Args:
          sequence_id: hashable name of the sequence (frames of a sequence may come in pieces).
          predictions: bool / 0-1 array [T, H, W] (e.g. the clip format's `mask` layout).
          ground_truth: same shape.
        """
        predictions, ground_truth = _check_masks(predictions, ground_truth)
        if predictions.ndim != 3:
            raise ValueError(f"add takes a sequence of masks [T, H, W]; got {predictions.shape}.")
        self._j.setdefault(sequence_id, []).extend(region_similarity(predictions, ground_truth))
        self._f.setdefault(sequence_id, []).extend(
            boundary_f_measure(p, g, self.bound_th) for p, g in zip(predictions, ground_truth))

    def result(self):
        """Means over sequences of the per-sequence frame means; NaN when nothing was added."""
        per_sequence = {s: {"J": float(np.mean(self._j[s])), "F": float(np.mean(self._f[s]))}
                        for s in self._j if self._j[s]}
        j = np.mean([v["J"] for v in per_sequence.values()]) if per_sequence else np.nan
        f = np.mean([v["F"] for v in per_sequence.values()]) if per_sequence else np.nan
        return {"J": float(j), "F": float(f), "J&F": float((j + f) / 2),
                "per_sequence": per_sequence}
