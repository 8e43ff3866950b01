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

The served predictions are the task's predictions (`patchwork_tf.tasks`, one key set in
training, evaluation and serving), so the task scores them as they come.
"""
import dataclasses

import tensorflow as tf

from patchwork_tf import tasks
from patchwork_tf.evaluation import stream
from patchwork_tf.serving import metadata as metadata_lib
from patchwork_tf.training import configs


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
        """The exported grid and policy settings, as `api.LoadedModel.patchwork`."""
        return configs.AttentionConfig(
            m=self.metadata["m"], n=self.metadata["n"],
            observed_cell=self.metadata["policy_cell"],
            history_alpha=self.metadata["history_alpha"],
            change_cue=self.metadata["change_cue"])


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
    if record["task"] not in tasks.TASKS:
        raise ValueError(
            f"{export_dir} is a {record['task']!r} export, which has no accuracy metric; export "
            f"the task model ({' or '.join(tasks.TASKS)}) to evaluate it.")
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
        self.task = tasks.get(exported.task).from_metadata(record)
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

        Returns the task's predictions (`task.prediction_keys`) as host numpy, at the frame's
        size.
        """
        outputs = self._module.stream_step(frame[0])
        self.last_action = int(outputs["action"].numpy()[0])
        return {key: outputs[key].numpy() for key in self.task.prediction_keys}
