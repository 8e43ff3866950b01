"""The attention network's observation `S_t` (paper Sec. 3.1) and the change cue we add to it.

The paper's state is the full-frame memory of one Patchwork Cell (layer L) and the action
history `F_t` of Eq. 1. Neither says where the frame has changed since a window was last
processed: a window's memory is stale exactly where the scene moved, and the memory of an
unprocessed window cannot show that. The **change cue** does, for almost nothing: the frame
is average-pooled to a thumbnail (stride `s`, e.g. 16 x 16 x 3 for a 128-pixel frame), a
thumbnail memory keeps, per window, the thumbnail of the frame it was last processed on, and
the cue of window `a` is the mean absolute difference between the current thumbnail and that
memory over the window (0 for the window just processed). Cost per frame: `H*W*3` additions
for the pooling plus a few per thumbnail pixel, about 0.4 % of a 1/4 window step of
MobileNetV2 alpha 0.35 at 128 pixels.

`AttentionObservation` keeps this per-stream state (history and thumbnail memory) as plain
tensors, so the environment, the evaluation runner, the unrolled fine-tuning of stage 3 and
the exported model build the same observation:

    obs_state = observer.start(frames)                       # key frame
    obs_state = observer.advance(obs_state, frames, actions)  # after each window step
    observation = observer.observation(memory, obs_state)     # dict for the Q-network

With `pool_memory` the observation holds the memory's window means `pooled_memory`
[B, num_actions, C] in place of the memory (`q_network.pool_observation`): the Q-network's
first, parameter-free operation, run before the replay buffer so that it stores what the
network reads.
"""
import dataclasses
import math

import numpy as np
import tensorflow as tf

from patchwork_tf.policy import action_history
from patchwork_tf.policy import q_network

HISTORY = "history"
THUMBNAIL = "thumbnail"
CHANGE = "change"


def thumbnail_stride(grid, largest=8):
    """The largest stride <= `largest` that divides the frame and every window offset."""
    height, width = grid.frame_size
    step = math.gcd(math.gcd(height // grid.m, width // grid.m),
                    math.gcd(*grid.window_size))
    return max(s for s in range(1, largest + 1) if step % s == 0)


@dataclasses.dataclass(frozen=True)
class AttentionObservation:
    """Builds `S_t` for a twin's grid: cell memory, action history and optionally the change cue.

    Attributes:
      grid: the twin's `WindowGrid`.
      alpha: decay of the action history, Eq. 1.
      change_cue: add `change` [num_actions] (mean absolute thumbnail change per window since it
        was last processed, frames in [-1, 1]) to the observation.
      stride: thumbnail stride in frame pixels; None picks `thumbnail_stride(grid)`.
      pool_memory: observe each window's mean memory `pooled_memory` [num_actions, C] in
        place of the memory [Hl, Wl, C] (`q_network.pool_observation`).
    """

    grid: object
    alpha: float = 0.5
    change_cue: bool = True
    stride: int = None
    pool_memory: bool = False

    def __post_init__(self):
        if self.stride is None:
            object.__setattr__(self, "stride", thumbnail_stride(self.grid))
        height, width = self.grid.frame_size
        windows = [self.grid.window(a) for a in range(self.grid.num_actions)]
        for window in windows:
            if any(v % self.stride for v in (window.y0, window.x0, window.h, window.w)):
                raise ValueError(
                    f"Thumbnail stride {self.stride} does not divide window {window} of "
                    f"{self.grid!r}; use a stride that divides the frame / M.")
        rows, cols = height // self.stride, width // self.stride
        masks = np.zeros((len(windows), rows, cols), np.float32)
        for a, window in enumerate(windows):
            scaled = window.scaled(self.stride)
            masks[a, scaled.y0:scaled.y0 + scaled.h, scaled.x0:scaled.x0 + scaled.w] = 1.0
        object.__setattr__(self, "_masks", masks)

    @property
    def num_actions(self):
        return self.grid.num_actions

    @property
    def thumbnail_shape(self):
        """`(H / stride, W / stride, 3)`."""
        height, width = self.grid.frame_size
        return (height // self.stride, width // self.stride, 3)

    def spec(self, memory_shape):
        """The observation spec for a cell memory of shape `(Hl, Wl, C)`."""
        return q_network.observation_spec(memory_shape, self.num_actions, self.change_cue,
                                          pooled=self.pool_memory)

    def thumbnail(self, frames):
        """float32 [B, H / stride, W / stride, 3], the average-pooled frames [B, H, W, 3]."""
        frames = tf.convert_to_tensor(frames, tf.float32)
        return tf.nn.avg_pool2d(frames, self.stride, self.stride, "VALID")

    def state_spec(self, batch_size=None):
        """`tf.TensorSpec`s of the per-stream state: `history` [B, A] and, with the cue,
        `thumbnail` [B, H / stride, W / stride, 3] and `change` [B, A]."""
        spec = {HISTORY: tf.TensorSpec([batch_size, self.num_actions], tf.float32, name=HISTORY)}
        if self.change_cue:
            spec[THUMBNAIL] = tf.TensorSpec((batch_size,) + self.thumbnail_shape, tf.float32,
                                            name=THUMBNAIL)
            spec[CHANGE] = tf.TensorSpec([batch_size, self.num_actions], tf.float32, name=CHANGE)
        return spec

    def initial_state(self, batch_size):
        """Zero state for `batch_size` streams (before any frame)."""
        return {key: tf.zeros(tf.concat([[batch_size], spec.shape[1:]], 0))
                for key, spec in self.state_spec().items()}

    def start(self, frames):
        """The state after a key frame (a full-frame pass) on frames [B, H, W, 3]."""
        frames = tf.convert_to_tensor(frames, tf.float32)
        state = self.initial_state(tf.shape(frames)[0])
        if self.change_cue:
            state[THUMBNAIL] = self.thumbnail(frames)
        return state

    def advance(self, state, frames, actions):
        """The state after each stream processed window `actions` [B] of `frames` [B, H, W, 3]."""
        new_state = {HISTORY: action_history.action_history(state[HISTORY], actions, self.alpha)}
        if self.change_cue:
            current = self.thumbnail(frames)
            mask = tf.gather(tf.constant(self._masks), actions)[..., None] > 0
            new_state[THUMBNAIL] = tf.where(mask, current, state[THUMBNAIL])
            new_state[CHANGE] = self.change(current, new_state[THUMBNAIL])
        return new_state

    def change(self, current_thumbnail, thumbnail_memory):
        """float32 [B, num_actions]: mean |current - memory| over each window's thumbnail."""
        difference = tf.reduce_mean(tf.abs(current_thumbnail - thumbnail_memory), axis=-1)
        weights = self._masks.reshape(self.num_actions, -1)
        weights = tf.constant(weights / weights.sum(axis=1, keepdims=True))
        flat = tf.reshape(difference, [tf.shape(difference)[0], -1])
        return tf.matmul(flat, weights, transpose_b=True)

    def observation(self, memory, state):
        """The Q-network's observation: `memory` [B, Hl, Wl, C] of cell L (with `pool_memory`
        its window means `pooled_memory` [B, num_actions, C]), `history` and, with the cue,
        `change` (0 everywhere right after a key frame)."""
        observation = {q_network.MEMORY: tf.cast(memory, tf.float32), HISTORY: state[HISTORY]}
        if self.change_cue:
            observation[CHANGE] = state[CHANGE]
        if self.pool_memory:
            windows = q_network.windows_in_memory(self.grid, memory.shape[1:])
            observation = q_network.pool_observation(observation, windows)
        return observation

    def flops(self):
        """FLOPs of the cue per frame (0 without it): pooling, difference and window means."""
        if not self.change_cue:
            return 0
        height, width = self.grid.frame_size
        rows, cols, channels = self.thumbnail_shape
        return height * width * channels + 3 * rows * cols * channels + (
            2 * self.num_actions * rows * cols)
