"""DAVIS 2016 region similarity J and boundary accuracy F (Sec. 4.2), streamable, resumable.

Checked against the official code (DAVIS 2016 MATLAB toolkit, davisvideochallenge/davis-matlab
`measures/{jaccard_region,f_boundary,seg2bmap,eval_sequence,eval_result}.m`; the Python
toolkits fperazzi/davis-2017 `python/lib/davis/dataset/evaluation.py` and
davisvideochallenge/davis2017-evaluation `davis2017/{metrics,evaluation}.py`):
  * J is the IoU of the predicted and ground-truth foreground, 1 when both are empty;
  * F is the F-measure of boundary pixels: boundaries by the `seg2bmap` rule (a pixel is on
    the boundary when it differs from its east, south or south-east neighbour; on the last row
    only east counts, on the last column only south, never the bottom-right pixel); a boundary
    pixel is matched when a boundary pixel of the other mask lies within Euclidean distance
    `ceil(0.008 * image diagonal)` pixels (dilation by the disk x^2 + y^2 <= r^2); an empty
    predicted boundary has P = 1, an empty true boundary R = 1, F = 0 when P + R = 0;
  * scores are averaged over the scored frames of a sequence, then over sequences.

Which frames are scored: the DAVIS 2016 benchmark scores every sequence without its first and
last frame, for every kind of method, the unsupervised ones included (`eval_sequence.m`:
"Sweep all frames except first and last"; the Python toolkit evaluates
`annotations[1:-1]`). That is `EXCLUDE_FIRST_LAST`, the default here. The later
davis2017-evaluation package keeps that rule only for its semi-supervised task and scores all
frames of its (multi-object) unsupervised task, with void pixels (value 255) left out of J and
F; `ALL_FRAMES` and the `void` argument reproduce that.

Masks are scored at the annotation's resolution; numpy only (the disk dilation is done here).
"""
import math

import numpy as np

BOUNDARY_THRESHOLD = 0.008
# Frame selections: the DAVIS 2016 benchmark's (without each sequence's first and last frame)
# and every frame (davis2017-evaluation's unsupervised task).
EXCLUDE_FIRST_LAST = "exclude_first_last"
ALL_FRAMES = "all"
FRAME_SELECTIONS = (EXCLUDE_FIRST_LAST, ALL_FRAMES)
_STATE_VERSION = 1


def _check_masks(prediction, ground_truth, void=None):
    prediction = np.asarray(prediction)
    ground_truth = np.asarray(ground_truth)
    if prediction.shape != ground_truth.shape or prediction.ndim < 2:
        raise ValueError(
            f"prediction and ground_truth must be masks of one shape [..., H, W]; got "
            f"{prediction.shape} and {ground_truth.shape}. Resize the prediction to the "
            "annotation's size first.")
    if void is None:
        return prediction.astype(bool), ground_truth.astype(bool), None
    void = np.asarray(void)
    if void.shape != ground_truth.shape:
        raise ValueError(f"void must have the annotation's shape {ground_truth.shape}; got "
                         f"{void.shape}.")
    return prediction.astype(bool), ground_truth.astype(bool), void.astype(bool)


def region_similarity(prediction, ground_truth, void=None):
    """J: IoU of two binary masks, 1 for two empty masks.

    Args:
      prediction: bool / 0-1 array [..., H, W].
      ground_truth: same shape.
      void: optional bool [..., H, W]: pixels left out of both masks (davis2017-evaluation).

    Returns:
      float64 [...] in [0, 1].
    """
    prediction, ground_truth, void = _check_masks(prediction, ground_truth, void)
    if void is not None:
        prediction, ground_truth = prediction & ~void, ground_truth & ~void
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


def boundary_f_measure(prediction, ground_truth, bound_th=BOUNDARY_THRESHOLD, void=None):
    """F: boundary F-measure of one frame.

    Args:
      prediction: bool / 0-1 array [H, W].
      ground_truth: same shape.
      bound_th: tolerance as a fraction of the image diagonal (< 1) or in pixels (>= 1).
      void: optional bool [H, W]: pixels cleared from both masks before their boundaries are
        taken (davis2017-evaluation's `f_measure`).

    Returns:
      float in [0, 1].
    """
    prediction, ground_truth, void = _check_masks(prediction, ground_truth, void)
    if prediction.ndim != 2:
        raise ValueError(f"boundary_f_measure takes one frame [H, W]; got {prediction.shape}.")
    if void is not None:
        prediction, ground_truth = prediction & ~void, ground_truth & ~void
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
    """Streaming, resumable DAVIS J and F: per-frame scores, mean over the scored frames of a
    sequence, mean over sequences.

    Frames arrive one at a time (`add_frame`) or as stacks (`add`), in any order; the frame
    selection is applied in `result`, so the frames added for a sequence are taken to be the
    whole sequence: with `EXCLUDE_FIRST_LAST` its frame 0 and its largest frame index added are
    not scored, and a sequence with no other frame is left out. `state` / `merge_state` save
    and restore the per-frame scores, so metrics over disjoint parts of a data set (say one per
    sequence, written to disk) merge into the `result` of one uninterrupted metric.

    Usage:
      metric = DavisJF()                       # the DAVIS 2016 benchmark's frame selection
      metric.add_frame("bear", 0, predicted_mask, annotation_mask)   # [H, W] each
      metric.result()  # {"J": float, "F": float, "J&F": float, "per_sequence": {...}}

    Args:
      bound_th: F's tolerance (see `boundary_f_measure`).
      frame_selection: `EXCLUDE_FIRST_LAST` (default; the DAVIS 2016 benchmark, see the module
        docstring) or `ALL_FRAMES`.
    """

    def __init__(self, bound_th=BOUNDARY_THRESHOLD, frame_selection=EXCLUDE_FIRST_LAST):
        if frame_selection not in FRAME_SELECTIONS:
            raise ValueError(f"frame_selection must be one of {FRAME_SELECTIONS}, got "
                             f"{frame_selection!r}.")
        self.bound_th = bound_th
        self.frame_selection = frame_selection
        self.reset()

    def reset(self):
        """Forgets all frames added so far."""
        self._scores = {}   # sequence id (str) -> {frame index: (J, F)}

    def add_frame(self, sequence_id, frame_index, prediction, ground_truth, void=None):
        """Scores one frame.

        Args:
          sequence_id: name of the sequence (kept as str).
          frame_index: 0-based index of the frame in its sequence.
          prediction: bool / 0-1 array [H, W] at the annotation's resolution.
          ground_truth: same shape.
          void: optional bool [H, W] of pixels not scored (see `region_similarity`).

        Raises:
          ValueError: on a shape mismatch, or a frame already added.
        """
        sequence_id, frame_index = str(sequence_id), int(frame_index)
        if frame_index < 0:
            raise ValueError(f"frame_index must be >= 0, got {frame_index}.")
        if frame_index in self._scores.get(sequence_id, {}):
            raise ValueError(f"frame {frame_index} of sequence {sequence_id!r} was already "
                             "added.")
        if np.ndim(prediction) != 2:
            raise ValueError(f"add_frame takes one mask [H, W]; got {np.shape(prediction)}.")
        j = float(region_similarity(prediction, ground_truth, void))
        f = boundary_f_measure(prediction, ground_truth, self.bound_th, void)
        self._scores.setdefault(sequence_id, {})[frame_index] = (j, f)

    def add(self, sequence_id, predictions, ground_truth, first_index=None):
        """Scores consecutive frames of one sequence.

        Args:
          sequence_id: name of the sequence.
          predictions: bool / 0-1 array [T, H, W] (e.g. the clip format's `mask` layout).
          ground_truth: same shape.
          first_index: frame index of `predictions[0]`; by default the frame after the last one
            added for the sequence (0 for a new one), so pieces may come one after another.
        """
        predictions, ground_truth, _ = _check_masks(predictions, ground_truth)
        if predictions.ndim != 3:
            raise ValueError(f"add takes a sequence of masks [T, H, W]; got {predictions.shape}.")
        if first_index is None:
            added = self._scores.get(str(sequence_id))
            first_index = max(added) + 1 if added else 0
        for t, (prediction, truth) in enumerate(zip(predictions, ground_truth)):
            self.add_frame(sequence_id, first_index + t, prediction, truth)

    def _scored(self, frames):
        indices = sorted(frames)
        if self.frame_selection == EXCLUDE_FIRST_LAST:
            indices = [i for i in indices[:-1] if i != 0]
        return [frames[i] for i in indices]

    def result(self):
        """Means over sequences of the per-sequence means of the scored frames; NaN when no
        frame is scored."""
        per_sequence = {}
        for sequence_id, frames in self._scores.items():
            scored = self._scored(frames)
            if scored:
                j, f = np.mean(scored, axis=0)
                per_sequence[sequence_id] = {"J": float(j), "F": float(f)}
        j = np.mean([v["J"] for v in per_sequence.values()]) if per_sequence else np.nan
        f = np.mean([v["F"] for v in per_sequence.values()]) if per_sequence else np.nan
        return {"J": float(j), "F": float(f), "J&F": float((j + f) / 2),
                "per_sequence": per_sequence}

    def state(self):
        """The per-frame scores and settings, as a JSON-serializable dict (`merge_state`)."""
        return {
            "version": _STATE_VERSION,
            "bound_th": self.bound_th,
            "frame_selection": self.frame_selection,
            "sequences": {
                sequence_id: {"frames": sorted(frames),
                              "J": [frames[i][0] for i in sorted(frames)],
                              "F": [frames[i][1] for i in sorted(frames)]}
                for sequence_id, frames in self._scores.items()},
        }

    def merge_state(self, state):
        """Adds the frames of a `state()` (e.g. read back from JSON) to this metric.

        Raises:
          ValueError: when the state was made with other settings, is malformed, or holds a
            frame this metric already has; the metric is then unchanged.
        """
        keys = ("version", "bound_th", "frame_selection", "sequences")
        if (not isinstance(state, dict) or any(key not in state for key in keys)
                or state["version"] != _STATE_VERSION):
            raise ValueError(f"not a DavisJF state of version {_STATE_VERSION} (a dict with "
                             f"keys {keys}): got {type(state).__name__} "
                             f"{sorted(state) if isinstance(state, dict) else ''}.")
        settings = (state["bound_th"], state["frame_selection"])
        if settings != (self.bound_th, self.frame_selection):
            raise ValueError(
                f"the state was computed with bound_th, frame_selection = {settings}, this "
                f"metric uses {(self.bound_th, self.frame_selection)}; merge like metrics.")
        for sequence_id, saved in state["sequences"].items():
            if not len(saved["frames"]) == len(saved["J"]) == len(saved["F"]):
                raise ValueError(f"state of sequence {sequence_id!r} has lists of different "
                                 "lengths.")
            overlap = sorted(set(self._scores.get(str(sequence_id), {})) & set(saved["frames"]))
            if overlap:
                raise ValueError(f"frames {overlap} of sequence {sequence_id!r} are in both "
                                 "metrics; each frame must be scored once.")
        for sequence_id, saved in state["sequences"].items():
            frames = self._scores.setdefault(str(sequence_id), {})
            for index, j, f in zip(saved["frames"], saved["J"], saved["F"]):
                frames[int(index)] = (float(j), float(f))
