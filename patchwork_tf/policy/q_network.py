"""The attention Q-network of Patchwork (paper Sec. 3.1, Fig. 3) as a tf-agents `Network`.

The state `S_t` is the full-frame memory of one chosen Patchwork Cell (layer L) plus the action
history `F_t` of Eq. 1. The memory is average-pooled over each candidate window's region at
layer L's resolution, so every action gets a feature vector of what its window holds; a shared
dense projection (a 1x1 convolution over windows) shrinks it, the per-window vectors are
concatenated in action order with `F_t`, and fully connected layers end in one Q-value per
action, `Q(S_t, a; Theta)`.

The paper (Sec. 3.1, Fig. 3) maps the memory "to a one-dimensional feature vector", concatenates
it with `F_t` and applies "a final fully-connected layer" for the Q-values. `Q_NETWORKS` names
the two heads on the concatenation: "paper", that one Q-value layer alone, and "ours", which adds
one hidden fully connected layer of 64 ReLU units before it (our default since the first
runs). The mapping of the memory to the vector (window pooling and the shared projection) is
ours in both, as the paper does not specify it. "window" (ours) has no layer that mixes
windows: each window's Q-value is a small network of its own features alone (its projected
memory, change and history), the same network for every window.

The window pooling is fixed (no parameters), so it can run before the replay buffer:
`pool_observation` replaces the memory [Hl, Wl, C] by the per-window means `pooled_memory`
[num_actions, C] (9 x 576 floats instead of 24 x 24 x 576 at 384 pixels, M=4, N=2), and the
network reads either form with the same weights and the same Q-values.

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


MEMORY = "memory"
POOLED_MEMORY = "pooled_memory"

# The heads: hidden layer widths, on the concatenation of window features and history, or for
# the per-window variants (`PER_WINDOW`) on each window's own features.
Q_NETWORKS = {"ours": (64,), "paper": (), "window": (16,)}
PER_WINDOW = ("window",)

CHANGE_FLOOR = 1e-3  # Mean absolute change (frames in [-1, 1]) the log scale starts at.


def change_feature(change):
    """float32 [..., num_actions]: the cue as the network reads it, `log(1 + change / floor)`."""
    return tf.math.log1p(tf.cast(change, tf.float32) / CHANGE_FLOOR)


def pool_memory(memory, windows):
    """The per-window means of a memory with any outer dims.

    Args:
      memory: float [..., Hl, Wl, C], the full-frame memory of cell L.
      windows: `(y0, x0, h, w)` per action, in the memory's pixels.

    Returns:
      float32 [..., num_actions, C]: row `a` is the mean of window `a`'s region.
    """
    memory = tf.convert_to_tensor(memory, tf.float32)
    inner = memory.shape[-3:]
    outer = tf.shape(memory)[:-3]
    pooled = _window_means(tf.reshape(memory, [-1] + inner.as_list()), _check_windows(windows))
    return tf.reshape(pooled, tf.concat([outer, [len(windows), inner[-1]]], 0))


def _window_means(memory, windows):
    """float32 [B, num_windows, C]: the mean of `memory` [B, H, W, C] over each window."""
    return tf.stack([tf.reduce_mean(memory[:, y0:y0 + h, x0:x0 + w, :], axis=[1, 2])
                     for y0, x0, h, w in windows], axis=1)


def pool_observation(observation, windows):
    """`observation` with its `memory` [..., Hl, Wl, C] replaced by `pooled_memory`
    [..., num_actions, C] (`pool_memory`), the other entries as they are."""
    pooled = {key: value for key, value in observation.items() if key != MEMORY}
    pooled[POOLED_MEMORY] = pool_memory(observation[MEMORY], windows)
    return pooled


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

    Observation (per batch element; any outer batch dims are squashed), either form:
      full, `observation_spec`: `memory` float32 [Hl, Wl, C], the full-frame memory of the
        Patchwork Cell at layer L;
      pooled, `input_tensor_spec`: `pooled_memory` float32 [num_actions, C], its window means
        (`pool_observation`, what the replay buffer stores);
      and in both `history` float32 [num_actions], `F_t` of Eq. 1 (and `change` with the cue).
    Output: float32 [..., num_actions] Q-values `Q(S_t, a; Theta)`, and the (empty) network
    state. A full observation is pooled first, so both forms give the same Q-values.

    Layers: window means (`pool_memory`, fixed) -> shared Dense(`projection_units`, relu) per
    window -> flatten and concatenate with `history` -> Dense(`fc_layer_params`, relu) ->
    Dense(num_actions). The paper's head (Sec. 3.1) has `fc_layer_params=()`.
    """

    def __init__(self,
                 input_tensor_spec,
                 action_spec,
                 windows,
                 projection_units=16,
                 fc_layer_params=Q_NETWORKS["ours"],
                 per_window=False,
                 name="AttentionQNetwork"):
        """Builds the network.

        Args:
          input_tensor_spec: the full observation spec, dict(`memory`=TensorSpec [Hl, Wl, C]
            float32, `history`=TensorSpec [num_actions] float32[, `change`=TensorSpec
            [num_actions]]) of `observation_spec`; the network's `input_tensor_spec` is its
            pooled form (`pooled_spec`).
          action_spec: scalar integer `BoundedTensorSpec` with values 0 .. num_actions - 1.
          windows: `num_actions` tuples `(y0, x0, h, w)`, action `a`'s window in the memory's
            pixels (frame pixels / layer L's stride), inside [0, Hl) x [0, Wl).
          projection_units: width of the shared per-window projection.
          fc_layer_params: widths of the hidden fully connected layers before the Q-value
            layer (`Q_NETWORKS`: "ours" (64,), "paper" ()).
          per_window: score each window from its own features alone: `Q(S_t, a)` =
            Dense(1)(Dense(`fc_layer_params`, relu)([projected memory of a, history_a[,
            log change_a]])), one network shared by all windows and no layer across windows.
          name: the network's name.

        Raises:
          ValueError: specs of the wrong structure or shape, windows outside the memory, or
            counts of windows, history entries and actions that disagree.
        """
        if not isinstance(input_tensor_spec, dict) or set(input_tensor_spec) not in (
            {MEMORY, "history"}, {MEMORY, "history", "change"}):
            raise ValueError(
                "input_tensor_spec must be dict(memory=TensorSpec([Hl, Wl, C]), "
                "history=TensorSpec([num_actions])[, change=TensorSpec([num_actions])]), got "
                f"{input_tensor_spec}.")
        memory_spec = input_tensor_spec[MEMORY]
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

        super().__init__(input_tensor_spec=pooled_spec(input_tensor_spec, num_actions),
                         state_spec=(), name=name)
        self._observation_spec = dict(input_tensor_spec)
        self._windows = windows
        self._fc_layer_params = tuple(int(units) for units in fc_layer_params)
        self._change_cue = change_cue
        self._per_window = bool(per_window)
        self._projection = tf_keras.layers.Dense(
            projection_units, activation="relu", name="window_projection")
        self._flatten = tf_keras.layers.Flatten(name="flatten_windows")
        self._concat = tf_keras.layers.Concatenate(axis=-1, name="concat_history")
        self._fc_layers = [
            tf_keras.layers.Dense(units, activation="relu", name=f"fc_{i}")
            for i, units in enumerate(self._fc_layer_params)
        ]
        self._q_value_layer = tf_keras.layers.Dense(
            num_actions,
            kernel_initializer=tf_keras.initializers.RandomUniform(minval=-0.03, maxval=0.03),
            bias_initializer=tf_keras.initializers.Constant(-0.2),
            name="q_values")
        self._window_scorer = tf_keras.layers.Dense(
            1, kernel_initializer="zeros", name="window_scorer") if change_cue else None
        if self._per_window:
            self._q_value_layer = tf_keras.layers.Dense(
                1, kernel_initializer=tf_keras.initializers.RandomUniform(-0.03, 0.03),
                bias_initializer=tf_keras.initializers.Constant(-0.2), name="window_q_value")
            self._window_scorer = None

    @property
    def windows(self):
        """The windows `(y0, x0, h, w)` in memory pixels, one per action."""
        return list(self._windows)

    @property
    def observation_spec(self):
        """The full observation spec (with `memory` [Hl, Wl, C]) the network also reads."""
        return dict(self._observation_spec)

    @property
    def fc_layer_params(self):
        """The hidden layers' widths between the concatenation and the Q-values."""
        return self._fc_layer_params

    def __call__(self, inputs, *args, **kwargs):
        """Q-values of a full (`memory`) or pooled (`pooled_memory`) observation; a full one
        is pooled (`pool_observation`) before the tf-agents spec check and `call`."""
        if isinstance(inputs, dict) and MEMORY in inputs:
            inputs = pool_observation(inputs, self._windows)
        return super().__call__(inputs, *args, **kwargs)

    def call(self, observation, step_type=None, network_state=(), training=False):
        del step_type
        outer_rank = nest_utils.get_outer_rank(observation, self.input_tensor_spec)
        batch_squash = network_utils.BatchSquash(outer_rank)
        pooled = batch_squash.flatten(tf.cast(observation[POOLED_MEMORY], tf.float32))
        history = batch_squash.flatten(tf.cast(observation["history"], tf.float32))
        per_window = self._projection(pooled, training=training)
        if self._per_window:
            return batch_squash.unflatten(self._score_windows(
                per_window, history, batch_squash.flatten(observation["change"])
                if self._change_cue else None, training)), network_state
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

    def _score_windows(self, per_window, history, change, training):
        """float32 [B, num_actions]: each window's Q-value from its own features alone."""
        features = [per_window, history[..., None]]
        if change is not None:
            features.append(change_feature(change)[..., None])
        features = tf.concat(features, axis=-1)
        for layer in self._fc_layers:
            features = layer(features, training=training)
        return tf.squeeze(self._q_value_layer(features, training=training), -1)


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


def observation_spec(memory_shape, num_actions, change_cue=False, pooled=False):
    """The observation spec the `AttentionQNetwork` reads.

    Args:
      memory_shape: (Hl, Wl, C) of the chosen cell's memory, without the batch dim.
      num_actions: the number of attention windows.
      change_cue: add the change cue of `patchwork_tf.policy.observation`.
      pooled: the pooled form (`pooled_spec`), as the replay buffer stores it.

    Returns:
      dict(memory=TensorSpec [Hl, Wl, C] float32, history=BoundedTensorSpec [num_actions]
      float32 in [0, 1]) and with the cue change=BoundedTensorSpec [num_actions] float32 in
      [0, 2] (mean absolute difference of frames in [-1, 1]); pooled, `pooled_memory`
      [num_actions, C] in place of `memory`.
    """
    spec = {
        MEMORY: tensor_spec.TensorSpec(tuple(memory_shape), tf.float32, name=MEMORY),
        "history": tensor_spec.BoundedTensorSpec(
            (num_actions,), tf.float32, minimum=0.0, maximum=1.0, name="history"),
    }
    if change_cue:
        spec["change"] = tensor_spec.BoundedTensorSpec(
            (num_actions,), tf.float32, minimum=0.0, maximum=2.0, name="change")
    return pooled_spec(spec, num_actions) if pooled else spec


def pooled_spec(spec, num_actions):
    """A full observation spec with `memory` [Hl, Wl, C] replaced by `pooled_memory`
    TensorSpec [num_actions, C] float32, the spec of `pool_observation`'s output."""
    pooled = {key: value for key, value in spec.items() if key != MEMORY}
    pooled[POOLED_MEMORY] = tensor_spec.TensorSpec(
        (num_actions, spec[MEMORY].shape[-1]), tf.float32, name=POOLED_MEMORY)
    return pooled


def window_action_spec(num_actions):
    """The action spec of the attention policy: a window index in 0 .. num_actions - 1."""
    return tensor_spec.BoundedTensorSpec(
        (), tf.int32, minimum=0, maximum=num_actions - 1, name="window")


def for_twin(twin, observed_cell, change_cue=False, variant="ours"):
    """The `AttentionQNetwork` of a Patchwork twin, variables created (not trained).

    It reads `observed_cell`'s memory (and the change cue with `change_cue`) and scores the
    windows of the twin's grid. Its variables do not depend on the frame size, so a twin of
    another resolution restores the same checkpoint.

    Args:
      twin: the Patchwork twin (its `grid` and `view_shape`).
      observed_cell: layer L of Fig. 3.
      change_cue: the network also reads the change cue.
      variant: a key of `Q_NETWORKS`: "paper" (the concatenation of Sec. 3.1 goes straight
        to the Q-value layer), "ours" (one hidden layer of 64 ReLU units before it) or
        "window" (each window scored from its own features, `per_window`).

    Raises:
      ValueError: an unknown `variant`.
    """
    if variant not in Q_NETWORKS:
        raise ValueError(f"variant must be one of {sorted(Q_NETWORKS)}, got {variant!r}.")
    grid = twin.grid
    spec = observation_spec(twin.view_shape(observed_cell), grid.num_actions, change_cue)
    network = AttentionQNetwork(spec, window_action_spec(grid.num_actions),
                                windows_in_memory(grid, spec[MEMORY].shape),
                                fc_layer_params=Q_NETWORKS[variant],
                                per_window=variant in PER_WINDOW)
    network.create_variables()
    return network
