"""Single-frame evaluation of stage-1 models on clips of their data source (Sec. 4.1, 4.2).

The task object (`patchwork_tf.tasks`) turns the model's outputs into its predictions and
scores them: detection by VID mAP@0.5 (`metrics.vid_map.VidMap`), segmentation by DAVIS J
and F per clip, averaged over clips (`metrics.davis.DavisJF`, every frame scored). Every frame
of every clip is evaluated.
"""
from typing import Any, Dict

import numpy as np
import tensorflow as tf
import tf_keras

from patchwork_tf import tasks
from patchwork_tf.data import clips as clips_lib
from patchwork_tf.data import videos
from patchwork_tf.training import stage1
from patchwork_tf.training import stage1_data


def evaluate_frames(task: tasks.Task, model: tf_keras.Model, frames: Dict[str, np.ndarray],
                    frames_per_clip: int, batch_size: int = 32) -> Dict[str, Any]:
    """The task's metric of a single-frame model on frames, clip by clip.

    Args:
      task: the model's task object (`tasks.get(name).for_model(model, config)`).
      model: the tf_keras model, float32 frames in [-1, 1] -> raw outputs.
      frames: dict from `concatenate_frames` or `stage1_data.synthetic_frames` (frames,
        boxes, classes, valid, and mask for segmentation); frame `i` belongs to clip
        `i // frames_per_clip`.
      frames_per_clip: frames of each clip in `frames`.
      batch_size: frames per forward pass.

    Returns:
      The metric's `result()`: detection `{"mAP", "ap" [C]}`; segmentation `{"J", "F",
      "J&F", "per_sequence"}`.
    """

    @tf.function
    def predict(images):
        return task.predictions(model(images, training=False))

    metric = task.new_metric()
    index = 0
    for images, _ in stage1_data.evaluation_dataset(frames, batch_size):
        predictions = {k: v.numpy() for k, v in predict(images).items()}
        for row in range(images.shape[0]):
            valid = frames[clips_lib.VALID][index]
            truth = {videos.FRAME: frames[clips_lib.FRAMES][index],
                     clips_lib.BOXES: frames[clips_lib.BOXES][index][valid],
                     clips_lib.CLASSES: frames[clips_lib.CLASSES][index][valid]}
            if clips_lib.MASK in frames:
                truth[clips_lib.MASK] = frames[clips_lib.MASK][index]
            task.add_frame(metric, index // frames_per_clip, index % frames_per_clip, truth,
                           {k: v[row:row + 1] for k, v in predictions.items()})
            index += 1
    return metric.result()


def concatenate_frames(clips) -> Dict[str, np.ndarray]:
    """The frames of numpy clips, concatenated, objects padded to the most any clip has.

    Returns:
      dict over the N frames of all clips: `frames` uint8 [N, H, W, 3], `boxes` float32
      [N, K, 4], `classes` int32 [N, K] (-1 padding), `valid` bool [N, K], and `mask` uint8
      [N, H, W] when the clips have it.
    """
    if not clips:
        raise ValueError("no clips to evaluate; the split has no clip of clip_length frames.")
    num_objects = max(clip[clips_lib.CLASSES].shape[1] for clip in clips)
    pad_values = {clips_lib.BOXES: 0.0, clips_lib.CLASSES: -1, clips_lib.VALID: False}
    keys = [clips_lib.FRAMES, *pad_values] + (
        [clips_lib.MASK] if clips_lib.MASK in clips[0] else [])
    parts = {key: [] for key in keys}
    for clip in clips:
        for key in keys:
            value = clip[key]
            if key in pad_values:
                pad = [(0, 0), (0, num_objects - value.shape[1])] + [(0, 0)] * (value.ndim - 2)
                value = np.pad(value, pad, constant_values=pad_values[key])
            parts[key].append(value)
    return {key: np.concatenate(value) for key, value in parts.items()}


def evaluate_stage1(model_dir: str, split: str = "validation", num_clips: int = 32,
                    clip_length: int = 16, batch_size: int = 32) -> Dict[str, Any]:
    """Evaluates the latest stage-1 checkpoint in `model_dir` on clips of its data source.

    A quick validation score of the single-frame model during development: clips at the
    model's frame size, scored there. The paper's numbers on real data come from
    `patchwork_tf.evaluate` (every frame of every video, in the original pixels).

    Args:
      model_dir: a directory written by `stage1.train_stage1`.
      split: "validation" or "test" (or "train"); the real sources read their "val" split.
      num_clips: clips evaluated, all their frames (see `sources.DataSource.evaluation_clips`).
      clip_length: frames per clip.
      batch_size: frames per forward pass.

    Returns:
      dict with `task`, `step` of the checkpoint, and `mAP` and `ap` (detection) or `J`, `F`
      and `J&F` (segmentation).
    """
    model, config, step = stage1.restore_model(model_dir)
    clips = list(config.source.evaluation_clips(split, config.task, num_clips,
                                                config.frame_size, clip_length,
                                                config.max_objects))
    # The frames are a few spread out of each clip, not a sequence: every one is scored.
    task = tasks.get(config.task).for_model(model, config).scoring_every_frame()
    result = evaluate_frames(task, model, concatenate_frames(clips), clip_length, batch_size)
    result.pop("per_sequence", None)
    return {"task": config.task, "step": step, **result}
