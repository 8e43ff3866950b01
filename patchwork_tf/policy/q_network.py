"""The attention Q-network of Patchwork (paper Sec. 3.1, Fig. 3) as a tf-agents `Network`.

The state `S_t` is the full-frame memory of one chosen Patchwork Cell (layer L) plus the action
history `F_t` of Eq. 1. The memory is average-pooled over each candidate window's region at
layer L's resolution, so every action gets a feature vector of what its window holds; a shared
dense projection (a 1x1 convolution over windows) shrinks it, the per-window vectors are
concatenated in action order with `F_t`, and fully connected layers end in one Q-value per
action, `Q(S_t, a; Theta)`.

With the change cue (`patchwork_tf.policy.observation`), the observation also holds `change`
[num_actions], how much each window's pixels changed since it was last processed. It joins
the concatenation, and a shared per-window scorer adds a term that reads window `a`'s own
projected memory, change and history to `Q(S_t, a)`: the same function for every window, so
"look where it changed" is learned once for all windows rather than once per action. The
network reads the cue as `log(1 + change / CHANGE_FLOOR)`: raw changes are ~0.01 (median
0.009, top-two gap 0.004 on the synthetic benchmark), so a weight of order 1 would hardly
tell windows apart; on the log scale it does, for changes from 1e-3 to the frame's range.
"""
import dataclasses

import tensorflow as tf
import tf_keras
from tf_agents.networks import network
from tf_agents.networks import utils as network_utils
from tf_agents.specs import tensor_spec
from tf_agents.utils import nest_utils


class WindowAveragePooling(tf_keras.layers.Layer):
    """Averages a feature map over each of a fixed list of windows.

    Input: float32 [B, H, W, C]. Output: float32 [B, num_windows, C], window `a` in row `a`.
    `windows` are `(y0, x0, h, w)` in the feature map's pixels (that is, frame pixels divided by
    the layer's stride).
    """

    def __init__(self, windows, **kwargs):
        super().__init__(**kwargs)
        self._windows = _check_windows(windows)

    def call(self, inputs):
        return tf.stack(
            [tf.reduce_mean(inputs[:, y0:y0 + h, x0:x0 + w, :], axis=[1, 2])
             for y0, x0, h, w in self._windows],
            axis=1)

    def get_config(self):
        config = super().get_config()
        config["windows"] = [list(window) for window in self._windows]
        return config


CHANGE_FLOOR = 1e-3  # Mean absolute change (frames in [-1, 1]) the log scale starts at.


def change_feature(change):
    """float32 [..., num_actions]: the cue as the network reads it, `log(1 + change / floor)`."""
    return tf.math.log1p(tf.cast(change, tf.float32) / CHANGE_FLOOR)


def _check_windows(windows):
    windows = [tuple(int(v) for v in window) for window in windows]
    if not windows:
        raise ValueError("windows must list one (y0, x0, h, w) per action, got an empty list.")
    for window in windows:
        if len(window) != 4 or window[0] < 0 or window[1] < 0 or window[2] <= 0 or window[3] <= 0:
            raise ValueError(
                f"Each window must be (y0, x0, h, w) with y0, x0 >= 0 and h, w > 0, got {window}.")
    return windows


class AttentionQNetwork(network.Network):
    """Q-values of every attention window from a cell memory and the action history.

    Observation (per batch element; any outer batch dims are squashed):
      `memory`: float32 [Hl, Wl, C], the full-frame memory of the Patchwork Cell at layer L.
      `history`: float32 [num_actions], `F_t` of Eq. 1.
    Output: float32 [..., num_actions] Q-values, and the (empty) network state.

    Layers: `WindowAveragePooling` -> shared Dense(`projection_units`, relu) per window ->
    flatten and concatenate with `history` -> Dense(`fc_layer_params`, relu) ->
    Dense(num_actions).
    """

    def __init__(self,
                 input_tensor_spec,
                 action_spec,
                 windows,
                 projection_units=16,
                 fc_layer_params=(64,),
                 name="AttentionQNetwork"):
        """Builds the network.

        Args:
          input_tensor_spec: dict(`memory`=TensorSpec [Hl, Wl, C] float32, `history`=TensorSpec
            [num_actions] float32), the environment's observation spec.
          action_spec: scalar integer `BoundedTensorSpec` with values 0 .. num_actions - 1.
          windows: `num_actions` tuples `(y0, x0, h, w)`, action `a`'s window in the memory's
            pixels (frame pixels / layer L's stride), inside [0, Hl) x [0, Wl).
          projection_units: width of the shared per-window projection.
          fc_layer_params: widths of the fully connected layers before the Q-value layer.
          name: the network's name.

        Raises:
          ValueError: specs of the wrong structure or shape, windows outside the memory, or
            counts of windows, history entries and actions that disagree.
        """
        if not isinstance(input_tensor_spec, dict) or set(input_tensor_spec) not in (
            {"memory", "history"}, {"memory", "history", "change"}):
            raise ValueError(
                "input_tensor_spec must be dict(memory=TensorSpec([Hl, Wl, C]), "
                "history=TensorSpec([num_actions])[, change=TensorSpec([num_actions])]), got "
                f"{input_tensor_spec}.")
        memory_spec = input_tensor_spec["memory"]
        history_spec = input_tensor_spec["history"]
        if memory_spec.shape.rank != 3 or not memory_spec.shape.is_fully_defined():
            raise ValueError(f"memory spec must be a fully defined [Hl, Wl, C], got {memory_spec}.")
        if history_spec.shape.rank != 1:
            raise ValueError(f"history spec must be [num_actions], got {history_spec}.")
        flat_action_spec = tf.nest.flatten(action_spec)
        if len(flat_action_spec) != 1 or flat_action_spec[0].shape.rank not in (0, None) or (
            not flat_action_spec[0].dtype.is_integer):
            raise ValueError(f"action_spec must be one scalar integer spec, got {action_spec}.")
        action_spec = flat_action_spec[0]
        num_actions = int(action_spec.maximum) - int(action_spec.minimum) + 1
        windows = _check_windows(windows)
        height, width, _ = memory_spec.shape.as_list()
        for action, (y0, x0, h, w) in enumerate(windows):
            if y0 + h > height or x0 + w > width:
                raise ValueError(
                    f"Window {action} = (y0={y0}, x0={x0}, h={h}, w={w}) reaches outside the "
                    f"{height}x{width} memory; give windows in the memory's pixels (frame pixels "
                    "divided by the layer's stride).")
        if len(windows) != num_actions or history_spec.shape[0] != num_actions:
            raise ValueError(
                f"The action spec has {num_actions} actions, but {len(windows)} windows and a "
                f"history of {history_spec.shape[0]} entries were given; they must agree.")
        change_cue = "change" in input_tensor_spec
        if change_cue and input_tensor_spec["change"].shape != (num_actions,):
            raise ValueError(f"change spec must be [num_actions={num_actions}], got "
                             f"{input_tensor_spec['change']}.")

        super().__init__(input_tensor_spec=input_tensor_spec, state_spec=(), name=name)
        self._windows = windows
        self._change_cue = change_cue
        self._pool = WindowAveragePooling(windows, name="window_pool")
        self._projection = tf_keras.layers.Dense(
            projection_units, activation="relu", name="window_projection")
        self._flatten = tf_keras.layers.Flatten(name="flatten_windows")
        self._concat = tf_keras.layers.Concatenate(axis=-1, name="concat_history")
        self._fc_layers = [
            tf_keras.layers.Dense(units, activation="relu", name=f"fc_{i}")
            for i, units in enumerate(fc_layer_params)
        ]
        self._q_value_layer = tf_keras.layers.Dense(
            num_actions,
            kernel_initializer=tf_keras.initializers.RandomUniform(minval=-0.03, maxval=0.03),
            bias_initializer=tf_keras.initializers.Constant(-0.2),
            name="q_values")
        self._window_scorer = tf_keras.layers.Dense(
            1, kernel_initializer="zeros", name="window_scorer") if change_cue else None

    @property
    def windows(self):
        """The windows `(y0, x0, h, w)` in memory pixels, one per action."""
        return list(self._windows)

    def call(self, observation, step_type=None, network_state=(), training=False):
        del step_type
        outer_rank = nest_utils.get_outer_rank(observation, self.input_tensor_spec)
        batch_squash = network_utils.BatchSquash(outer_rank)
        memory = batch_squash.flatten(tf.cast(observation["memory"], tf.float32))
        history = batch_squash.flatten(tf.cast(observation["history"], tf.float32))
        per_window = self._projection(self._pool(memory), training=training)
        inputs = [self._flatten(per_window), history]
        if self._change_cue:
            change = change_feature(batch_squash.flatten(observation["change"]))
            inputs.append(change)
        features = self._concat(inputs)
        for layer in self._fc_layers:
            features = layer(features, training=training)
        q_values = self._q_value_layer(features, training=training)
        if self._change_cue:
            window_inputs = tf.concat([per_window, change[..., None], history[..., None]], axis=-1)
            q_values += tf.squeeze(self._window_scorer(window_inputs, training=training), -1)
        return batch_squash.unflatten(q_values), network_state


def windows_in_memory(grid, memory_shape):
    """Each action's window of a `WindowGrid` in the pixels of a cell memory.

    Args:
      grid: the `patchwork_tf.WindowGrid` of the twin.
      memory_shape: (Hl, Wl) or (Hl, Wl, C) of the memory; its stride is frame size / Hl.

    Returns:
      A list of `(y0, x0, h, w)` in memory pixels, one per action, for `AttentionQNetwork`.

    Raises:
      ValueError: a memory whose size is not the frame size over one integer stride, or a grid
        whose windows do not fall on whole cells of that stride.
    """
    rows, cols = (int(v) for v in memory_shape[:2])
    height, width = grid.frame_size
    stride = height // rows
    if rows * stride != height or cols * stride != width:
        raise ValueError(
            f"A {rows}x{cols} memory is not a {height}x{width} frame at one integer stride; "
            "choose a cell whose memory has the frame's size divided by its stride.")
    return [dataclasses.astuple(grid.window_in_map(action, stride, (rows, cols)))
            for action in range(grid.num_actions)]


def observation_spec(memory_shape, num_actions, change_cue=False):
    """The observation spec the `AttentionQNetwork` reads.

    Args:
      memory_shape: (Hl, Wl, C) of the chosen cell's memory, without the batch dim.
      num_actions: the number of attention windows.
      change_cue: add the change cue of `patchwork_tf.policy.observation`.

    Returns:
      dict(memory=TensorSpec [Hl, Wl, C] float32, history=BoundedTensorSpec [num_actions]
      float32 in [0, 1]) and with the cue change=BoundedTensorSpec [num_actions] float32 in
      [0, 2] (mean absolute difference of frames in [-1, 1]).
    """
    spec = {
        "memory": tensor_spec.TensorSpec(tuple(memory_shape), tf.float32, name="memory"),
        "history": tensor_spec.BoundedTensorSpec(
            (num_actions,), tf.float32, minimum=0.0, maximum=1.0, name="history"),
    }
    if change_cue:
        spec["change"] = tensor_spec.BoundedTensorSpec(
            (num_actions,), tf.float32, minimum=0.0, maximum=2.0, name="change")
    return spec


def window_action_spec(num_actions):
    """The action spec of the attention policy: a window index in 0 .. num_actions - 1."""
    return tensor_spec.BoundedTensorSpec(
        (), tf.int32, minimum=0, maximum=num_actions - 1, name="window")


def for_twin(twin, observed_cell, change_cue=False):
    """The `AttentionQNetwork` of a Patchwork twin, variables created (not trained).

    It reads `observed_cell`'s memory (and the change cue with `change_cue`) and scores the
    windows of the twin's grid. Its variables do not depend on the frame size, so a twin of
    another resolution restores the same checkpoint.
    """
    grid = twin.grid
    spec = observation_spec(twin.view_shape(observed_cell), grid.num_actions, change_cue)
    network = AttentionQNetwork(spec, window_action_spec(grid.num_actions),
                                windows_in_memory(grid, spec["memory"].shape))
    network.create_variables()
    return network
