"""Post-processing callables that turn a task model's raw outputs into served predictions.

They are what `ExportableModule(twin, postprocess=...)` and the visualization take: the
module itself stays task-agnostic. Each runs on the full-frame outputs (the last global op,
DESIGN.md section 4), so the prediction is always for the whole frame.
"""
import tensorflow as tf

from patchwork_tf.models import anchors as anchors_lib
from patchwork_tf.ops import postprocess as postprocess_lib


class DetectionPostprocess(tf.Module):
    """SSD box decoding and per-class NMS for an SSDLite model's outputs.

    Call with the model's outputs `{"box_encodings": [B, A, 4], "class_logits": [B, A, C +
    1]}`; returns `patchwork_tf.ops.postprocess.postprocess`'s dict: `boxes` float32 [B, D, 4]
    normalized `(ymin, xmin, ymax, xmax)`, `scores` float32 [B, D], `classes` int32 [B, D]
    (0-based, background excluded), `num_detections` int32 [B].
    """

    def __init__(self, model, max_detections=100, score_threshold=1e-8, iou_threshold=0.6,
                 anchor_kwargs=None, name="detection_postprocess"):
        """Args:
          model: a model from `patchwork_tf.models.ssdlite.ssdlite_mobilenet_v2` with a
            background column (`add_background_class=True`).
          max_detections: D, detections kept per frame (and per class).
          score_threshold: scores at or below it are dropped.
          iou_threshold: NMS overlap above which the lower-scored box of a class goes.
          anchor_kwargs: the anchor arguments the model was built with, for
            `anchors.anchors_for_model` (default: the builder's defaults).
        """
        super().__init__(name=name)
        self.anchors = tf.constant(anchors_lib.anchors_for_model(model, **(anchor_kwargs or {})))
        self.max_detections = int(max_detections)
        self.score_threshold = float(score_threshold)
        self.iou_threshold = float(iou_threshold)

    def __call__(self, outputs):
        missing = {"box_encodings", "class_logits"} - set(outputs)
        if missing:
            raise ValueError(
                f"Detection outputs need 'box_encodings' and 'class_logits'; missing "
                f"{sorted(missing)} in {sorted(outputs)}. Use an SSDLite model.")
        return postprocess_lib.postprocess(
            outputs["box_encodings"], outputs["class_logits"], self.anchors,
            max_detections=self.max_detections,
            max_detections_per_class=self.max_detections,
            iou_threshold=self.iou_threshold, score_threshold=self.score_threshold)


def segmentation_postprocess(outputs):
    """Foreground mask of a DeepLab model's `{"mask_logits": float32 [B, H, W, 1]}`.

    Returns:
      dict of `probability` float32 [B, H, W] (sigmoid of the logit) and `mask` uint8
      [B, H, W] (1 where the logit is positive, DAVIS 2016's binary setting).
    """
    if "mask_logits" not in outputs:
        raise ValueError(f"Segmentation outputs need 'mask_logits', got {sorted(outputs)}; "
                         "use a DeepLab model.")
    logits = outputs["mask_logits"][..., 0]
    return {"probability": tf.sigmoid(logits), "mask": tf.cast(logits > 0.0, tf.uint8)}
