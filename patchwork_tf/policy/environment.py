"""The video stream as a tf-agents environment for the attention policy (paper Sec. 3.1, 3.3).

An episode is one clip. At the clip's first frame the Patchwork twin makes a full-frame pass
(a key frame) and the time step is FIRST. Each action `A_t` is the window the twin processes
on the next frame `t`; the new time step carries

* observation `S_t`: dict(`memory`: the full-frame memory of cell L after the step,
  `history`: `F_t` of Eq. 1, and with `change_cue` the per-window `change` of
  `patchwork_tf.policy.observation`); with `pool_memory`, `pooled_memory` [num_actions, C],
  the memory's window means, in place of `memory` (what a replay buffer should store: the
  Q-network reads nothing else of the memory),
* reward `R_t = max(0, f(gt_t, p_t) - f(gt_t, p_{t-1}))` (Eq. 2): what the fresh window added
  to the task metric `f` over keeping the previous prediction (`reward="difference"`: without
  the clipping at 0, `rewards.improvement_reward`),
* step type LAST at the clip's last frame. The clip's end is a cut of an endless stream, not a
  terminal state, so the discount stays 1 there (a truncation); tf-agents' DQN loss masks
  the LAST -> FIRST transition that spans two clips.

A `step` after LAST starts the next clip and ignores its action, as `TFPyEnvironment` does.

This is a `TFEnvironment`, not a wrapped `PyEnvironment`: the twin, the metric and the clip
all live in TensorFlow, so a whole collection loop (`DynamicStepDriver`) compiles into one
graph with no per-step Python or numpy round trip, and B clips step in one batched call of
the twin. All streams of a batch share the clip length, so they start and end together.
"""
import tensorflow as tf
from tf_agents.environments import tf_environment
from tf_agents.trajectories import time_step as ts

from patchwork_tf.data import clips as clips_lib
from patchwork_tf.metrics import rewards
from patchwork_tf.policy import observation as observation_lib
from patchwork_tf.policy import q_network
from patchwork_tf.policy import stream


class VideoStreamEnvironment(tf_environment.TFEnvironment):
    """Batched clips streamed through a Patchwork twin, one attention window per frame.

    The twin must follow the Patchwork twin API (`patchwork_tf.patchwork_model`):
    `reset_states(batch_size)`, `warm_start(frames) -> out`, `step(frames, actions) -> out`,
    `memory(cell_name) -> float32 [B, Hl, Wl, C]`, `cell_names`. `warm_start` must overwrite
    every memory (so no `reset_states` is needed between clips), and the structure and shapes
    of `out` must not change from step to step.
    """

    def __init__(self, twin, clips, cell_name, metric_fn, num_actions, alpha=0.5,
                 preprocess_fn=clips_lib.preprocess_frames, change_cue=False,
                 pool_memory=False, reward=rewards.CLIPPED):
        """Builds the environment and starts the first clip.

        Args:
          twin: a Patchwork twin (see the class docstring).
          clips: a `tf.data.Dataset` (or an iterator over one) of batched clip dicts with fully
            defined shapes: `frames` uint8 [B, T, H, W, 3] with T >= 2, and per-frame ground
            truth with leading dims [B, T] (`boxes`, `classes`, `valid`, `mask`, ...), as
            `patchwork_tf/data/clips.py` defines them. Batch with `drop_remainder=True` and
            `repeat()` the dataset for long runs.
          cell_name: the cell (layer L) whose memory the Q-network reads; one of
            `twin.cell_names`.
          metric_fn: the task metric `f(gt, predictions) -> float32 [B]`, where `gt` is the
            dict of per-frame ground-truth fields at frame t (each [B, ...], `frames` excluded)
            and `predictions` is the twin's output. Detection: Eq. 3
            (`patchwork_tf.metrics.rewards.detection_overlap`); segmentation: frame J
            (`rewards.segmentation_overlap`).
          num_actions: number of attention windows, the twin's grid's `num_actions`.
          alpha: decay of the action history, Eq. 1.
          preprocess_fn: maps uint8 frames [B, H, W, 3] to the twin's input.
          change_cue: add the change cue to the observation (`policy.observation`).
          pool_memory: observe the memory's window means `pooled_memory` [B, num_actions, C]
            instead of the memory [B, Hl, Wl, C] (`q_network.pool_observation`).
          reward: `rewards.REWARDS`: "clipped" (Eq. 2) or "difference" (ours, unclipped).

        Raises:
          ValueError: a clip spec without the required shapes, an unknown cell, or a metric that
            does not return [B] values.
        """
        if isinstance(clips, tf.data.Dataset):
            clips = iter(clips)
        if not isinstance(clips, tf.data.Iterator):
            raise ValueError(
                f"clips must be a tf.data.Dataset or an iterator over one, got {type(clips)}; "
                "wrap Python clips with tf.data.Dataset.from_generator.")
        spec = clips.element_spec
        frames_spec = spec.get("frames") if isinstance(spec, dict) else None
        if (frames_spec is None or frames_spec.dtype != tf.uint8
            or frames_spec.shape.rank != 5 or not frames_spec.shape.is_fully_defined()
            or frames_spec.shape[-1] != 3 or frames_spec.shape[1] < 2):
            raise ValueError(
                "clips must yield dicts with `frames` uint8 [B, T, H, W, 3], fully defined and "
                f"T >= 2, got {frames_spec if frames_spec is not None else spec}; batch the clip "
                "dataset with drop_remainder=True.")
        batch_size, clip_length = frames_spec.shape[:2]
        if cell_name not in twin.cell_names:
            raise ValueError(
                f"cell_name {cell_name!r} is not a cell of the twin; choose one of "
                f"{list(twin.cell_names)}.")
        gt_names = []
        for name, field in spec.items():
            if name == "frames" or field.dtype == tf.string:
                continue
            if field.shape.rank < 2 or field.shape[:2] != frames_spec.shape[:2] or (
                not field.shape.is_fully_defined()):
                raise ValueError(
                    f"Clip field {name!r} has shape {field.shape}; per-frame ground truth must be "
                    f"fully defined with leading dims [B, T] = {frames_spec.shape[:2]}.")
            gt_names.append(name)

        self._twin = twin
        self._clips = clips
        self._cell_name = cell_name
        self._metric_fn = metric_fn
        self._preprocess_fn = preprocess_fn
        self._clip_length = clip_length
        self._gt_names = gt_names

        # One eager pass on blank frames builds the twin's variables outside any tf.function and
        # shows the shapes of its memory and predictions.
        twin.reset_states(batch_size)
        blank = preprocess_fn(tf.zeros(frames_spec.shape[:1] + frames_spec.shape[2:], tf.uint8))
        predictions = twin.warm_start(blank)
        stepped = twin.step(blank, tf.zeros([batch_size], tf.int32))
        tf.nest.assert_same_structure(predictions, stepped)
        memory = twin.memory(cell_name)
        if memory.shape.rank != 4 or memory.shape[0] != batch_size:
            raise ValueError(
                f"twin.memory({cell_name!r}) must be [B={batch_size}, Hl, Wl, C], got "
                f"{memory.shape}.")

        self._clip = {name: tf.Variable(tf.zeros(spec[name].shape, spec[name].dtype),
                                        trainable=False, name=f"clip_{name}")
                      for name in ["frames"] + gt_names}
        self._predictions = tf.nest.map_structure(
            lambda t: tf.Variable(t, trainable=False), predictions)
        self._frame_index = tf.Variable(0, dtype=tf.int32, trainable=False, name="frame_index")
        if twin.grid.num_actions != num_actions:
            raise ValueError(f"num_actions={num_actions} but the twin's grid has "
                             f"{twin.grid.num_actions} windows.")
        self._observer = observation_lib.AttentionObservation(
            twin.grid, alpha, change_cue, pool_memory=pool_memory)
        self._observer_state = {
            key: tf.Variable(tf.zeros([batch_size] + spec.shape[1:]), trainable=False, name=key)
            for key, spec in self._observer.state_spec().items()}
        self._reward = tf.Variable(tf.zeros([batch_size]), trainable=False, name="reward")
        if reward not in rewards.REWARDS:
            raise ValueError(f"reward must be one of {rewards.REWARDS}, got {reward!r}.")
        self._reward_kind = reward

        observation_spec = self._observer.spec(memory.shape[1:])
        super().__init__(ts.time_step_spec(observation_spec),
                         q_network.window_action_spec(num_actions), batch_size)

        gt = self._ground_truth(0)
        score = metric_fn(gt, predictions)
        if score.shape != (batch_size,):
            raise ValueError(f"metric_fn must return float32 [B={batch_size}], got {score.shape}.")
        self._reset()

    @property
    def clip_length(self):
        """T, the number of frames of every clip; an episode has T - 1 actions."""
        return self._clip_length

    @property
    def clip(self):
        """The current clip's frames and ground truth, dict of variables [B, T, ...]."""
        return dict(self._clip)

    def _ground_truth(self, index):
        return {name: self._clip[name][:, index] for name in self._gt_names}

    def _frames(self, index):
        return self._preprocess_fn(self._clip["frames"][:, index])

    def _current_time_step(self):
        index = self._frame_index.value()
        batch = [self.batch_size]
        step_type = tf.where(
            tf.equal(index, 0), ts.StepType.FIRST,
            tf.where(tf.equal(index, self._clip_length - 1), ts.StepType.LAST, ts.StepType.MID))
        return ts.TimeStep(
            step_type=tf.fill(batch, tf.cast(step_type, tf.int32)),
            reward=self._reward.value(),
            discount=tf.ones(batch, tf.float32),
            observation=stream.observe(self._twin, self._observer, None,
                                       self._observer_state_value(), self._cell_name))

    def _reset(self):
        clip = self._clips.get_next()
        for name, variable in self._clip.items():
            variable.assign(clip[name])
        start = stream.stream_start(self._twin, self._observer, self._frames(0), key_frame=True)
        tf.nest.map_structure(lambda v, t: v.assign(t), self._predictions, start.outputs)
        self._frame_index.assign(0)
        self._assign_observer_state(start.observer_state)
        self._reward.assign(tf.zeros_like(self._reward))
        return self._current_time_step()

    def _advance(self, action):
        index = self._frame_index + 1
        step = stream.stream_step(self._twin, self._observer, self._frames(index), action, None,
                                  self._observer_state_value())
        predictions = step.outputs
        gt = self._ground_truth(index)
        previous = tf.nest.map_structure(lambda v: v.value(), self._predictions)
        self._reward.assign(rewards.improvement_reward(
            self._metric_fn(gt, predictions), self._metric_fn(gt, previous),
            self._reward_kind))
        tf.nest.map_structure(lambda v, t: v.assign(t), self._predictions, predictions)
        self._assign_observer_state(step.observer_state)
        self._frame_index.assign(index)
        return self._current_time_step()

    def _observer_state_value(self):
        return {key: v.value() for key, v in self._observer_state.items()}

    def _assign_observer_state(self, state):
        for key, variable in self._observer_state.items():
            variable.assign(state[key])

    def _step(self, action):
        action = tf.convert_to_tensor(action, tf.int32)
        return tf.cond(tf.equal(self._frame_index, self._clip_length - 1),
                       self._reset, lambda: self._advance(action))
