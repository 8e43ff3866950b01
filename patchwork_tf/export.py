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
`warm_start` and `step`, the state as explicit inputs and outputs), batch 1, frames uint8 at
`--frame_size`, builtin ops only (runs under the TFLite interpreter with XNNPACK), plus
`metadata.json`. It needs `--write=window`.

The model is built with random weights and then restores `--checkpoint`: a
`tf.train.Checkpoint(model=...)` as stage 1 writes it (a prefix, or a directory whose latest
checkpoint is taken). The twin shares the single-frame model's weights, so the flags that
shape the model must match the ones it was trained with.
"""
import os

from absl import app
from absl import flags
from absl import logging
import tensorflow as tf
import tf_keras

import patchwork_tf as pw
from patchwork_tf.data import synthetic
from patchwork_tf.serving import exportable
from patchwork_tf import tasks
from patchwork_tf.serving import tflite_export
from patchwork_tf.training import stage1

BACKBONE = "backbone"
TASKS = (BACKBONE,) + tasks.TASKS
FORMATS = ("saved_model", "tflite")


def build_model(task, frame_size, depth_multiplier, num_classes=len(synthetic.CLASS_NAMES),
                num_extra_layers=None, max_detections=100, score_threshold=1e-8):
    """The single-frame tf_keras model of `task` and its post-processing: the task object
    (`patchwork_tf.tasks`, called as `task(outputs, image_size)`), or None for the backbone.

    Detection and segmentation models are the stage-1 architecture (`stage1.build_model`
    with the `Stage1Config` defaults for the rest), so stage-1 checkpoints restore into them
    and the detector's anchors are stage 1's.

    Args:
      task: one of `TASKS`.
      frame_size: H = W in pixels.
      depth_multiplier: MobileNetV2's alpha.
      num_classes: detection classes without background.
      num_extra_layers: SSDLite's extra layers; None takes as many as the frame allows, up
        to 4 (`tasks.detection.extra_layers`).
      max_detections, score_threshold: of the detection NMS.
    """
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}.")
    if task not in tasks.TASKS:  # the bare backbone
        return tf_keras.applications.MobileNetV2(
            input_shape=(frame_size, frame_size, 3), alpha=depth_multiplier,
            include_top=False, weights=None), None
    config = stage1.Stage1Config(task, frame_size=(frame_size, frame_size),
                                 alpha=depth_multiplier, num_extra_layers=num_extra_layers)
    model = stage1.build_model(config, num_classes=num_classes)
    return model, stage1_postprocess(model, config, max_detections, score_threshold)


def stage1_postprocess(model, config, max_detections=100, score_threshold=1e-8):
    """The task object of a model built by `stage1.build_model(config)`, the serving
    post-processing: detection decoding with stage 1's anchors and NMS (`max_detections`,
    `score_threshold`), or the segmentation mask."""
    task = tasks.get(config.task)
    nms = dict(max_detections=max_detections, score_threshold=score_threshold)
    return task.for_model(model, config, **{k: v for k, v in nms.items() if k in task.settings})


def restore_model(model, checkpoint):
    """Restores `model` from a `tf.train.Checkpoint(model=...)` prefix or directory.

    Raises:
      ValueError: a directory without checkpoints, or a checkpoint that does not hold this
        model's variables (a model built with other flags than the trained one).
    """
    path = tf.train.latest_checkpoint(checkpoint) if os.path.isdir(checkpoint) else checkpoint
    if path is None:
        raise ValueError(
            f"No checkpoint in directory {checkpoint!r}; expected ckpt-N.index files as "
            "tf.train.CheckpointManager writes them (stage 1), or pass a checkpoint prefix.")
    try:
        tf.train.Checkpoint(model=model).restore(path).expect_partial() \
            .assert_existing_objects_matched()
    except (AssertionError, ValueError) as error:
        raise ValueError(
            f"Checkpoint {path!r} does not fit model {model.name!r}: {error}. Build the model "
            "with the task, frame size, depth multiplier and classes it was trained with.") \
            from error
    return path


def export(export_dir, task="backbone", frame_size=384, depth_multiplier=1.0, m=4, n=2,
           num_classes=len(synthetic.CLASS_NAMES), num_extra_layers=None, max_detections=100,
           score_threshold=1e-8, checkpoint=None, scan_order=None, history_decay=0.5,
           write="window", fold_batch_norm=True, export_format="saved_model"):
    """Builds the twin of a task model, wraps it for serving and saves it.

    Args:
      export_dir: where the SavedModel goes.
      task: one of `TASKS`.
      frame_size: H = W of the frames, in pixels.
      depth_multiplier: MobileNetV2's alpha.
      m, n: the window grid (Sec. 3.1).
      num_classes, num_extra_layers, max_detections, score_threshold: see `build_model`.
      checkpoint: optional `tf.train.Checkpoint(model=...)` of the single-frame model (prefix
        or directory, see `restore_model`); the Patchwork twin shares its weights. None keeps
        the random initialisation.
      scan_order: the order the windows are scanned in (a permutation of the actions), or
        None for row-major.
      history_decay: alpha of Eq. 1.
      write: the twin's memory writes, 'window' or 'bands' (see `patchwork_tf.patchwork_model`).
      fold_batch_norm: the step runs each batch norm folded into the conv before it (an
        inference option of `patchwork_tf.patchwork_model`, on the restored weights).
      export_format: one of `FORMATS`: a SavedModel, or the TFLite files of
        `serving.tflite_export` (needs `write='window'`).

    The twin is not `patchwork_model(..., inference=True)`: the SavedModel's signatures run
    as plain graphs, not XLA, and the preset's XLA op choices (depthwise convs as shifted
    multiply-adds) are slow there; its band writes and folding apply.

    Returns:
      The `ExportableModule` that was saved.
    """
    _check_format(export_format, write)
    model, postprocess = build_model(task, frame_size, depth_multiplier, num_classes,
                                     num_extra_layers, max_detections, score_threshold)
    if checkpoint:
        restore_model(model, checkpoint)
    grid = pw.WindowGrid((frame_size, frame_size), m, n)
    twin = pw.patchwork_model(model, grid, write=write, fold_batch_norm=fold_batch_norm)
    module = exportable.ExportableModule(twin, postprocess=_postprocess_for(export_format,
                                                                           postprocess),
                                         scan_order=scan_order, alpha=history_decay,
                                         compact_state=_compact_state(export_format))
    _save(module, model, postprocess, export_dir, task,
          postprocess.export_metadata() if postprocess else {}, export_format)
    return module


def _check_format(export_format, write):
    if export_format not in FORMATS:
        raise ValueError(f"export_format must be one of {FORMATS}, got {export_format!r}.")
    if export_format == "tflite" and write != "window":
        raise ValueError(
            f"The TFLite export needs whole-window memory writes; got write={write!r}. Pass "
            "--write=window (TFLite's SCATTER_ND adds up the repeated indices of band writes).")


def _compact_state(export_format):
    """The SavedModel's explicit state is compact (`serving.compact_state`); the TFLite
    file's is whole memories, as its export was built and measured."""
    return export_format != "tflite"


def _postprocess_for(export_format, postprocess):
    """The post-processing the exported graph runs: TFLite gets its builtin-op NMS."""
    if export_format == "tflite":
        return tflite_export.lite_postprocess(postprocess)
    return postprocess


def _save(module, model, postprocess, export_dir, task, metadata, export_format):
    if export_format == "tflite":
        tflite_export.export_tflite(module, model, postprocess, export_dir, task=task,
                                    metadata=metadata)
    else:
        exportable.export_saved_model(module, export_dir, task=task, metadata=metadata)


def export_trained_run(model_dir, export_dir, write="bands", fold_batch_norm=True,
                       export_format="saved_model"):
    """Exports a `python -m patchwork_tf.train` run: its newest weights and its trained
    attention Q-network (greedy), or the scanning order when only stage 1 exists.

    The exported twin is built on the restored weights, with batch norm folded when
    `fold_batch_norm` (see `export`).

    Returns:
      The `ExportableModule` that was saved.
    """
    _check_format(export_format, write)
    from patchwork_tf.training import stage2  # pylint: disable=g-import-not-at-top

    patchwork = stage2.load_patchwork(model_dir, write=write)
    postprocess = stage1_postprocess(patchwork.model, patchwork.stage1_config)
    has_policy = stage2.latest_stage(model_dir) is not None
    twin = pw.patchwork_model(
        patchwork.model, patchwork.grid, write=write, fold_batch_norm=fold_batch_norm,
        full_memory_cells=[patchwork.config.observed_cell] if has_policy else [])
    module = exportable.ExportableModule(
        twin, postprocess=_postprocess_for(export_format, postprocess),
        policy=patchwork.q_network if has_policy else None,
        policy_cell=patchwork.config.observed_cell if has_policy else None,
        alpha=patchwork.config.history_alpha,
        change_cue=has_policy and patchwork.config.change_cue,
        compact_state=_compact_state(export_format))
    task = patchwork.stage1_config.task
    _save(module, patchwork.model, postprocess, export_dir, task,
          postprocess.export_metadata(), export_format)
    return module


def define_flags():
    flags.DEFINE_string("export_dir", None, "Where to write the SavedModel or TFLite files.",
                        required=True)
    flags.DEFINE_enum("format", "saved_model", FORMATS,
                      "saved_model, or tflite: single_frame.tflite and patchwork.tflite "
                      "(batch 1, builtin ops; needs --write=window).")
    flags.DEFINE_string("model_dir", None,
                        "A `patchwork_tf.train` run to export with its trained attention "
                        "policy; the model flags below are then read from the run.")
    flags.DEFINE_enum("task", "backbone", TASKS, "The model to export.")
    flags.DEFINE_integer("frame_size", 384,
                         "Height = width in pixels the model runs at (frames of any size are "
                         "resized to it inside).")
    flags.DEFINE_float("depth_multiplier", 1.0, "MobileNetV2 depth multiplier (alpha).")
    flags.DEFINE_integer("m", 4, "Slices per frame side (Sec. 3.1).")
    flags.DEFINE_integer("n", 2, "Slices per window side (Sec. 3.1).")
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
        module = export_trained_run(f.model_dir, f.export_dir, write=f.write,
                                    fold_batch_norm=f.fold_batch_norm, export_format=f.format)
        logging.info("Exported the run %s (%d windows, predictions %s) to %s.", f.model_dir,
                     module.num_actions, list(module.prediction_keys), f.export_dir)
        return
    module = export(f.export_dir, task=f.task, frame_size=f.frame_size,
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
