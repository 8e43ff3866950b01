"""Detection: SSDLite on MobileNetV2, scored by ImageNet VID mAP@0.5 (Sec. 4.1).

Raw outputs `{"box_encodings" [B, A, 4], "class_logits" [B, A, C + 1]}` (column 0 background)
are decoded on the model's anchors and reduced by per-class NMS (`ops.postprocess`, the last
global op of the head, so a prediction always covers the whole frame) into the predictions,
named as the TF Object Detection API's exported detectors name them:

| key                 | dtype   | shape     | meaning                                           |
|---------------------|---------|-----------|---------------------------------------------------|
| `detection_boxes`   | float32 | [B, D, 4] | `(ymin, xmin, ymax, xmax)` normalized to the frame |
| `detection_scores`  | float32 | [B, D]    | sigmoid scores, descending, 0 past the detections |
| `detection_classes` | float32 | [B, D]    | 1-based class ids (the data's class 0 is 1)       |
| `num_detections`    | float32 | [B]       | valid rows of the above                           |

Normalized boxes hold for the frame as given whatever its size (the model's input stretches
it), so `image_size` changes nothing.

**Flip** (Sec. 4: "also process the left-right flipped frame and average predictions"): boxes
cannot be averaged one to one, so "average" is read as an ensemble merge: the mirrored
stream's boxes are flipped back (`x -> 1 - x`), both streams' scored boxes are pooled (2A
candidates) and one per-class NMS keeps the best of overlapping boxes. Flipping back is done
in code space: a code `(ty, tx, th, tw)` on the mirrored anchor decodes to the mirror of the
box of `(ty, -tx, th, tw)` on the anchor.
"""
import dataclasses
import math

import numpy as np
import tensorflow as tf

from patchwork_tf.data import clips as clips_lib
from patchwork_tf.data import videos
from patchwork_tf.losses import detection as detection_losses
from patchwork_tf.metrics import rewards
from patchwork_tf.metrics import vid_map
from patchwork_tf.models import anchors as anchors_lib
from patchwork_tf.models import backbone_weights as backbone_weights_lib
from patchwork_tf.models import ssdlite
from patchwork_tf.ops import box_ops
from patchwork_tf.ops import postprocess
from patchwork_tf.ops import target_assigner
from patchwork_tf.tasks import base

BOXES = "detection_boxes"
SCORES = "detection_scores"
CLASSES = "detection_classes"
NUM_DETECTIONS = "num_detections"
# The OD API's class ids are the data's 0-based ids plus this (background is no class).
LABEL_ID_OFFSET = 1
# Focal-loss prior (Lin et al. 2017, Sec. 4.1): the sigmoid focal loss also scores the
# background column, so it starts at probability 0.99 and every class at 0.01; the many
# background anchors then do not swamp the first steps. The "ssd" loss starts every class logit
# at 0, as the OD API's SSDLite (`class_prediction_bias_init` unset, default 0.0): its miner
# scores at most 3 negatives per positive (at least 3 per frame), so the background anchors
# cannot swamp the loss.
_FOCAL_PRIOR = 0.01


def extra_layers(config):
    """SSDLite's extra layers in the model of a `Stage1Config`: `config.num_extra_layers`, or
    as many as its frame allows, up to 4."""
    if config.num_extra_layers is not None:
        return config.num_extra_layers
    return min(4, ssdlite.max_extra_layers(tuple(config.frame_size) + (3,)))


def anchor_kwargs(config):
    """The `anchors.anchors_for_model` arguments of a model built from a `Stage1Config`."""
    return dict(min_scale=config.anchor_min_scale, max_scale=config.anchor_max_scale,
                reduce_boxes_in_lowest_layer=config.reduce_boxes_in_lowest_layer)


def _check_flip_batch(tensor, name):
    if tensor.shape[0] != 2:
        raise ValueError(f"With flip, {name} must hold the frame and its mirror image (batch 2), "
                         f"got shape {tensor.shape}.")


class DetectionTask(base.Task):
    """SSD detection; see the module docstring for the predictions."""

    name = "detection"
    metric_names = ("mAP",)
    prediction_keys = (BOXES, SCORES, CLASSES, NUM_DETECTIONS)
    observed_cell = ssdlite.OBSERVED_CELL
    uses_mask = False
    settings = ("max_detections", "score_threshold", "iou_threshold")

    def __init__(self, anchors, num_classes, loss=detection_losses.FOCAL, max_detections=100,
                 score_threshold=1e-8, iou_threshold=0.6):
        """
        Args:
          anchors: float32 [A, 4], the model's anchors (`anchors.anchors_for_model`); None for
            a task that only scores detections decoded elsewhere (an exported SavedModel's,
            `evaluation.exported`), which then has no `predictions`, `loss` or reward.
          num_classes: C object classes (the class logits have C + 1 columns, 0 background).
          loss: "ssd" (the paper's detector's hard-mined loss) or "focal"
            (`losses.detection.LOSSES`; `Stage1Config.detection_loss`).
          max_detections: D, detections kept per frame (and per class) by NMS.
          score_threshold: scores at or below it are dropped before NMS.
          iou_threshold: NMS overlap above which the lower-scored box of a class goes.
        """
        if loss not in detection_losses.LOSSES:
            raise ValueError(f"loss must be one of {detection_losses.LOSSES}, got {loss!r}.")
        self.anchors = None if anchors is None else tf.convert_to_tensor(anchors, tf.float32)
        self.num_classes = int(num_classes)
        self.detection_loss = loss
        self.max_detections = int(max_detections)
        self.score_threshold = float(score_threshold)
        self.iou_threshold = float(iou_threshold)

    @classmethod
    def build_model(cls, config, num_classes=None, pretrained=None):
        """SSDLite on MobileNetV2 (`models.ssdlite`) with a background column; the class
        logits' initial bias follows `config.detection_loss` (see `_FOCAL_PRIOR`)."""
        num_classes = config.num_classes if num_classes is None else num_classes
        prior_logit = math.log((1.0 - _FOCAL_PRIOR) / _FOCAL_PRIOR)
        class_bias_init = ([prior_logit] + [-prior_logit] * num_classes
                           if config.detection_loss == detection_losses.FOCAL else 0.0)
        model = ssdlite.ssdlite_mobilenet_v2(
            tuple(config.frame_size) + (3,), num_classes=num_classes, alpha=config.alpha,
            num_extra_layers=extra_layers(config), add_background_class=True,
            reduce_boxes_in_lowest_layer=config.reduce_boxes_in_lowest_layer,
            class_bias_init=class_bias_init, batch_norm_momentum=config.batch_norm_momentum)
        if pretrained is not None:
            backbone_weights_lib.copy_weights(pretrained, model)
        return model

    @classmethod
    def fixed_layers(cls, config):
        """`config` with its SSDLite extra layers fixed to the ones its frame size gives."""
        return dataclasses.replace(config, num_extra_layers=extra_layers(config))

    @classmethod
    def for_model(cls, model, config, **kwargs):
        """The task of an SSDLite `model` built from `config`: its anchors, classes and loss;
        `kwargs` are NMS settings."""
        anchors = anchors_lib.anchors_for_model(model, **anchor_kwargs(config))
        num_classes = int(model.output["class_logits"].shape[-1]) - 1
        return cls(anchors, num_classes, config.detection_loss, **kwargs)

    @classmethod
    def from_metadata(cls, record):
        """The task scoring an exported detector's detections (no anchors: they come decoded)."""
        return cls(None, record["num_classes"])

    def _require_anchors(self):
        if self.anchors is None:
            raise ValueError("This DetectionTask was built without anchors to score detections "
                             "decoded elsewhere; build it with the model's anchors "
                             "(DetectionTask.for_model) to decode raw outputs.")

    def predictions(self, outputs, image_size=None, flip=False):
        """The detections of `outputs` (module docstring); `image_size` is not needed."""
        del image_size
        self._require_anchors()
        missing = {"box_encodings", "class_logits"} - set(outputs)
        if missing:
            raise ValueError(
                f"Detection outputs need 'box_encodings' and 'class_logits'; missing "
                f"{sorted(missing)} in {sorted(outputs)}. Use an SSDLite model.")
        codes, logits = outputs["box_encodings"], outputs["class_logits"]
        anchors = self.anchors
        if flip:
            _check_flip_batch(codes, "box_encodings")
            mirrored = codes[1:] * tf.constant([1.0, -1.0, 1.0, 1.0])
            codes = tf.concat([codes[:1], mirrored], axis=1)
            logits = tf.concat([logits[:1], logits[1:]], axis=1)
            anchors = tf.concat([anchors, box_ops.flip_left_right(anchors)], axis=0)
        detections = postprocess.postprocess(
            codes, logits, anchors, max_detections=self.max_detections,
            max_detections_per_class=self.max_detections, iou_threshold=self.iou_threshold,
            score_threshold=self.score_threshold)
        return {
            BOXES: detections["boxes"],
            SCORES: detections["scores"],
            CLASSES: tf.cast(detections["classes"], tf.float32) + LABEL_ID_OFFSET,
            NUM_DETECTIONS: tf.cast(detections["num_detections"], tf.float32),
        }

    def loss(self, outputs, labels):
        """The SSD or focal loss (`self.detection_loss`) of SSDLite outputs.

        Args:
          outputs: `{"class_logits": [B, A, C + 1], "box_encodings": [B, A, 4]}`.
          labels: `boxes` float32 [B, K, 4], `classes` int32 [B, K], `valid` bool [B, K].

        Returns:
          dict of float32 scalars `total`, `classification`, `localization`,
          `num_positives`, and for "ssd" `num_negatives` (mined).
        """
        self._require_anchors()
        targets = target_assigner.assign_targets(self.anchors, labels["boxes"],
                                                 labels["classes"], labels["valid"])
        if self.detection_loss == detection_losses.SSD:
            return detection_losses.ssd_detection_loss(
                outputs["class_logits"], outputs["box_encodings"], targets, self.anchors)
        return detection_losses.detection_loss(outputs["class_logits"],
                                               outputs["box_encodings"], targets)

    def reward_metric(self, ground_truth, outputs):
        """Eq. 3 (`metrics.rewards.detection_overlap`) of the detections of `outputs`
        against `ground_truth` (`boxes` [B, K, 4], `valid` [B, K])."""
        predictions = self.predictions(outputs)
        return rewards.detection_overlap(
            ground_truth["boxes"], ground_truth["valid"],
            {"boxes": predictions[BOXES], "scores": predictions[SCORES],
             "num_detections": tf.cast(predictions[NUM_DETECTIONS], tf.int32)})

    def new_metric(self):
        return vid_map.VidMap(self.num_classes)

    def add_frame(self, metric, video_id, index, truth, prediction):
        """Scores one frame's detections in the frame's pixels (VID mAP pools the frames of
        every video, so `video_id` and `index` are unused)."""
        del video_id, index
        n = int(np.asarray(prediction[NUM_DETECTIONS])[0])
        classes = np.asarray(prediction[CLASSES])[0, :n].astype(np.int32) - LABEL_ID_OFFSET
        metric.add_frame(truth[videos.FRAME].shape[:2], truth[clips_lib.BOXES],
                         truth[clips_lib.CLASSES], np.asarray(prediction[BOXES])[0, :n],
                         np.asarray(prediction[SCORES])[0, :n], classes)

    def result(self, metric):
        return {"mAP": metric.result()["mAP"]}

    def export_metadata(self):
        return {"num_classes": self.num_classes, "max_detections": self.max_detections,
                "score_threshold": self.score_threshold, "iou_threshold": self.iou_threshold}
