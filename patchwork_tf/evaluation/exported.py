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
scan order). The frame is fed as a uint8 RGB frame of the export's frame size (frames of
another size are resized outside as training resizes them, `evaluate_stream(resize_frames=
True)`); variants that change the model (flip, resolution, no cells) need the checkpoint.
"""
import dataclasses

import tensorflow as tf

from patchwork_tf.evaluation import stream
from patchwork_tf.evaluation import tasks
from patchwork_tf.serving import metadata as metadata_lib

PREDICTION_KEYS = {
    "detection": ("boxes", "scores", "classes", "num_detections"),
    "segmentation": ("mask",),
}


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
        """Predictions for one uint8 frame [1, H, W, 3] (host numpy); advances the policy.

        Detection: `boxes` [1, D, 4], `scores` [1, D], `classes` [1, D], `num_detections` [1];
        segmentation: `mask` bool [1, H, W] (the exported 0/1 mask).
        """
        outputs = self._module.stream_step(frame[0])
        self.last_action = int(outputs["action"].numpy()[0])
        predictions = {key: outputs[key].numpy() for key in self._keys}
        if "mask" in predictions:
            predictions["mask"] = predictions["mask"].astype(bool)
        return predictions
