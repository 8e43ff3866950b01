"""TensorFlow Lite export of the whole frame call: the single-frame model and the Patchwork step.

What mobile and CPU deployments of MobileNet SSD run is a `.tflite` flatbuffer under the TFLite
interpreter with its default XNNPACK delegate. This module converts, for one stream (batch 1)
at the model's frame size:

* **the single-frame call** (`single_frame.tflite`, signature `serving_default`): uint8 RGB
  frame `[1, H, W, 3]` -> the task's predictions (model, head and post-processing);
* **the Patchwork frame call** (`patchwork.tflite`, signatures `warm_start` and `step`): the
  state of `serving.exportable` (every cell's memory, the action history, the change cue's
  thumbnail memory and values, `next_action`) as **explicit inputs and outputs**, each named by
  its state key. `warm_start(frames)` is a key frame and returns the state; `step(frames,
  **state)` processes window `next_action` and returns the predictions, `action` (the window
  it processed) and the new state, with the policy's next window under `next_action`.

**The state stays in the interpreter** (`LiteStream`, `run_stream`): a `DYNAMIC_UPDATE_SLICE`
of a graph input copies the whole memory, and feeding every state output back copies it
again, so the step writes no memory but the observed cell's (and the `GlobalCell`s'): each
other cell crops the window plus its halo from its memory input with the fresh window laid
over it (`core.cells.deferred_window_writes`) and outputs the window as `write_window_<cell>`
with its corner in the padded memory as `write_at_<cell>` (int32 `[1, 2]`). The caller writes
each window into the memory input of the same cell (`memory_<cell>`) and copies every other
state output into the input of the same name: per step the windows move, not the memories.

Frames must have the model's frame size (resize before; the SavedModel resizes inside).
The twin must write whole windows (`write="window"`): TFLite lowers a tensor scatter to
`SCATTER_ND`, which adds up repeated indices, and band writes repeat some (their per-action
tables are padded to one length); window indices never repeat. Windows are written and
cropped by `DYNAMIC_UPDATE_SLICE` and `SLICE` (`core.cells.slice_windows`), which copy only
the window. `metadata.json` beside the files holds the record of `serving.metadata` (task,
grid, policy, FLOPs).

Every op is a TFLite builtin (no Flex delegate, which the pip TensorFlow's interpreter lacks):
the one TF op that is not, `CombinedNonMaxSuppression`, is replaced by `class_offset_nms`, a
single-class NMS (`NON_MAX_SUPPRESSION_V5`) over every (anchor, class) pair with the boxes of
class `c` shifted by `c` times the boxes' extent, so boxes of different classes never overlap:
greedy NMS in score order then keeps exactly what per-class NMS followed by the top-D merge
keeps (tested against the SavedModel's predictions).
"""
import json
import os
import tempfile

import numpy as np
import tensorflow as tf

from patchwork_tf.core import cells as cells_lib
from patchwork_tf.data import clips as clips_lib
from patchwork_tf.ops import box_coder
from patchwork_tf.tasks import detection
from patchwork_tf.serving import exportable
from patchwork_tf.serving import metadata as metadata_lib

WRITE_WINDOW_PREFIX = "write_window_"
WRITE_AT_PREFIX = "write_at_"
SINGLE_FRAME_FILE = "single_frame.tflite"
PATCHWORK_FILE = "patchwork.tflite"
METADATA_FILE = "metadata.json"
FRAMES = "frames"


def class_offset_nms(boxes, scores, max_detections, iou_threshold, score_threshold):
    """Per-class NMS of one frame with TFLite builtin ops.

    Args:
      boxes: float32 [N, 4] decoded boxes `(ymin, xmin, ymax, xmax)`, not clipped.
      scores: float32 [N, C] per-class scores.
      max_detections: D, detections kept.
      iou_threshold: same-class overlap above which the lower-scored box goes.
      score_threshold: scores at or below it are dropped.

    Returns:
      `(boxes [D, 4] clipped to [0, 1], scores [D], classes int32 [D] 0-based,
      num_detections int32 scalar)`, descending by score, zero padding; what
      `tf.image.combined_non_max_suppression(..., max_output_size_per_class=D,
      max_total_size=D, pad_per_class=False, clip_boxes=True)` returns for one frame.
    """
    num_anchors, num_classes = scores.shape
    extent = tf.reduce_max(boxes) - tf.reduce_min(boxes) + 1.0
    offsets = tf.range(num_classes, dtype=tf.float32) * extent
    shifted = tf.reshape(boxes[:, None, :] + offsets[None, :, None],
                         [num_anchors * num_classes, 4])
    selected, selected_scores, valid = tf.raw_ops.NonMaxSuppressionV5(
        boxes=shifted, scores=tf.reshape(scores, [-1]), max_output_size=max_detections,
        iou_threshold=iou_threshold, score_threshold=score_threshold, soft_nms_sigma=0.0,
        pad_to_max_output_size=True)
    keep = tf.range(max_detections) < valid
    anchor = selected // num_classes
    classes = tf.where(keep, selected - anchor * num_classes, 0)
    selected_boxes = tf.clip_by_value(tf.gather(boxes, anchor), 0.0, 1.0)
    selected_boxes = tf.where(keep[:, None], selected_boxes, 0.0)
    return (selected_boxes, tf.where(keep, selected_scores, 0.0), classes, valid)


class LiteDetectionPostprocess(tf.Module):
    """`tasks.DetectionTask`'s post-processing with `class_offset_nms` in place of
    `CombinedNonMaxSuppression`: the same predictions from TFLite builtin ops.

    The batch must be static (each frame runs its own NMS).
    """

    def __init__(self, postprocess, name="lite_detection_postprocess"):
        """Args:
          postprocess: the `tasks.DetectionTask` to mirror (anchors, D,
            thresholds).
        """
        super().__init__(name=name)
        if not isinstance(postprocess, detection.DetectionTask):
            raise TypeError(f"postprocess must be a DetectionTask, got "
                            f"{type(postprocess).__name__}.")
        self.anchors = postprocess.anchors
        self.max_detections = postprocess.max_detections
        self.score_threshold = postprocess.score_threshold
        self.iou_threshold = postprocess.iou_threshold

    def __call__(self, outputs, image_size=None):
        del image_size
        boxes = box_coder.decode(outputs["box_encodings"], self.anchors)
        scores = tf.sigmoid(outputs["class_logits"][..., 1:])
        if boxes.shape[0] is None:
            raise ValueError("LiteDetectionPostprocess needs a static batch; export with "
                             "input shapes of batch 1.")
        per_frame = [class_offset_nms(b, s, self.max_detections, self.iou_threshold,
                                      self.score_threshold)
                     for b, s in zip(tf.unstack(boxes), tf.unstack(scores))]
        nmsed_boxes, nmsed_scores, classes, valid = (tf.stack(v) for v in zip(*per_frame))
        return {
            detection.BOXES: nmsed_boxes,
            detection.SCORES: nmsed_scores,
            detection.CLASSES: tf.cast(classes, tf.float32) + detection.LABEL_ID_OFFSET,
            detection.NUM_DETECTIONS: tf.cast(valid, tf.float32),
        }


def lite_postprocess(postprocess):
    """The builtin-op equivalent of a post-processing callable (None stays None)."""
    if isinstance(postprocess, detection.DetectionTask):
        return LiteDetectionPostprocess(postprocess)
    return postprocess


def single_frame_function(model, postprocess, frame_size,
                          preprocess=clips_lib.preprocess_frames):
    """The single-frame call as a `tf.function` of uint8 frames `[1, H, W, 3]` -> predictions.

    Predictions are named as in `serving.exportable` (`predictions` without post-processing).
    """
    frame_size = tuple(frame_size)

    def call(frames):
        outputs = model(preprocess(frames), training=False)
        if postprocess is not None:
            outputs = postprocess(outputs, tf.constant(frame_size))
        return outputs if isinstance(outputs, dict) else {exportable.PREDICTIONS: outputs}

    return tf.function(call, input_signature=[
        tf.TensorSpec((1,) + frame_size + (3,), tf.uint8, name=FRAMES)])


def deferred_cells(module):
    """The cells whose memory writes the exported step leaves to its caller: every halo cell
    that writes whole windows, but the one the policy observes."""
    halo_cells = module.twin.halo_cells
    return [cell for cell in module.cells if cell in halo_cells
            and halo_cells[cell].write == "window" and cell != module.policy_cell]


def patchwork_functions(module):
    """The Patchwork frame call of an `ExportableModule` as two `tf.function`s of batch 1:

    `warm_start(frames)` -> predictions, `action` and the state; `step(frames, state)` ->
    the same after window `state['next_action']`, except that the memory of each of
    `deferred_cells(module)` comes out as its window and corner (`write_window_<cell>`,
    `write_at_<cell>`; see the module docstring). Shapes are static
    (`module.state_spec(1)`), so the converter sees every tensor's size.
    """
    spec = module.state_spec(1)
    frames_spec = tf.TensorSpec((1,) + module.frame_size + (module.channels,), tf.uint8,
                                name=FRAMES)
    state_specs = {key: tf.TensorSpec(spec[key].shape, spec[key].dtype, name=key)
                   for key in module.state_keys}
    deferred = deferred_cells(module)
    corners = {cell: tf.constant(module.twin.halo_cells[cell].memory_corners())
               for cell in deferred}
    kept = [cell for cell in module.cells if cell not in deferred]

    def step_call(frames, state):
        with cells_lib.deferred_window_writes(in_graph=kept):
            result = module.frame_call(frames, state)
        for cell in deferred:
            result[WRITE_WINDOW_PREFIX + cell] = result.pop(exportable.MEMORY_PREFIX + cell)
            result[WRITE_AT_PREFIX + cell] = tf.gather(corners[cell],
                                                       state[exportable.NEXT_ACTION])
        return result

    warm_start = tf.function(module.frame_call_warm_start, input_signature=[frames_spec])
    step = tf.function(step_call, input_signature=[frames_spec, state_specs])
    return {"warm_start": warm_start, "step": step}


def convert(functions, variables, work_dir):
    """TFLite flatbuffer bytes of `{signature key: tf.function with an input_signature}`,
    builtin ops only, float32.

    Args:
      functions: the signatures.
      variables: the variables the functions read (frozen into constants).
      work_dir: a directory for the intermediate SavedModel the converter reads.
    """
    holder = tf.Module()
    holder.variables_ = list(variables)
    for key, function in functions.items():
        setattr(holder, key, function)
    saved = os.path.join(work_dir, "saved_model_for_tflite")
    with cells_lib.slice_windows():  # DYNAMIC_UPDATE_SLICE and SLICE for window memories
        tf.saved_model.save(holder, saved, signatures=functions)
    converter = tf.lite.TFLiteConverter.from_saved_model(saved, signature_keys=list(functions))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    return converter.convert()


def export_tflite(module, model, postprocess, export_dir, task=None, metadata=None):
    """Writes `SINGLE_FRAME_FILE`, `PATCHWORK_FILE` and `METADATA_FILE` into `export_dir`.

    Args:
      module: an `ExportableModule` of `model`'s twin whose post-processing is
        `lite_postprocess(postprocess)` (builtin ops only); its twin must write whole windows.
      model: the single-frame tf_keras model.
      postprocess: the task's post-processing callable (or None), as the SavedModel runs it.
      export_dir: created if missing.
      task, metadata: recorded as `serving.metadata.describe` records them.

    Returns:
      dict of the written paths by file name.

    Raises:
      ValueError: a twin with band writes.
    """
    if not isinstance(module, exportable.ExportableModule):
        raise TypeError(f"module must be an ExportableModule, got {type(module).__name__}.")
    band_cells = sorted(name for name, cell in module.twin.halo_cells.items()
                        if cell.write != "window")
    if band_cells:
        raise ValueError(
            f"The TFLite export needs a twin with whole-window writes; cells {band_cells} write "
            "bands, whose padded index tables TFLite's SCATTER_ND would add up. Build the twin "
            "with write='window' (export --write=window).")
    os.makedirs(export_dir, exist_ok=True)
    lite = lite_postprocess(postprocess)
    single = single_frame_function(model, lite, module.frame_size)
    paths = {}
    with tempfile.TemporaryDirectory() as work_dir:
        for name, functions, variables in (
                (SINGLE_FRAME_FILE, {"serving_default": single}, model.variables),
                (PATCHWORK_FILE, patchwork_functions(module),
                 module.model_variables + module.policy_variables)):
            paths[name] = os.path.join(export_dir, name)
            with open(paths[name], "wb") as f:
                f.write(convert(functions, variables, os.path.join(work_dir, name)))
    paths[METADATA_FILE] = os.path.join(export_dir, METADATA_FILE)
    with open(paths[METADATA_FILE], "w") as f:
        json.dump(metadata_lib.describe(module, task, metadata), f, indent=2)
    return paths


class LiteStream:
    """One stream on a `PATCHWORK_FILE` interpreter, its state held in the `step` signature's
    input tensors (see the module docstring): after each invoke, each window output is copied
    into its memory input at its corner and every other state output into the input of the
    same name.

    The public `Interpreter.tensor` reaches the first subgraph only, so the `step`
    signature's tensors are reached through the interpreter's wrapper by subgraph index; no
    view of them is held across an invoke.
    """

    def __init__(self, interpreter):
        """Args:
          interpreter: a `tf.lite.Interpreter` of `PATCHWORK_FILE`."""
        self._wrapper = interpreter._interpreter  # pylint: disable=protected-access
        signature = interpreter._get_full_signature_list()["step"]  # pylint: disable=protected-access
        self._inputs, self._outputs = signature["inputs"], signature["outputs"]
        self._subgraph = self._wrapper.GetSubgraphIndexFromSignature("step")
        self._wrapper.AllocateTensors(self._subgraph)
        self._warm_start = interpreter.get_signature_runner("warm_start")
        self._state_keys = [key for key in self._inputs if key != FRAMES]
        # Tensor indices, looked up once: the per-step lookups cost ~0.1 ms, a tenth of the
        # whole call at 0.35@128.
        self._copies = [(self._inputs[key], index) for key, index in self._outputs.items()
                        if key in self._inputs]
        cell_name = slice(len(WRITE_WINDOW_PREFIX), None)
        self._writes = [(self._inputs[exportable.MEMORY_PREFIX + key[cell_name]], index,
                         self._outputs[WRITE_AT_PREFIX + key[cell_name]])
                        for key, index in self._outputs.items()
                        if key.startswith(WRITE_WINDOW_PREFIX)]
        self._predictions = [(key, index) for key, index in self._outputs.items()
                             if key not in self._inputs
                             and not key.startswith((WRITE_WINDOW_PREFIX, WRITE_AT_PREFIX))]

    def _view(self, index):
        return self._wrapper.tensor(self._wrapper, index, self._subgraph)

    def warm_start(self, frame):
        """A key frame (uint8 `[1, H, W, 3]`): its outputs and state (dict of numpy)."""
        result = self._warm_start(frames=frame)
        for key in self._state_keys:
            np.copyto(self._view(self._inputs[key]), result[key])
        return result

    def step(self, frame):
        """The next frame (uint8 `[1, H, W, 3]`): its predictions and `action` (numpy)."""
        view = self._view
        np.copyto(view(self._inputs[FRAMES]), frame)
        self._wrapper.Invoke(self._subgraph)
        # Read first: an output may share its tensor with an input (`action` is the input
        # `next_action` passed through).
        predictions = {key: view(index).copy() for key, index in self._predictions}
        for state, output in self._copies:
            np.copyto(view(state), view(output))
        for memory, window, corner in self._writes:
            window = view(window)
            [[row, col]] = view(corner).tolist()
            view(memory)[:, row:row + window.shape[1], col:col + window.shape[2]] = window
        return predictions

    def state(self):
        """The state after the last frame, named as the SavedModel's (dict of numpy)."""
        return {key: self._view(self._inputs[key]).copy() for key in self._state_keys}


def run_stream(interpreter, frames):
    """Runs a `PATCHWORK_FILE` interpreter over one stream: a key frame, then steps.

    Args:
      interpreter: a `tf.lite.Interpreter` of `PATCHWORK_FILE`.
      frames: uint8 `[T, H, W, 3]` at the model's frame size.

    Returns:
      list of T output dicts (numpy) with the SavedModel's keys: the first `warm_start`'s,
      then each step's predictions, `action` and state.
    """
    stream = LiteStream(interpreter)
    results = [stream.warm_start(frames[:1])]
    for frame in frames[1:]:
        results.append(dict(stream.step(frame[None]), **stream.state()))
    return results
