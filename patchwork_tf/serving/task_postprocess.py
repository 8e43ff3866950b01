"""Post-processing callables that turn a task model's raw outputs into served predictions.

They are what `ExportableModule(twin, postprocess=...)` takes, called as
`postprocess(outputs, image_size)`: the module itself stays task-agnostic. Each runs on the
full-frame outputs (the last global op, docs/design.md section 2), so the prediction is always for
the whole frame, and answers for the frame as it entered the SavedModel (`image_size`, before
the module resized it to the model's size).

The names follow the TF Object Detection API's exported detection models
(`object_detection/exporter_lib_v2.py` in tensorflow/models: `detection_boxes`,
`detection_scores`, `detection_classes` 1-based as float32, `num_detections` as float32);
segmentation is named likewise (`segmentation_probability`, `segmentation_mask`).
"""
import tensorflow as tf

from patchwork_tf.models import anchors as anchors_lib
from patchwork_tf.ops import postprocess as postprocess_lib

# The OD API's served class ids are the 0-based ids plus this (background is no class).
LABEL_ID_OFFSET = 1


class DetectionPostprocess(tf.Module):
    """SSD box decoding and per-class NMS for an SSDLite model's outputs.

    Call with the model's outputs `{"box_encodings": [B, A, 4], "class_logits": [B, A, C +
    1]}` (and optionally the input's `image_size`, unused: normalized boxes hold for the input
    frame, which the model's input stretches); returns the OD API's dict: `detection_boxes`
    float32 [B, D, 4] normalized `(ymin, xmin, ymax, xmax)`, `detection_scores` float32 [B, D],
    `detection_classes` float32 [B, D] (1-based: the model's class 0 is 1; background is no
    class), `num_detections` float32 [B].
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

    def __call__(self, outputs, image_size=None):
        del image_size
        missing = {"box_encodings", "class_logits"} - set(outputs)
        if missing:
            raise ValueError(
                f"Detection outputs need 'box_encodings' and 'class_logits'; missing "
                f"{sorted(missing)} in {sorted(outputs)}. Use an SSDLite model.")
        detections = postprocess_lib.postprocess(
            outputs["box_encodings"], outputs["class_logits"], self.anchors,
            max_detections=self.max_detections,
            max_detections_per_class=self.max_detections,
            iou_threshold=self.iou_threshold, score_threshold=self.score_threshold)
        return {
            "detection_boxes": detections["boxes"],
            "detection_scores": detections["scores"],
            "detection_classes": tf.cast(detections["classes"], tf.float32) + LABEL_ID_OFFSET,
            "num_detections": tf.cast(detections["num_detections"], tf.float32),
        }


def segmentation_postprocess(outputs, image_size=None):
    """Foreground mask of a DeepLab model's `{"mask_logits": float32 [B, h, w, 1]}`.

    Args:
      outputs: the model's outputs.
      image_size: `(H, W)` (int32 [2]) the logits are resized to, bilinearly (as evaluation
        resizes them to an annotation), before the threshold; None keeps `h, w`.

    Returns:
      dict of `segmentation_probability` float32 [B, H, W] (sigmoid of the logit) and
      `segmentation_mask` uint8 [B, H, W] (1 where the logit is positive, DAVIS 2016's binary
      setting).
    """
    if "mask_logits" not in outputs:
        raise ValueError(f"Segmentation outputs need 'mask_logits', got {sorted(outputs)}; "
                         "use a DeepLab model.")
    logits = outputs["mask_logits"]
    if image_size is not None:
        logits = tf.image.resize(logits, image_size, method="bilinear")
    logits = logits[..., 0]
    return {"segmentation_probability": tf.sigmoid(logits),
            "segmentation_mask": tf.cast(logits > 0.0, tf.uint8)}
