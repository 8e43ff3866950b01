r"""Exports a Patchwork model as a SavedModel for serving (docs/design.md section 9).

  python -m patchwork_tf.export --export_dir=/tmp/patchwork_ssdlite \
      --task=detection --frame_size=128 --depth_multiplier=0.35 --m=4 --n=2 \
      --checkpoint=/tmp/stage1_det/checkpoints
  python -m patchwork_tf.export --model_dir=runs/synthetic_det --export_dir=/tmp/det_export

  python -m patchwork_tf.export --format=tflite --export_dir=/tmp/patchwork_tflite \
      --task=detection --frame_size=128 --depth_multiplier=0.35 --m=4 --n=2

The SavedModel holds the signatures of `patchwork_tf.serving.exportable` (`initial_state`,
`step`, `warm_start`, `stream_step`, `stream_warm_start`, `stream_reset`) and loads with
TensorFlow alone. Frames go in as uint8 RGB `[B, H, W, 3]` of any H, W (resized inside to
`--frame_size` as training resizes them); inputs of another rank, channel count, dtype or
batch than the state's are refused with a message naming what was given.

Tasks and their predictions (`patchwork_tf.tasks`, the same predictions evaluation scores; the
TF Object Detection API's names for detection):
* `backbone`: stock MobileNetV2 features (at the model's size) under `predictions`, no
  post-processing;
* `detection`: SSDLite (`patchwork_tf.models.ssdlite`) with box decoding and NMS inside:
  `detection_boxes` (normalized to the input frame), `detection_scores`,
  `detection_classes` (float32, 1-based), `num_detections` (float32);
* `segmentation`: DeepLabv3-lite (`patchwork_tf.models.deeplab`): `segmentation_probability`
  float32 and `segmentation_mask` uint8, `[B, H, W]` at the input frame's size.

`--format=tflite` writes TensorFlow Lite files instead (`patchwork_tf.serving.tflite_export`):
`single_frame.tflite` (model, head and post-processing) and `patchwork.tflite` (signatures
`warm_start` and `step`, the state as explicit inputs and outputs; the step leaves its
memory writes to the caller, `tflite_export.LiteStream` runs a stream), batch 1, frames uint8
at `--frame_size`, builtin ops only (runs under the TFLite interpreter with XNNPACK), plus
`metadata.json`. It needs `--write=window`.

The model is built with random weights and then restores `--checkpoint`: a
`tf.train.Checkpoint(model=...)` as stage 1 writes it (a prefix, or a directory whose latest
checkpoint is taken). The twin shares the single-frame model's weights, so the flags that
shape the model must match the ones it was trained with.
"""

from absl import app
from absl import flags
from absl import logging

from patchwork_tf import cli
from patchwork_tf.data import synthetic
from patchwork_tf.serving import exporter


def define_flags():
    # --frame_size: the height = width the model runs at (frames of any size are resized to
    # it inside).
    cli.define_model_flags(backbone=True)
    cli.define_grid_flags()
    flags.DEFINE_string("export_dir", None, "Where to write the SavedModel or TFLite files.",
                        required=True)
    flags.DEFINE_enum("format", "saved_model", exporter.FORMATS,
                      "saved_model, or tflite: single_frame.tflite and patchwork.tflite "
                      "(batch 1, builtin ops; needs --write=window).")
    flags.DEFINE_string("model_dir", None,
                        "A `patchwork_tf.train` run to export with its trained attention "
                        "policy; the model flags below are then read from the run.")
    flags.DEFINE_integer("num_classes", len(synthetic.CLASS_NAMES),
                         "Detection classes without background.")
    flags.DEFINE_integer("num_extra_layers", None,
                         "SSDLite extra layers (default: as many as fit, at most 4).")
    flags.DEFINE_integer("max_detections", 100, "Detections kept per frame after NMS.")
    flags.DEFINE_float("score_threshold", 1e-8, "Detection scores at or below are dropped.")
    flags.DEFINE_string("checkpoint", None,
                        "tf.train.Checkpoint(model=...) of the single-frame model: a prefix "
                        "or a directory (its latest checkpoint).")
    flags.DEFINE_list("scan_order", None, "Scan order of the windows (default row-major).")
    flags.DEFINE_float("history_decay", 0.5, "alpha of the action history, Eq. 1.")
    flags.DEFINE_enum("write", "window", ("window", "bands"), "Memory writes of the twin.")
    flags.DEFINE_bool("fold_batch_norm", True,
                      "Fold each batch norm into the conv before it in the exported step "
                      "(inference only; --nofold_batch_norm keeps the stock layers).")


def main(argv):
    del argv
    f = flags.FLAGS
    scan_order = [int(a) for a in f.scan_order] if f.scan_order else None
    if f.model_dir:
        module = exporter.export_trained_run(f.model_dir, f.export_dir, write=f.write,
                                    fold_batch_norm=f.fold_batch_norm, export_format=f.format)
        logging.info("Exported the run %s (%d windows, predictions %s) to %s.", f.model_dir,
                     module.num_actions, list(module.prediction_keys), f.export_dir)
        return
    module = exporter.export(f.export_dir, task=f.task, frame_size=f.frame_size,
                    depth_multiplier=f.depth_multiplier, m=f.m, n=f.n,
                    num_classes=f.num_classes, num_extra_layers=f.num_extra_layers,
                    max_detections=f.max_detections, score_threshold=f.score_threshold,
                    checkpoint=f.checkpoint, scan_order=scan_order,
                    history_decay=f.history_decay, write=f.write,
                    fold_batch_norm=f.fold_batch_norm, export_format=f.format)
    logging.info("Exported %s (%d windows, predictions %s) to %s.", f.task,
                 module.num_actions, list(module.prediction_keys), f.export_dir)


if __name__ == "__main__":
    define_flags()
    app.run(main)
