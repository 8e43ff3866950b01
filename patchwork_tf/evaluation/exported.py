"""An exported Patchwork SavedModel as a stream runner (paper Sec. 4).

`python -m patchwork_tf.export` writes a SavedModel whose single-stream signatures
(`stream_warm_start`, `stream_step`, see `patchwork_tf.serving.exportable`) run what
`stream.PatchworkRunner` runs in process: a full-frame pass at a clip's first frame, then
one window step per key frame, with the action history (Eq. 1) and the policy's next window
computed inside the step, and the task's post-processing (detection decoding and NMS, the
segmentation mask) inside too. `SavedModelRunner` drives those signatures through
`stream.evaluate_stream`, so an exported model is scored and timed as the model in process
is, on the graph a server runs. It needs only `tf.saved_model.load`.

What the SavedModel cannot say by its tensors (task, grid, policy, FLOPs per step and per
full frame) comes from its `metadata` record (`patchwork_tf.serving.metadata`); the
theoretical latency is those FLOPs, counted at export time as `PatchworkRunner` counts them.

The policy is the one exported: 'dqn' (the greedy Q-network) or 'scanning' (in the exported
scan order). The frame is fed as a uint8 RGB frame of any size: the SavedModel resizes it to
its frame size inside as training resizes frames, and answers for the frame as given
(normalized boxes, a mask at the frame's H x W). Frames resized outside first
(`evaluate_stream(resize_frames=True)`) give the same detections, and masks at the model's
size, which the task scales to the annotation. Variants that change the model (flip,
resolution, no cells) need the checkpoint.

The served predictions (the TF Object Detection API's names, `serving.task_postprocess`) are
mapped back to the project's: `detection_boxes`, `detection_scores` -> `boxes`, `scores`;
`detection_classes` (float32, 1-based) -> `classes` int32 0-based; `num_detections` (float32)
-> int32; `segmentation_mask` (uint8) -> `mask` bool.
"""
import dataclasses

import numpy as np
import tensorflow as tf

from patchwork_tf.evaluation import stream
from patchwork_tf.evaluation import tasks
from patchwork_tf.serving import metadata as metadata_lib

# Per task, the served prediction each of the project's comes from.
PREDICTION_KEYS = {
    "detection": {"boxes": "detection_boxes", "scores": "detection_scores",
                  "classes": "detection_classes", "num_detections": "num_detections"},
    "segmentation": {"mask": "segmentation_mask"},
}
LABEL_ID_OFFSET = 1  # served class ids are 1-based (the OD API's), the project's 0-based


@dataclasses.dataclass
class ExportedModel:
    """A loaded SavedModel and its metadata record."""

    module: object
    metadata: dict
    path: str

    @property
    def task(self):
        return self.metadata["task"]

    @property
    def patchwork(self):
        """The grid and policy settings, keyed as `evaluate.LoadedModel.patchwork`."""
        return {"m": self.metadata["m"], "n": self.metadata["n"],
                "observed_cell": self.metadata["policy_cell"],
                "alpha": self.metadata["history_alpha"],
                "change_cue": self.metadata["change_cue"]}


def load(export_dir):
    """Loads a SavedModel of `python -m patchwork_tf.export` and checks it can be evaluated.

    Raises:
      FileNotFoundError: `export_dir` holds no SavedModel.
      ValueError: the SavedModel has no metadata (an older export: re-export it) or its task
        has no metric (a backbone export).
    """
    if not tf.saved_model.contains_saved_model(export_dir):
        raise FileNotFoundError(
            f"{export_dir} holds no SavedModel (saved_model.pb); pass the --export_dir of "
            "python -m patchwork_tf.export.")
    module = tf.saved_model.load(export_dir)
    record = metadata_lib.read(module, export_dir)
    if record["task"] not in PREDICTION_KEYS:
        raise ValueError(
            f"{export_dir} is a {record['task']!r} export, which has no accuracy metric; export "
            f"the task model ({' or '.join(PREDICTION_KEYS)}) to evaluate it.")
    return ExportedModel(module, record, export_dir)


class SavedModelRunner:
    """Runs `stream_warm_start` / `stream_step` of an exported model, one step per key frame.

    Follows the runner protocol of `stream.evaluate_stream`: `start_stream(frame, start)`,
    `__call__(frame) -> predictions`, `job_flops()`, `startup_flops()`, `frame_size`,
    `task`, `method`, `flip`, `input_dtype`; and `policy_name`, `observed_cell`,
    `last_action` as `PatchworkRunner` has them.
    """

    method = "patchwork"
    input_dtype = tf.uint8
    flip = False

    def __init__(self, exported):
        """
        Args:
          exported: an `ExportedModel` (`load`).
        """
        record = exported.metadata
        self.exported = exported
        self.frame_size = tuple(int(v) for v in record["frame_size"])
        self.policy_name = record["policy"]
        self.observed_cell = record["policy_cell"]
        if exported.task == "detection":
            self.task = tasks.DetectionTask(None, record["num_classes"])
        else:
            self.task = tasks.SegmentationTask()
        self._keys = PREDICTION_KEYS[exported.task]
        self._module = exported.module
        self.last_action = None

    def job_flops(self):
        """FLOPs of one key frame: the window step and the policy, as counted at export."""
        flops = self.exported.metadata["flops"]
        return flops["step"] + flops["policy"]

    def startup_flops(self):
        """FLOPs of the full-frame pass at a stream's first frame."""
        return self.exported.metadata["flops"]["full_frame"]

    def start_stream(self, frame, start):
        """A new video: `stream_warm_start` (a full-frame pass on `frame`, uint8
        [1, H, W, 3]) for a "key_frame" start, `stream_reset` (zero memories) for "zeros";
        either way a fresh action history."""
        stream.check_stream_start(start)
        if start == "key_frame":
            self._module.stream_warm_start(frame[0])
        else:
            self._module.stream_reset()

    def __call__(self, frame):
        """Predictions for one uint8 frame [1, H, W, 3] of any H, W; advances the policy.

        Returns host numpy in the project's format. Detection: `boxes` float32 [1, D, 4]
        normalized to the frame, `scores` float32 [1, D], `classes` int32 [1, D] (0-based),
        `num_detections` int32 [1]; segmentation: `mask` bool [1, H, W] at the frame's size.
        """
        outputs = self._module.stream_step(frame[0])
        self.last_action = int(outputs["action"].numpy()[0])
        predictions = {key: outputs[served].numpy() for key, served in self._keys.items()}
        if "classes" in predictions:
            predictions["classes"] = (predictions["classes"] - LABEL_ID_OFFSET).astype(np.int32)
            predictions["num_detections"] = predictions["num_detections"].astype(np.int32)
        if "mask" in predictions:
            predictions["mask"] = predictions["mask"].astype(bool)
        return predictions
