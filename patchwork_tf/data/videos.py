"""Evaluation videos: whole videos read one frame at a time (paper Sec. 4).

The official protocols score every frame of every validation video: ImageNet VID's 555
videos (some of them thousands of frames at 1280x720) and DAVIS 2016's 20 sequences. A
`Video` names a video and reads frame `t` on demand, so a stream over it keeps one frame in
memory however long the video is. Frames come at their original resolution and the ground
truth in that frame's coordinates; the runner resizes the frame for the model, and the
metric scores in the original pixels.

One frame is a dict:

| key       | dtype   | shape       | meaning                                              |
|-----------|---------|-------------|------------------------------------------------------|
| `frame`   | uint8   | [H, W, 3]   | RGB frame at its original size                       |
| `boxes`   | float32 | [K, 4]      | objects present, `(ymin, xmin, ymax, xmax)` pixel     |
|           |         |             | edges normalized by (H, W) (`clips` convention)      |
| `classes` | int32   | [K]         | their 0-based class ids                              |
| `mask`    | uint8   | [H, W]      | 0/1 foreground (segmentation sources only)           |
"""
import dataclasses
from typing import Callable, Dict, Iterator

import numpy as np

from patchwork_tf.data import clips as clips_lib

FRAME = "frame"


@dataclasses.dataclass(frozen=True)
class Video:
    """A video of `num_frames` frames, read by `read_frame(t)` (0-based) on demand.

    Attributes:
      video_id: the video's name in its data set (unique within a split).
      num_frames: T.
      read_frame: t -> one frame dict (see the module docstring).
    """

    video_id: str
    num_frames: int
    read_frame: Callable[[int], Dict[str, np.ndarray]]

    def frames(self) -> Iterator[Dict[str, np.ndarray]]:
        """Yields frames 0 .. T - 1 in order."""
        for t in range(self.num_frames):
            yield self.read_frame(t)


def from_clip(clip) -> Video:
    """The video of a clip dict (`patchwork_tf.data.clips` format; numpy or eager tensors).

    Padding and absent objects (`valid` False) are dropped from each frame's ground truth.
    """
    clip = {key: (value.numpy() if hasattr(value, "numpy") else value)
            for key, value in clip.items()}
    frames = np.asarray(clip[clips_lib.FRAMES])
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"clip frames must be uint8 [T, H, W, 3], got {frames.dtype} "
                         f"{frames.shape}.")
    clip_id = clip.get(clips_lib.CLIP_ID, "clip")
    clip_id = clip_id.decode() if isinstance(clip_id, bytes) else str(clip_id)
    valid = np.asarray(clip[clips_lib.VALID], bool) if clips_lib.VALID in clip else None

    def read_frame(t):
        frame = {FRAME: frames[t]}
        if valid is not None:
            frame[clips_lib.BOXES] = np.asarray(clip[clips_lib.BOXES][t], np.float32)[valid[t]]
            frame[clips_lib.CLASSES] = np.asarray(clip[clips_lib.CLASSES][t], np.int32)[valid[t]]
        if clips_lib.MASK in clip:
            frame[clips_lib.MASK] = np.asarray(clip[clips_lib.MASK][t])
        return frame

    return Video(clip_id, int(frames.shape[0]), read_frame)


def as_video(item) -> Video:
    """`item` itself if it is a `Video`, else the video of a clip dict (`from_clip`)."""
    return item if isinstance(item, Video) else from_clip(item)
