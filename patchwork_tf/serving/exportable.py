"""The Patchwork twin as a servable module with explicit state (DESIGN.md section 9).

`ExportableModule` wraps a `PatchworkModel` (the twin), an optional post-processing callable
(detection decoding + NMS, mask upsampling, ...; identity if none) and an optional attention
policy into `tf.function`s with fixed input signatures, ready for `tf.saved_model.save`. The
module knows nothing about the task: detection or segmentation specifics enter only through
the post-processing callable.

State is explicit, so a server can batch any number of streams into one call (the batch
dimension of every signature is None) and keep each stream's state wherever it likes. The
state is a flat dict of tensors, one row per stream:

| key                    | dtype   | shape                | meaning                                   |
|------------------------|---------|----------------------|-------------------------------------------|
| `memory_<cell>`        | float32 | [B, H_l, W_l, C_l]   | a Patchwork Cell's memory (Sec. 3.2), as  |
|                        |         |                      | `PatchworkModel.initial_state` holds it   |
|                        |         |                      | (halo cells keep their padding border)    |
| `action_history`       | float32 | [B, num_actions]     | `F_t` of Eq. 1                            |
| `change_thumbnail`     | float32 | [B, H/s, W/s, 3]     | with the change cue: the pooled frame as  |
|                        |         |                      | each window last saw it                   |
| `change`               | float32 | [B, num_actions]     | with the change cue: each window's change |
| `next_action`          | int32   | [B]                  | the window the next `step` processes      |

Frames enter as **uint8 RGB `[B, H, W, 3]`** (0..255, what a decoder or camera gives) at the
twin's frame size; the module scales them to the twin's input range inside (by default
MobileNetV2's [-1, 1], `patchwork_tf.data.clips.preprocess_frames`). A frame of another size,
channel count or dtype is refused at the signature with a message naming the expected shape;
nothing is resized or cast for the caller.

Signatures (`export_saved_model` saves all of them):

* `initial_state(batch_size)`: zero memories, zero history and each stream's first action.
* `step(frames, **state)`: each stream processes the window `state['next_action']` of its
  frame (Sec. 3.1), then the action history is updated (Eq. 1) and the policy picks the next
  window from the new memories and history. Returns the predictions (the post-processing
  callable's dict, or the model's outputs under `predictions`), `action` int32 [B] (the window
  just processed) and the new state under the state's keys.
* `warm_start(frames)`: a key frame: one full-frame pass that fills every memory; the history
  restarts at zero and `action` is -1 (no window). Same outputs as `step`.
* `stream_step(frame)`, `stream_warm_start(frame)`, `stream_reset()`: a single stream whose
  state lives in variables inside the module; `frame` is uint8 `[H, W, 3]`. They return the
  predictions (batch dimension 1), `action` and `next_action`.
* `metadata()`: a scalar string, the JSON record of `patchwork_tf.serving.metadata` (task,
  grid, policy, FLOPs per step and per full frame), added by `export_saved_model`.

The attention policy maps the observation `dict(memory=float32 [B, H_l, W_l, C_l], history=
float32 [B, num_actions])` (the full-frame view of the chosen cell's memory and `F_t`, as the
`VideoStreamEnvironment` of `patchwork_tf.policy` gives it; with `change_cue` also
`change=float32 [B, num_actions]`, see `patchwork_tf.policy.observation`) to Q-values
`[B, num_actions]`;
the next action is the greedy argmax. A tf-agents `Network` (which returns `(q_values,
network_state)`) may be passed as it is. Without a policy the module scans the windows in a
fixed order (the Scanning baseline of Tab. 1).
"""
import json

import numpy as np
import tensorflow as tf

from patchwork_tf.core import twin as twin_lib
from patchwork_tf.data import clips as clips_lib
from patchwork_tf.policy import observation as observation_lib
from patchwork_tf.serving import metadata as metadata_lib

MEMORY_PREFIX = "memory_"
ACTION_HISTORY = "action_history"
# The state keys of the attention observation's state (`policy.observation`).
_OBSERVER_KEYS = {observation_lib.HISTORY: ACTION_HISTORY,
                  observation_lib.THUMBNAIL: "change_thumbnail",
                  observation_lib.CHANGE: "change"}
NEXT_ACTION = "next_action"
ACTION = "action"
PREDICTIONS = "predictions"
SIGNATURE_NAMES = ("initial_state", "step", "warm_start", "stream_step", "stream_warm_start",
                   "stream_reset")


class _Untracked:
    """Keeps an object out of the SavedModel's object graph.

    The twin is a `tf.Module` holding the Keras model; tracking it would make the saver
    serialise the Keras model (and trace its call) too. The module tracks the model's
    variables directly instead, which is all the exported functions capture.
    """

    def __init__(self, value):
        self.value = value


class ExportableModule(tf.Module):
    """A Patchwork twin with explicit, batchable state for serving (see the module docstring).

    Attributes:
      frame_size: `(H, W)` of the frames the signatures take.
      num_actions: the number of attention windows of the twin's grid.
      state_keys: the keys of the flat state dict, in a fixed order.
    """

    def __init__(self, twin, postprocess=None, policy=None, policy_cell=None, alpha=0.5,
                 scan_order=None, preprocess=clips_lib.preprocess_frames,
                 change_cue=False, name="patchwork_serving"):
        """Builds the module and traces nothing yet.

        Args:
          twin: a `patchwork_tf.PatchworkModel`.
          postprocess: optional callable from the twin's outputs (the structure of
            `keras_model(frames)`) to a dict of tensors with batch dimension first, e.g.
            detection decoding + NMS. None returns the model's outputs: a single tensor as
            `predictions`, a list as `predictions_<i>`, a dict as it is.
          policy: optional attention policy: a callable from `dict(memory=float32 [B, H_l,
            W_l, C_l], history=float32 [B, num_actions])` to Q-values `[B, num_actions]` (or
            to `(q_values, network_state)`, as a tf-agents `Network` returns). Its variables
            are saved if it exposes them as `.variables` (a `tf.Module` or Keras layer).
          policy_cell: the cell whose memory the policy reads (layer L of Sec. 3.1); one of
            the twin's cells with a memory. Required with a policy.
          alpha: the decay of the action history, Eq. 1, in [0, 1].
          scan_order: without a policy, the order in which windows are scanned: a permutation
            of `range(num_actions)`; None is row-major.
          preprocess: maps uint8 frames `[B, H, W, 3]` to the twin's float32 input.
          change_cue: the policy observes the change cue (as it was trained).
          name: the module's name.

        Raises:
          TypeError: `twin` is not a `PatchworkModel`, or `policy` / `postprocess` is not
            callable.
          ValueError: a policy without a valid `policy_cell`, both a policy and a
            `scan_order`, an `alpha` outside [0, 1], a `scan_order` that is not a
            permutation, or predictions whose names clash with the state's.
        """
        super().__init__(name=name)
        if not isinstance(twin, twin_lib.PatchworkModel):
            raise TypeError(
                f"twin must be a PatchworkModel (patchwork_tf.patchwork_model(keras_model, "
                f"grid)), got {type(twin).__name__}.")
        for what, value in (("postprocess", postprocess), ("policy", policy)):
            if value is not None and not callable(value):
                raise TypeError(f"{what} must be callable or None, got {type(value).__name__}.")
        if not 0.0 <= float(alpha) <= 1.0:
            raise ValueError(f"alpha (Eq. 1) must lie in [0, 1], got {alpha}.")
        self._twin = _Untracked(twin)
        self._postprocess = postprocess
        self._policy = policy
        self._preprocess = preprocess
        self.alpha = float(alpha)
        self.change_cue = bool(change_cue)
        self._observer = observation_lib.AttentionObservation(
            twin.grid, self.alpha, self.change_cue)
        self.frame_size = tuple(twin.frame_size)
        self.channels = int(twin.input_channels)
        self.num_actions = int(twin.grid.num_actions)
        self.cells = list(twin.state_spec())
        if policy is not None:
            if scan_order is not None:
                raise ValueError("Give either a policy or a scan_order, not both: the scan "
                                 "order is the policy used when there is none.")
            if policy_cell not in self.cells:
                raise ValueError(
                    f"policy_cell {policy_cell!r} is not a cell with a memory; with a policy, "
                    f"choose the layer L it reads from {self.cells}.")
            twin.memory_view({policy_cell: tf.zeros((1,) + twin.memory_shape(policy_cell))},
                             policy_cell)
        self.policy_cell = policy_cell
        order = np.arange(self.num_actions) if scan_order is None else np.asarray(scan_order)
        if order.shape != (self.num_actions,) or not np.array_equal(
                np.sort(order), np.arange(self.num_actions)):
            raise ValueError(
                f"scan_order must be a permutation of range({self.num_actions}), got "
                f"{np.asarray(scan_order).tolist()}.")
        self._scan_order = order.astype(np.int32)
        self._scan_position = np.argsort(order).astype(np.int32)

        self.state_keys = [MEMORY_PREFIX + cell for cell in self.cells] + [
            _OBSERVER_KEYS[key] for key in self._observer.state_spec()] + [NEXT_ACTION]
        # One eager evaluation builds any lazily created policy variables outside the
        # tf.functions and fixes the prediction names.
        initial = self._initial_state(1)
        outputs, _ = twin.warm_start_fn(
            self._preprocess(tf.zeros((1,) + self.frame_size + (self.channels,), tf.uint8)))
        self.prediction_keys = sorted(self._predictions(outputs))
        clash = set(self.prediction_keys) & (set(self.state_keys) | {ACTION})
        if clash:
            raise ValueError(
                f"Prediction names {sorted(clash)} clash with the state's keys; rename them in "
                "the post-processing callable.")

        self.model_variables = list(twin.keras_model.variables) + twin.folded_variables
        self.policy_variables = list(getattr(policy, "variables", []))
        self.postprocess_variables = list(getattr(postprocess, "variables", []))
        self.stream_state = {
            key: tf.Variable(value, trainable=False, name=f"stream_{key}")
            for key, value in initial.items()
        }

        height, width = self.frame_size
        frames_spec = tf.TensorSpec([None, height, width, self.channels], tf.uint8,
                                    name="frames")
        frame_spec = tf.TensorSpec([height, width, self.channels], tf.uint8, name="frame")
        self.initial_state = tf.function(
            self._initial_state,
            input_signature=[tf.TensorSpec([], tf.int32, name="batch_size")])
        self.step = tf.function(self._step, input_signature=[frames_spec, self.state_spec()])
        self.warm_start = tf.function(self._warm_start, input_signature=[frames_spec])
        self.stream_step = tf.function(self._stream_step, input_signature=[frame_spec])
        self.stream_warm_start = tf.function(self._stream_warm_start,
                                             input_signature=[frame_spec])
        self.stream_reset = tf.function(self._stream_reset, input_signature=[])

    @property
    def twin(self):
        return self._twin.value

    @property
    def observer(self):
        """The `policy.observation.AttentionObservation` that builds the policy's input."""
        return self._observer

    @property
    def policy(self):
        """The attention policy (observation -> Q-values), or None: the module scans."""
        return self._policy

    @property
    def scan_order(self):
        """The order windows are scanned in without a policy, a list of actions."""
        return self._scan_order.tolist()

    def state_spec(self, batch_size=None):
        """`tf.TensorSpec`s of the state dict, named by their keys."""
        memories = self.twin.state_spec(batch_size)
        spec = {
            MEMORY_PREFIX + cell: tf.TensorSpec(
                memories[cell].shape, memories[cell].dtype, name=MEMORY_PREFIX + cell)
            for cell in self.cells
        }
        for key, observer_spec in self._observer.state_spec(batch_size).items():
            spec[_OBSERVER_KEYS[key]] = tf.TensorSpec(
                observer_spec.shape, observer_spec.dtype, name=_OBSERVER_KEYS[key])
        spec[NEXT_ACTION] = tf.TensorSpec([batch_size], tf.int32, name=NEXT_ACTION)
        return spec

    # ------------------------------------------------------------------ pieces
    def _checked_frames(self, frames):
        """Frames whose shape is checked at run time too (a signature call skips the check)."""
        height, width = self.frame_size
        check = tf.debugging.assert_equal(
            tf.shape(frames)[1:], tf.constant([height, width, self.channels]),
            message=(f"frames must be uint8 [batch, {height}, {width}, {self.channels}] RGB "
                     f"for this model: resize them to {height}x{width} with "
                     f"{self.channels} channels before the call."))
        with tf.control_dependencies([check]):
            return tf.identity(frames)

    def _checked_state(self, state, batch_size):
        spec = self.state_spec()
        checks = []
        for key in self.state_keys:
            expected = [batch_size] + spec[key].shape.as_list()[1:]
            checks.append(tf.debugging.assert_equal(
                tf.shape(state[key]), tf.stack(expected),
                message=(f"state[{key!r}] must be {spec[key].dtype.name} "
                         f"[batch, {', '.join(str(v) for v in expected[1:])}] with the frames' "
                         "batch size; pass the state returned by initial_state, step or "
                         "warm_start.")))
        with tf.control_dependencies(checks):
            return {key: tf.identity(state[key]) for key in self.state_keys}

    def _predictions(self, outputs):
        if self._postprocess is not None:
            outputs = self._postprocess(outputs)
        if isinstance(outputs, dict):
            predictions = dict(outputs)
        elif isinstance(outputs, (list, tuple)):
            predictions = {f"{PREDICTIONS}_{i}": t for i, t in enumerate(outputs)}
        else:
            predictions = {PREDICTIONS: outputs}
        for key, value in predictions.items():
            if not isinstance(key, str) or not tf.is_tensor(value):
                raise ValueError(
                    f"Predictions must be a dict of tensors keyed by names; got {key!r}: "
                    f"{type(value).__name__}. Make the post-processing callable return one.")
        return predictions

    def _choose(self, last_actions, memories, observer_state):
        """The next window of each stream: the policy's greedy action, or the next in scan."""
        if self._policy is None:
            position = tf.gather(self._scan_position, tf.maximum(last_actions, 0))
            position = tf.where(last_actions < 0, -1, position)
            return tf.gather(self._scan_order, (position + 1) % self.num_actions)
        observation = self._observer.observation(
            self.twin.memory_view(memories, self.policy_cell), observer_state)
        q_values = self._policy(observation)
        if isinstance(q_values, tuple):
            q_values = q_values[0]
        if q_values.shape[-1] != self.num_actions:
            raise ValueError(
                f"The policy returned Q-values of shape {q_values.shape}; expected "
                f"[batch, {self.num_actions}], one per window of {self.twin.grid!r}.")
        return tf.argmax(q_values, axis=-1, output_type=tf.int32)

    def _result(self, outputs, actions, memories, observer_state):
        result = self._predictions(outputs)
        result[ACTION] = actions
        result.update(self._pack(memories, observer_state,
                                 self._choose(actions, memories, observer_state)))
        return result

    def _pack(self, memories, observer_state, next_action):
        state = {MEMORY_PREFIX + cell: memories[cell] for cell in self.cells}
        state.update({_OBSERVER_KEYS[key]: value for key, value in observer_state.items()})
        state[NEXT_ACTION] = next_action
        return state

    def _observer_state(self, state):
        return {key: state[name] for key, name in _OBSERVER_KEYS.items() if name in state}

    # ------------------------------------------------------------------ explicit state
    def _initial_state(self, batch_size):
        memories = self.twin.initial_state(batch_size)
        observer_state = self._observer.initial_state(batch_size)
        no_action = tf.fill(tf.reshape(batch_size, [1]), -1)
        return self._pack(memories, observer_state,
                          self._choose(no_action, memories, observer_state))

    def _step(self, frames, state):
        frames = self._checked_frames(frames)
        return self._advance(frames, self._checked_state(state, tf.shape(frames)[0]))

    def _advance(self, frames, state):
        """One step from `state`; memories given as variables (the one stream's) are updated
        in place by the cells, tensors (explicit state) are copied and returned."""
        actions = state[NEXT_ACTION]
        memories = {cell: state[MEMORY_PREFIX + cell] for cell in self.cells}
        inputs = self._preprocess(frames)
        outputs, memories = self.twin.step_fn(inputs, actions, memories)
        observer_state = self._observer.advance(self._observer_state(state), inputs, actions)
        return self._result(outputs, actions, memories, observer_state)

    def _warm_start(self, frames):
        frames = self._checked_frames(frames)
        inputs = self._preprocess(frames)
        outputs, memories = self.twin.warm_start_fn(inputs)
        no_action = tf.fill(tf.reshape(tf.shape(frames)[0], [1]), -1)
        return self._result(outputs, no_action, memories, self._observer.start(inputs))

    # ------------------------------------------------------------------ one stateful stream
    def _stream_outputs(self, result):
        for key in self.state_keys:
            if result[key] is not self.stream_state[key]:
                self.stream_state[key].assign(result[key])
        return {key: result[key] for key in self.prediction_keys + [ACTION, NEXT_ACTION]}

    def _stream_step(self, frame):
        # The memories go in as the variables themselves: the cells scatter into them in
        # place, where reading them as tensors would copy every memory twice a step.
        state = {key: var if key.startswith(MEMORY_PREFIX) else var.read_value()
                 for key, var in self.stream_state.items()}
        return self._stream_outputs(self._advance(self._checked_frames(frame[None]), state))

    def _stream_warm_start(self, frame):
        return self._stream_outputs(self._warm_start(frame[None]))

    def _stream_reset(self):
        initial = self._initial_state(1)
        for key in self.state_keys:
            self.stream_state[key].assign(initial[key])
        return {NEXT_ACTION: initial[NEXT_ACTION]}


def export_saved_model(module, export_dir, task=None, metadata=None):
    """Saves an `ExportableModule` as a SavedModel with all of `SIGNATURE_NAMES`.

    Loading needs only TensorFlow: `tf.saved_model.load(export_dir).signatures['step']`.
    The SavedModel also gets a `metadata` function and signature returning the JSON record of
    `patchwork_tf.serving.metadata.describe` (task, grid, policy, FLOPs), which
    `python -m patchwork_tf.evaluate --saved_model` reads.

    Args:
      module: the `ExportableModule`.
      export_dir: where the SavedModel goes.
      task: the task the model was built for, recorded as it is.
      metadata: dict of further JSON-serialisable entries to record (e.g. NMS settings).
    """
    if not isinstance(module, ExportableModule):
        raise TypeError(f"module must be an ExportableModule, got {type(module).__name__}.")
    record = json.dumps(metadata_lib.describe(module, task, metadata))
    module.metadata = tf.function(lambda: tf.constant(record), input_signature=[])
    signatures = {name: getattr(module, name) for name in SIGNATURE_NAMES + ("metadata",)}
    tf.saved_model.save(module, export_dir, signatures=signatures)
    return export_dir
