"""A tiny stand-in for the Patchwork twin, with the twin API, for policy tests.

Its single memory holds, per pixel, the first channel of the last frame seen there: a window
step copies the window of the new frame in, the rest stays stale. Its prediction is a
foreground mask logit map (the memory itself: > 0 is foreground, frames in [-1, 1]), so how
good a prediction is depends on which windows were looked at.
"""
import dataclasses

import numpy as np
import tensorflow as tf


class FakeTwin:
    """Twin API: grid, reset_states, warm_start, step, memory, cell_names; and the pure API
    over explicit state: initial_state, warm_start_fn, step_fn, memory_view."""

    cell_names = ("pixels", "pixels_half")

    def __init__(self, grid):
        """grid: the `WindowGrid` whose windows the steps process."""
        self.grid = grid
        frame_size = grid.frame_size
        height, width = frame_size
        masks = np.zeros([grid.num_actions, height, width, 1], np.float32)
        for action in range(grid.num_actions):
            y0, x0, h, w = dataclasses.astuple(grid.window(action))
            masks[action, y0:y0 + h, x0:x0 + w] = 1.0
        self._window_masks = tf.constant(masks)
        self._frame_size = frame_size
        self._memory = None

    def initial_state(self, batch_size):
        return {"pixels": tf.zeros([batch_size, *self._frame_size, 1])}

    def warm_start_fn(self, frames):
        memory = frames[..., :1]
        return {"mask_logits": memory[..., 0]}, {"pixels": memory}

    def step_fn(self, frames, actions, state):
        inside = tf.gather(self._window_masks, actions) > 0
        memory = tf.where(inside, frames[..., :1], state["pixels"])
        return {"mask_logits": memory[..., 0]}, {"pixels": memory}

    def memory_view(self, state, cell_name):
        return _view(state["pixels"], cell_name)

    def reset_states(self, batch_size):
        self._memory = tf.Variable(tf.zeros([batch_size, *self._frame_size, 1]), trainable=False)

    def warm_start(self, frames):
        self._memory.assign(frames[..., :1])
        return self._predict()

    def step(self, frames, actions):
        inside = tf.gather(self._window_masks, actions) > 0
        self._memory.assign(tf.where(inside, frames[..., :1], self._memory))
        return self._predict()

    def memory(self, cell_name):
        return _view(self._memory.value(), cell_name)

    def _predict(self):
        return {"mask_logits": self._memory[..., 0]}


def _view(memory, cell_name):
    if cell_name == "pixels":
        return memory
    if cell_name == "pixels_half":
        return tf.nn.avg_pool2d(memory, 2, 2, "VALID")
    raise ValueError(f"unknown cell {cell_name!r}")


def frame_iou(gt, predictions):
    """Frame J: IoU of the predicted foreground with `gt['mask']`, 1 when both are empty."""
    pred = predictions["mask_logits"] > 0
    true = gt["mask"] > 0
    inter = tf.reduce_sum(tf.cast(pred & true, tf.float32), axis=[1, 2])
    union = tf.reduce_sum(tf.cast(pred | true, tf.float32), axis=[1, 2])
    return tf.where(union > 0, inter / tf.maximum(union, 1.0), 1.0)


def jumping_square_clips(num_batches, clips_per_batch, frames_per_clip, size, seed=0, hold=1):
    """A repeating tf.data of batches of clips {"frames": uint8 [C, T, size, size, 3], "mask":
    uint8 [C, T, size, size]}: a 2x2 square jumps to a random place every `hold` frames."""
    rng = np.random.default_rng(seed)
    masks = np.zeros([num_batches, clips_per_batch, frames_per_clip, size, size], np.uint8)
    for index in np.ndindex(num_batches, clips_per_batch, frames_per_clip):
        if index[-1] % hold == 0:
            y, x = rng.integers(0, size - 1, size=2)
        masks[index][y:y + 2, x:x + 2] = 1
    frames = np.repeat(masks[..., None] * 255, 3, axis=-1).astype(np.uint8)
    return tf.data.Dataset.from_tensor_slices({"frames": frames, "mask": masks}).repeat()
