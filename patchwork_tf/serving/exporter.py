"""Saves a Patchwork model for serving: a SavedModel (`serving.exportable`) or TFLite files
(`serving.tflite_export`), of an untrained or stage-1 model (`export`) or of a whole train run
with its attention policy (`export_trained_run`). `python -m patchwork_tf.export` maps its
flags onto these.
"""
import patchwork_tf as pw
from patchwork_tf import runs
from patchwork_tf.data import synthetic
from patchwork_tf.serving import exportable
from patchwork_tf.serving import tflite_export

FORMATS = ("saved_model", "tflite")


def export(export_dir, task="backbone", frame_size=384, depth_multiplier=1.0, m=4, n=2,
           num_classes=len(synthetic.CLASS_NAMES), num_extra_layers=None, max_detections=100,
           score_threshold=1e-8, checkpoint=None, scan_order=None, history_decay=0.5,
           write="window", fold_batch_norm=True, export_format="saved_model"):
    """Builds the twin of a task model, wraps it for serving and saves it.

    Args:
      export_dir: where the SavedModel goes.
      task: one of `runs.MODEL_TASKS`.
      frame_size: H = W of the frames, in pixels.
      depth_multiplier: MobileNetV2's alpha.
      m, n: the window grid (Sec. 3.1).
      num_classes, num_extra_layers, max_detections, score_threshold: see `runs.build_model`.
      checkpoint: optional `tf.train.Checkpoint(model=...)` of the single-frame model (prefix
        or directory, see `runs.restore_checkpoint`); the Patchwork twin shares its weights. None keeps
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
    model, postprocess = runs.build_model(task, frame_size, depth_multiplier, num_classes,
                                          num_extra_layers, max_detections, score_threshold)
    if checkpoint:
        runs.restore_checkpoint(model, checkpoint)
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
    run = runs.TrainedRun.find(model_dir)
    model = run.build_model()
    postprocess = run.postprocess(model)
    twin = run.build_twin(model, write=write, fold_batch_norm=fold_batch_norm)
    has_policy = run.agent_checkpoint is not None
    config = run.attention
    module = exportable.ExportableModule(
        twin, postprocess=_postprocess_for(export_format, postprocess),
        policy=run.restore_q_network(twin) if has_policy else None,
        policy_cell=run.observed_cell if has_policy else None,
        alpha=config.history_alpha if config else 0.5,
        change_cue=has_policy and config.change_cue,
        compact_state=_compact_state(export_format))
    _save(module, model, postprocess, export_dir, run.stage1_config.task,
          postprocess.export_metadata(), export_format)
    return module
