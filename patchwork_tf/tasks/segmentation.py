"""Segmentation: DeepLabv3 on MobileNetV2, scored by DAVIS 2016 J and F (Sec. 4.2).

Binary foreground segmentation, DAVIS 2016's unsupervised setting (one primary object). Raw
outputs `{"mask_logits" [B, h, w, 1]}` become the predictions

| key                        | dtype   | shape     | meaning                                   |
|----------------------------|---------|-----------|-------------------------------------------|
| `segmentation_probability` | float32 | [B, H, W] | foreground probability (sigmoid of logit) |
| `segmentation_mask`        | uint8   | [B, H, W] | 1 where the logit is positive             |

at the frame's `(H, W)` when `image_size` is given (the logits resized bilinearly before the
sigmoid and the threshold: what serving answers), else at the model's `(h, w)`. Evaluation
scores at each annotation's size: a prediction of another size is brought there by resizing
its probability bilinearly and thresholding at 0.5 (`mask_at`).

**Flip** (Sec. 4): the mirrored stream's logits are flipped back and the two logit maps
averaged.
"""
import numpy as np
import tensorflow as tf

from patchwork_tf.data import clips as clips_lib
from patchwork_tf.metrics import davis
from patchwork_tf.metrics import rewards
from patchwork_tf.models import backbone_weights as backbone_weights_lib
from patchwork_tf.models import deeplab
from patchwork_tf.tasks import base

PROBABILITY = "segmentation_probability"
MASK = "segmentation_mask"


class SegmentationTask(base.Task):
    """Binary foreground segmentation; see the module docstring for the predictions."""

    name = "segmentation"
    metric_names = ("J", "F", "J&F")
    prediction_keys = (PROBABILITY, MASK)
    observed_cell = deeplab.OBSERVED_CELL
    uses_mask = True
    settings = ("frame_selection",)

    def __init__(self, frame_selection=davis.EXCLUDE_FIRST_LAST):
        """
        Args:
          frame_selection: the frames of each sequence that are scored
            (`davis.FRAME_SELECTIONS`); the DAVIS 2016 benchmark leaves out the first and last.
        """
        self.frame_selection = frame_selection

    @classmethod
    def build_model(cls, config, num_classes=None, pretrained=None):
        """DeepLabv3 on MobileNetV2 (`models.deeplab`); `num_classes` is not used (one
        foreground logit)."""
        del num_classes
        model = deeplab.deeplabv3_mobilenet_v2(
            tuple(config.frame_size) + (3,), alpha=config.alpha,
            output_stride=config.output_stride, dropout_rate=config.dropout_rate,
            batch_norm_momentum=config.batch_norm_momentum)
        if pretrained is not None:
            backbone_weights_lib.copy_weights(pretrained, model)
        return model

    @classmethod
    def for_model(cls, model, config, **kwargs):
        """The task of a DeepLab `model`; `kwargs` may set `frame_selection`."""
        del model, config
        return cls(**kwargs)

    def predictions(self, outputs, image_size=None, flip=False):
        """The foreground of `outputs` (module docstring)."""
        if "mask_logits" not in outputs:
            raise ValueError(f"Segmentation outputs need 'mask_logits', got {sorted(outputs)}; "
                             "use a DeepLab model.")
        logits = outputs["mask_logits"]
        if flip:
            if logits.shape[0] != 2:
                raise ValueError("With flip, mask_logits must hold the frame and its mirror "
                                 f"image (batch 2), got shape {logits.shape}.")
            logits = (logits[:1] + tf.reverse(logits[1:], axis=[2])) / 2.0
        if image_size is not None:
            logits = tf.image.resize(logits, image_size, method="bilinear")
        logits = logits[..., 0]
        return {PROBABILITY: tf.sigmoid(logits), MASK: tf.cast(logits > 0.0, tf.uint8)}

    def loss(self, outputs, labels):
        """Mean per-pixel sigmoid cross-entropy of the foreground logit.

        Args:
          outputs: `{"mask_logits": float32 [B, H, W, 1]}`.
          labels: `mask` uint8 [B, H, W], 1 on the primary object.

        Returns:
          dict with the float32 scalar `total`.
        """
        mask = tf.cast(labels["mask"], tf.float32)[..., None]
        return {"total": tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(
            labels=mask, logits=outputs["mask_logits"]))}

    def reward_metric(self, ground_truth, outputs):
        """Frame J (`metrics.rewards.segmentation_overlap`) of the predicted mask against
        `ground_truth["mask"]` [B, H, W]."""
        return rewards.segmentation_overlap(ground_truth["mask"], self.predictions(outputs)[MASK])

    @staticmethod
    def mask_at(prediction, size):
        """The predicted mask bool [H, W] at the annotation's `size`: the prediction's mask
        when it has that size, else its probability resized bilinearly, above 0.5."""
        mask = np.asarray(prediction[MASK])[0]
        if mask.shape == tuple(size):
            return mask.astype(bool)
        probability = np.asarray(prediction[PROBABILITY])[0]
        resized = tf.image.resize(probability[..., None], size, method="bilinear")
        return resized.numpy()[..., 0] > 0.5

    def new_metric(self):
        return davis.DavisJF(frame_selection=self.frame_selection)

    def add_frame(self, metric, video_id, index, truth, prediction):
        """Scores frame `index` of sequence `video_id` at the annotation's resolution."""
        annotation = np.asarray(truth[clips_lib.MASK])
        metric.add_frame(video_id, index, self.mask_at(prediction, annotation.shape),
                         annotation)

    def scoring_every_frame(self):
        return SegmentationTask(frame_selection=davis.ALL_FRAMES)

    def result(self, metric):
        result = metric.result()
        return {k: result[k] for k in self.metric_names}
