"""What a prediction is and how it is scored, per task (Sec. 4.1, 4.2), including the flip.

A task turns a model's raw outputs (those of `keras_model(frames)`, which a Patchwork twin's
step reproduces for the full frame) into one frame's prediction, and accumulates predictions
of whole clips into the paper's metric:

* `DetectionTask`: SSD outputs `{"box_encodings" [B, A, 4], "class_logits" [B, A, C + 1]}` ->
  decoded, per-class NMS (`patchwork_tf.ops.postprocess`) -> VID mAP@0.5 (`VidMap`).
* `SegmentationTask`: `{"mask_logits" [B, h, w, 1]}` -> bilinear resize to the annotation's
  size, foreground where the logit > 0 -> DAVIS J and F (`DavisJF`), one sequence per video.

Frames are scored one at a time (`add_frame`) against the ground truth of `data.videos`, in
the frame's original pixels.

**Flip** (Sec. 4 "flip: also process the left-right flipped frame and average predictions"):
the model runs on the frame (batch row 0) and on its mirror image (row 1).
* Segmentation: the mirrored logits are flipped back and the two logit maps averaged.
* Detection: boxes cannot be averaged one to one, so "average" is read as an ensemble
  merge: the mirrored stream's boxes are flipped back (`x -> 1 - x`), both streams' scored
  boxes are pooled (2A candidates) and one per-class NMS keeps the best of overlapping
  boxes. Flipping back is done in code space: a code `(ty, tx, th, tw)` on the mirrored
  anchor decodes to the mirror of the box of `(ty, -tx, th, tw)` on the anchor.
"""
import numpy as np
import tensorflow as tf

from patchwork_tf.data import clips as clips_lib
from patchwork_tf.data import videos
from patchwork_tf.metrics import davis
from patchwork_tf.metrics import vid_map
from patchwork_tf.ops import postprocess

TASKS = ("detection", "segmentation")


def flip_boxes_left_right(boxes):
    """Mirrors normalized `(ymin, xmin, ymax, xmax)` boxes `[..., 4]` about `x = 1/2`."""
    ymin, xmin, ymax, xmax = tf.unstack(boxes, axis=-1)
    return tf.stack([ymin, 1.0 - xmax, ymax, 1.0 - xmin], axis=-1)


def _check_flip_batch(tensor, name):
    if tensor.shape[0] != 2:
        raise ValueError(f"With flip, {name} must hold the frame and its mirror image (batch 2), "
                         f"got shape {tensor.shape}.")


class DetectionTask:
    """SSD detection scored by VID mAP@0.5."""

    name = "detection"
    metric_names = ("mAP",)

    def __init__(self, anchors, num_classes, **postprocess_kwargs):
        """
        Args:
          anchors: float32 [A, 4], the model's anchors (`models.anchors.anchors_for_model`);
            None for a task that only scores detections decoded elsewhere (an exported
            SavedModel's, `evaluation.exported`) and so has no `predictions`.
          num_classes: C object classes (the class logits have C + 1 columns, 0 background).
          **postprocess_kwargs: NMS settings of `patchwork_tf.ops.postprocess.postprocess`.
        """
        self.anchors = None if anchors is None else tf.convert_to_tensor(anchors, tf.float32)
        self.num_classes = int(num_classes)
        self._postprocess_kwargs = postprocess_kwargs

    def predictions(self, outputs, flip=False):
        """One frame's detections.

        Args:
          outputs: the model's outputs for batch 1, or for batch 2 (frame, mirror) with `flip`.
          flip: merge the mirror image's detections as the module docstring says.

        Returns:
          dict of boxes [1, D, 4], scores [1, D], classes [1, D], num_detections [1].
        """
        if self.anchors is None:
            raise ValueError("This DetectionTask was built without anchors to score detections "
                             "decoded elsewhere; build it with the model's anchors to decode raw "
                             "outputs.")
        codes, logits = outputs["box_encodings"], outputs["class_logits"]
        anchors = self.anchors
        if flip:
            _check_flip_batch(codes, "box_encodings")
            mirrored = codes[1:] * tf.constant([1.0, -1.0, 1.0, 1.0])
            codes = tf.concat([codes[:1], mirrored], axis=1)
            logits = tf.concat([logits[:1], logits[1:]], axis=1)
            anchors = tf.concat([anchors, flip_boxes_left_right(anchors)], axis=0)
        return postprocess.postprocess(codes, logits, anchors, **self._postprocess_kwargs)

    def new_metric(self):
        return vid_map.VidMap(self.num_classes)

    def add_frame(self, metric, video_id, index, truth, prediction):
        """Scores one frame's detections in the frame's original pixels.

        Args:
          metric: from `new_metric`.
          video_id, index: the frame's video and position (unused: VID mAP pools frames).
          truth: a frame dict of `data.videos` (`frame`, `boxes`, `classes`).
          prediction: an output of `predictions` (batch 1).
        """
        del video_id, index
        n = int(prediction["num_detections"][0])
        metric.add_frame(truth[videos.FRAME].shape[:2], truth[clips_lib.BOXES],
                         truth[clips_lib.CLASSES], np.asarray(prediction["boxes"][0, :n]),
                         np.asarray(prediction["scores"][0, :n]),
                         np.asarray(prediction["classes"][0, :n]))

    def result(self, metric):
        return {"mAP": metric.result()["mAP"]}


class SegmentationTask:
    """Binary foreground segmentation scored by DAVIS J and F (unsupervised DAVIS 2016)."""

    name = "segmentation"
    metric_names = ("J", "F", "J&F")

    def __init__(self, frame_selection=davis.EXCLUDE_FIRST_LAST):
        """
        Args:
          frame_selection: the frames of each sequence that are scored
            (`davis.FRAME_SELECTIONS`); the DAVIS 2016 benchmark leaves out the first and last.
        """
        self.frame_selection = frame_selection

    def predictions(self, outputs, flip=False):
        """One frame's foreground at the model's output size: `mask` bool [1, H, W] and its
        `mask_logits` float32 [1, H, W] (`add_frame` brings them to the annotation's size)."""
        logits = outputs["mask_logits"]
        if flip:
            _check_flip_batch(logits, "mask_logits")
            logits = (logits[:1] + tf.reverse(logits[1:], axis=[2])) / 2.0
        return {"mask": logits[..., 0] > 0.0, "mask_logits": logits[..., 0]}

    @staticmethod
    def mask_at(prediction, size):
        """The predicted mask bool [H, W] at the annotation's `size`: the logits resized
        bilinearly and thresholded at 0 when the prediction has them, else the mask resized
        by nearest neighbour."""
        mask = np.asarray(prediction["mask"])[0]
        if mask.shape == tuple(size):
            return mask.astype(bool)
        if "mask_logits" in prediction:
            logits = tf.image.resize(np.asarray(prediction["mask_logits"])[0][..., None], size,
                                     method="bilinear")
            return logits.numpy()[..., 0] > 0.0
        return tf.image.resize(mask[..., None].astype(np.uint8), size,
                               method="nearest").numpy()[..., 0].astype(bool)

    def new_metric(self):
        return davis.DavisJF(frame_selection=self.frame_selection)

    def add_frame(self, metric, video_id, index, truth, prediction):
        """Scores frame `index` of sequence `video_id` at the annotation's resolution.

        Args:
          metric: from `new_metric`.
          video_id, index: the frame's sequence and position in it.
          truth: a frame dict of `data.videos` with `mask` uint8 [H, W].
          prediction: an output of `predictions` or a runner's `mask` (batch 1).
        """
        annotation = np.asarray(truth[clips_lib.MASK])
        metric.add_frame(video_id, index, self.mask_at(prediction, annotation.shape),
                         annotation)

    def result(self, metric):
        result = metric.result()
        return {k: result[k] for k in self.metric_names}
