"""Single-frame evaluation of stage-1 models on clips of their data source (Sec. 4.1, 4.2).

Detection: SSDLite outputs -> `patchwork_tf.ops.postprocess` (decode, sigmoid scores,
combined NMS) -> VID mAP@0.5 (`patchwork_tf.metrics.vid_map.VidMap`). Segmentation: the
foreground probability thresholded at 0.5 -> DAVIS J and F per clip, averaged over clips
(`patchwork_tf.metrics.davis.DavisJF`). Every frame of every clip is evaluated.
"""
from typing import Any, Dict

import numpy as np
import tensorflow as tf
import tf_keras

from patchwork_tf.data import clips as clips_lib
from patchwork_tf.metrics import davis
from patchwork_tf.metrics import vid_map
from patchwork_tf.ops import postprocess
from patchwork_tf.training import stage1
from patchwork_tf.training import stage1_data


def evaluate_detector(model: tf_keras.Model, anchors: tf.Tensor, frames: Dict[str, np.ndarray],
                      num_classes: int, batch_size: int = 32) -> Dict[str, Any]:
    """VID mAP@0.5 of an SSDLite model on frames.

    Args:
      model: from `ssdlite_mobilenet_v2` with a background column.
      anchors: float32 [A, 4], the model's anchors (`anchors.anchors_for_model`).
      frames: dict from `stage1_data.synthetic_frames` (uses frames, boxes, classes, valid).
      num_classes: object classes C.
      batch_size: frames per forward pass.

    Returns:
      `{"mAP": float, "ap": float64 [C]}` as `VidMap.result`.
    """
    height, width = frames["frames"].shape[1:3]

    @tf.function
    def detect(images):
        outputs = model(images, training=False)
        return postprocess.postprocess(outputs["box_encodings"], outputs["class_logits"], anchors)

    metric = vid_map.VidMap(num_classes)
    for images, labels in stage1_data.evaluation_dataset(frames, batch_size):
        metric.add_batch((height, width), labels["boxes"], labels["classes"], labels["valid"],
                         detect(images))
    return metric.result()


def evaluate_segmenter(model: tf_keras.Model, frames: Dict[str, np.ndarray],
                       frames_per_clip: int, batch_size: int = 32) -> Dict[str, Any]:
    """DAVIS J and F of a segmenter on frames, clip by clip.

    Args:
      model: from `deeplabv3_mobilenet_v2`.
      frames: dict from `stage1_data.synthetic_frames` (uses frames and mask); frame `i`
        belongs to clip `i // frames_per_clip`.
      frames_per_clip: frames of each clip in `frames`.
      batch_size: frames per forward pass.

    Returns:
      `DavisJF.result()`: `{"J", "F", "J&F", "per_sequence"}`.
    """

    @tf.function
    def segment(images):
        return model(images, training=False)["mask_logits"][..., 0] > 0.0

    predictions = np.concatenate([segment(images).numpy() for images, _ in
                                  stage1_data.evaluation_dataset(frames, batch_size)])
    # The frames are a few spread out of each clip, not a sequence: every one is scored.
    metric = davis.DavisJF(frame_selection=davis.ALL_FRAMES)
    for start in range(0, len(predictions), frames_per_clip):
        metric.add(start // frames_per_clip, predictions[start:start + frames_per_clip],
                   frames["mask"][start:start + frames_per_clip])
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
    frames = concatenate_frames(clips)
    if config.task == "detection":
        result = evaluate_detector(model, stage1.detection_anchors(model, config), frames,
                                   config.num_classes, batch_size)
    else:
        result = evaluate_segmenter(model, frames, clip_length, batch_size)
        result.pop("per_sequence")
    return {"task": config.task, "step": step, **result}
