"""Task glue: what detection and segmentation each mean for losses, predictions and rewards.

A `Task` turns the raw outputs of a stage-1 model (or of its Patchwork twin, which has the
same outputs for the full frame) into the task's predictions, its training loss and the
per-frame metric `f` of the Q-learning reward (Eq. 2): Eq. 3 for detection, frame J for
segmentation (Sec. 3.3).
"""
import dataclasses

import tensorflow as tf

from patchwork_tf.losses import detection as detection_losses
from patchwork_tf.metrics import rewards
from patchwork_tf.ops import postprocess as postprocess_lib
from patchwork_tf.training import stage1


@dataclasses.dataclass
class Task:
    """The task of a stage-1 model.

    Attributes:
      name: 'detection' or 'segmentation'.
      anchors: float32 `[A, 4]` for detection, None for segmentation.
      detection_loss: the detection loss, "ssd" or "focal" (`Stage1Config.detection_loss`):
        stage 3 fine-tunes with the loss stage 1 trained with.
    """

    name: str
    anchors: tf.Tensor = None
    detection_loss: str = detection_losses.FOCAL

    @classmethod
    def for_model(cls, model, config):
        """The task of `model`, built by `stage1.build_model(config)`."""
        if config.task == "detection":
            return cls(config.task, stage1.detection_anchors(model, config),
                       config.detection_loss)
        return cls(config.task)

    def predictions(self, outputs):
        """Detection: post-processed detections (boxes, scores, classes, num_detections);
        segmentation: `mask` bool `[B, H, W]` (logit > 0) and `probabilities`."""
        if self.name == "detection":
            return postprocess_lib.postprocess(
                outputs["box_encodings"], outputs["class_logits"], self.anchors)
        logits = outputs["mask_logits"][..., 0]
        return {"mask": logits > 0.0, "probabilities": tf.sigmoid(logits)}

    def loss(self, outputs, labels):
        """The stage-1 training loss; `labels` hold one frame's ground truth per stream."""
        if self.name == "detection":
            return stage1.detection_loss(outputs, labels, self.anchors,
                                         self.detection_loss)["total"]
        return stage1.segmentation_loss(outputs, labels)["total"]

    def metric(self, ground_truth, outputs):
        """`f(gt_t, p_t)`, float32 `[B]`: Eq. 3 for detection, frame J for segmentation."""
        predictions = self.predictions(outputs)
        if self.name == "detection":
            return rewards.detection_overlap(
                ground_truth["boxes"], ground_truth["valid"], predictions)
        return rewards.segmentation_overlap(ground_truth["mask"], predictions["mask"])
