"""The Patchwork twin as a servable module with explicit state (docs/design.md section 9).

`ExportableModule` wraps a `PatchworkModel` (the twin), an optional post-processing callable
(detection decoding + NMS, mask upsampling, ...; identity if none) and an optional attention
policy into `tf.function`s with fixed input signatures, ready for `tf.saved_model.save`. The
module knows nothing about the task: detection or segmentation specifics enter only through
the post-processing callable.

State is explicit, so a server can batch any number of streams into one call (the batch
dimension of every signature is None) and keep each stream's state wherever it likes. The
state is a flat dict of tensors, one row per stream (every tensor batched along dim 0); by
default (`compact_state=True`) it holds only what later steps read
(`serving.compact_state`):

| key                    | dtype   | shape                | meaning                                   |
|------------------------|---------|----------------------|-------------------------------------------|
| `halo_<cell>`          | float32 | [B, P_l, C_l]        | a halo cell's memory at the P_l pixels    |
|                        |         |                      | some window's halo reads (inside the      |
|                        |         |                      | frame; `compact_state.halo_points` gives  |
|                        |         |                      | their (y, x) in the padded memory, raster |
|                        |         |                      | order): every halo cell but the policy's  |
| `memory_<cell>`        | float32 | [B, H_l, W_l, C_l]   | a whole memory, as                        |
|                        |         |                      | `PatchworkModel.initial_state` holds it   |
|                        |         |                      | (halo cells keep their padding border):   |
|                        |         |                      | the policy's observed cell and the global |
|                        |         |                      | cells (the full-frame outputs are         |
|                        |         |                      | assembled in them); with                  |
|                        |         |                      | `compact_state=False`, every cell         |
| `action_history`       | float32 | [B, num_actions]     | `F_t` of Eq. 1                            |
| `change_thumbnail`     | float32 | [B, H/s, W/s, 3]     | with the change cue: the pooled frame as  |
|                        |         |                      | each window last saw it                   |
| `change`               | float32 | [B, num_actions]     | with the change cue: each window's change |
| `next_action`          | int32   | [B]                  | the window the next `step` processes      |

Frames enter as **uint8 RGB `[B, H, W, 3]`** (0..255, what a decoder or camera gives) of any
H and W. Inside, the module resizes them to the twin's frame size (`frame_size`) as training
does (`patchwork_tf.data.pipeline.resize_frames`: bilinear, each side on its own, rounded back
to uint8; a frame of the twin's size passes as it is) and scales them to the twin's input
range (by default MobileNetV2's [-1, 1], `patchwork_tf.data.clips.preprocess_frames`). The
post-processing callable gets the input's `(H, W)`, so predictions come back for the frame as
it was given: detection boxes stay normalized to it (the stretch keeps normalized
coordinates), segmentation masks are resized to its H x W (`patchwork_tf.tasks`).

Every input is checked inside the signature, where a message can name what was given and
what is expected: a loaded SavedModel's signatures do not check shapes themselves, and shapes
they declare would let the graph optimizer fold checks away. So the signatures declare each
tensor with unknown rank and its dtype; the shapes below are checked at run time, e.g.
"stream_step: frame must be uint8 [H, W, 3] RGB with H, W >= 1; got uint8 shape] [100 100 1]"
(TensorFlow brackets each piece of the message).
A wrong dtype is refused by TensorFlow before the call ("... expected to be a uint8 tensor but
is a float tensor").

Signatures (`export_saved_model` saves all of them):

* `initial_state(batch_size)`: zero memories, zero history and each stream's first action;
  `batch_size` an int32 scalar >= 1.
* `step(frames, **state)`: each stream processes the window `state['next_action']` of its
  frame (Sec. 3.1), then the action history is updated (Eq. 1) and the policy picks the next
  window from the new memories and history. Each state tensor must have the shape of
  `state_spec()` with the frames' batch B (a tensor of another shape, or a state of another
  number of streams than frames, is refused naming the state key). Returns the predictions
  (the post-processing callable's dict, or the model's outputs under `predictions`), `action`
  int32 [B] (the window just processed) and the new state under the state's keys.
* `warm_start(frames)`: a key frame: one full-frame pass that fills every memory; the history
  restarts at zero and `action` is -1 (no window). Same outputs as `step`.
* `stream_step(frame)`, `stream_warm_start(frame)`, `stream_reset()`: a single stream whose
  state lives in variables inside the module, whole memories (the cells update them in place,
  the fastest step); `frame` is uint8 `[H, W, 3]` of any H, W. They return the predictions
  (batch dimension 1), `action` and `next_action`.
* `metadata()`: a scalar string, the JSON record of `patchwork_tf.serving.metadata` (task,
  grid, policy, FLOPs per step and per full frame), added by `export_saved_model`.

The attention policy maps the observation `dict(memory=float32 [B, H_l, W_l, C_l], history=
float32 [B, num_actions])` (the full-frame view of the chosen cell's memory and `F_t`, as the
`VideoStreamEnvironment` of `patchwork_tf.policy` gives it; with `change_cue` also
`change=float32 [B, num_actions]`, see `patchwork_tf.policy.observation`) to Q-values
`[B, num_actions]`;
the next action is the greedy argmax. A tf-agents `Network` (which returns `(q_values,
network_state)`) may be passed as it is. Without a policy the module scans the windows in a
fixed order (the Scanning baseline of Tab. 1): the window after the last one in the order.
Every frame is one `patchwork_tf.policy.stream.stream_step` with these choosers
(`patchwork_tf.policy.choosers`).

The task models' predictions (`export.py` with the task objects of `patchwork_tf.tasks`)
follow the TF Object Detection API's exported models for detection, and name segmentation
likewise:

| key                        | dtype   | shape        | meaning                                    |
|----------------------------|---------|--------------|--------------------------------------------|
| `detection_boxes`          | float32 | [B, D, 4]    | `(ymin, xmin, ymax, xmax)` normalized to   |
|                            |         |              | the input frame                            |
| `detection_scores`         | float32 | [B, D]       | descending; 0 past `num_detections`        |
| `detection_classes`        | float32 | [B, D]       | 1-based class ids (background is no class; |
|                            |         |              | 1 in the padding)                          |
| `num_detections`           | float32 | [B]          | valid rows of the above                    |
| `segmentation_probability` | float32 | [B, H, W]    | foreground probability at the input's H, W |
| `segmentation_mask`        | uint8   | [B, H, W]    | 1 where the probability > 0.5              |
"""
import json

import tensorflow as tf

from patchwork_tf.core import twin as twin_lib
from patchwork_tf.data import clips as clips_lib
from patchwork_tf.data import pipeline
from patchwork_tf.policy import choosers
from patchwork_tf.policy import observation as observation_lib
from patchwork_tf.policy import stream
from patchwork_tf.serving import compact_state as compact_state_lib
from patchwork_tf.serving import metadata as metadata_lib

MEMORY_PREFIX = "memory_"
HALO_PREFIX = "halo_"
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
      state_keys: the keys of the flat state dict of the explicit-state signatures, in a
        fixed order.
      compact_state: whether that state stores halo cells compactly (`halo_<cell>`).
    """

    def __init__(self, twin, postprocess=None, policy=None, policy_cell=None, alpha=0.5,
                 scan_order=None, preprocess=clips_lib.preprocess_frames,
                 change_cue=False, compact_state=True, name="patchwork_serving"):
        """Builds the module and traces nothing yet.

        Args:
          twin: a `patchwork_tf.PatchworkModel`.
          postprocess: optional callable `postprocess(outputs, image_size)` from the twin's
            outputs (the structure of `keras_model(frames)`) and the input frames' `(H, W)`
            (int32 [2], before the resize to the twin's size) to a dict of tensors with batch
            dimension first, e.g. detection decoding + NMS or a mask at the input's size.
            None returns the model's outputs: a single tensor as `predictions`, a list as
            `predictions_<i>`, a dict as it is.
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
          compact_state: the explicit state keeps of each halo cell but the policy's only
            the pixels later steps read (`serving.compact_state`); False keeps whole
            memories. Outputs are the same either way.
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
        self._scan_order = choosers.scan_order(scan_order, self.num_actions)
        self._chooser = (choosers.greedy(policy, self.num_actions) if policy is not None
                         else choosers.scanning(self.num_actions, self._scan_order))

        self.compact_state = bool(compact_state)
        self._codec = compact_state_lib.StateCodec(
            twin, full_cells=[policy_cell] if policy is not None else []) if compact_state \
            else None
        observer_keys = [_OBSERVER_KEYS[key] for key in self._observer.state_spec()]
        self.state_keys = [self._memory_key(cell) for cell in self.cells] + observer_keys + [
            NEXT_ACTION]
        # The single stream's variables keep whole memories.
        self._full_keys = [MEMORY_PREFIX + cell for cell in self.cells] + observer_keys + [
            NEXT_ACTION]
        # One eager evaluation builds any lazily created policy variables outside the
        # tf.functions and fixes the prediction names.
        initial = self._initial_full(1)
        outputs, _ = twin.warm_start_fn(
            self._preprocess(tf.zeros((1,) + self.frame_size + (self.channels,), tf.uint8)))
        self.prediction_keys = sorted(self._predictions(outputs, tf.constant(self.frame_size)))
        clash = set(self.prediction_keys) & (set(self.state_keys) | set(self._full_keys)
                                             | {ACTION})
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

        # Unknown ranks: the checks inside refuse wrong shapes (see the module docstring).
        frames_spec = tf.TensorSpec(None, tf.uint8, name="frames")
        frame_spec = tf.TensorSpec(None, tf.uint8, name="frame")
        state_signature = {key: tf.TensorSpec(None, spec.dtype, name=key)
                           for key, spec in self.state_spec().items()}
        self.initial_state = tf.function(
            self._checked_initial_state,
            input_signature=[tf.TensorSpec(None, tf.int32, name="batch_size")])
        self.step = tf.function(self._step, input_signature=[frames_spec, state_signature])
        self.warm_start = tf.function(self._signature_warm_start, input_signature=[frames_spec])
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
        """`tf.TensorSpec`s of the explicit state dict, named by their keys."""
        memories = (self._codec.spec(batch_size) if self._codec is not None
                    else self.twin.state_spec(batch_size))
        spec = {
            self._memory_key(cell): tf.TensorSpec(
                memories[cell].shape, memories[cell].dtype, name=self._memory_key(cell))
            for cell in self.cells
        }
        for key, observer_spec in self._observer.state_spec(batch_size).items():
            spec[_OBSERVER_KEYS[key]] = tf.TensorSpec(
                observer_spec.shape, observer_spec.dtype, name=_OBSERVER_KEYS[key])
        spec[NEXT_ACTION] = tf.TensorSpec([batch_size], tf.int32, name=NEXT_ACTION)
        return spec

    def state_bytes(self):
        """Bytes of one stream's explicit state (`state_spec`)."""
        return compact_state_lib.state_bytes(self.state_spec())

    # ------------------------------------------------------------------ pieces
    def _memory_key(self, cell):
        """The explicit state's key of a cell's memory: `halo_<cell>` stored compactly."""
        if self._codec is not None and cell in self._codec.compact_cells:
            return HALO_PREFIX + cell
        return MEMORY_PREFIX + cell

    def _to_signature(self, result):
        """A result with whole memories (`memory_<cell>`) in the explicit state's layout."""
        if self._codec is None:
            return result
        compact = self._codec.compact_cells
        packed = self._codec.pack({cell: result[MEMORY_PREFIX + cell] for cell in compact})
        result = {key: value for key, value in result.items()
                  if key not in {MEMORY_PREFIX + cell for cell in compact}}
        result.update({HALO_PREFIX + cell: packed[cell] for cell in compact})
        return result

    def _from_signature(self, state):
        """A checked explicit state with whole memories (`memory_<cell>`) for the step."""
        if self._codec is None:
            return state
        compact = self._codec.compact_cells
        memories = self._codec.unpack({cell: state[HALO_PREFIX + cell] for cell in compact})
        state = {key: value for key, value in state.items()
                 if key not in {HALO_PREFIX + cell for cell in compact}}
        state.update({MEMORY_PREFIX + cell: memories[cell] for cell in compact})
        return state

    def _checked_frames(self, frames, signature):
        """`frames` uint8 `[B, H, W, C]` checked at run time, returned with its static rank and
        channels set.

        Args:
          frames: the signature's input, of unknown static rank.
          signature: the signature's name, for the message.
        """
        shape = tf.shape(frames)
        ok = tf.logical_and(tf.equal(tf.size(shape), 4),
                            tf.reduce_all(tf.equal(shape[3:], self.channels)))
        ok = tf.logical_and(ok, tf.reduce_all(shape[1:3] >= 1))
        check = tf.debugging.Assert(ok, [
            f"{signature}: frames must be uint8 [B, H, W, {self.channels}] RGB with H, W >= 1; "
            "got uint8 shape", shape], summarize=8)
        with tf.control_dependencies([check]):
            return tf.ensure_shape(frames, [None, None, None, self.channels])

    def _checked_frame(self, frame, signature):
        """One stream's uint8 `[H, W, C]` frame checked at run time, as a batch of one."""
        shape = tf.shape(frame)
        ok = tf.logical_and(tf.equal(tf.size(shape), 3),
                            tf.reduce_all(tf.equal(shape[2:], self.channels)))
        ok = tf.logical_and(ok, tf.reduce_all(shape[:2] >= 1))
        check = tf.debugging.Assert(ok, [
            f"{signature}: frame must be uint8 [H, W, {self.channels}] RGB with H, W >= 1; "
            "got uint8 shape", shape], summarize=8)
        with tf.control_dependencies([check]):
            return tf.ensure_shape(frame, [None, None, self.channels])[None]

    def _checked_state(self, state, batch_size):
        """The state checked at run time against `state_spec()` and the frames' batch."""
        spec = self.state_spec()
        checks = []
        for key in self.state_keys:
            expected = spec[key].shape.as_list()[1:]
            described = ", ".join(["B"] + [str(v) for v in expected])
            shape = tf.shape(state[key])
            # Both sides cut to the same length, whatever rank was given.
            common = tf.minimum(tf.maximum(tf.size(shape) - 1, 0), len(expected))
            same = tf.equal(shape[1:1 + common], tf.constant(expected, tf.int32)[:common])
            checks.append(tf.debugging.Assert(
                tf.logical_and(tf.equal(tf.size(shape), len(expected) + 1),
                               tf.reduce_all(same)),
                [f"step: state {key} must be {spec[key].dtype.name} [{described}] as "
                 "initial_state, step and warm_start return it; got shape", shape],
                summarize=8))
            with tf.control_dependencies(checks[-1:]):
                checks.append(tf.debugging.Assert(tf.equal(shape[0], batch_size), [
                    "step: frames hold a batch of", batch_size, f"but state {key} holds",
                    shape[0], "streams; give one frame per stream of the state "
                    "(initial_state(batch_size=B))"]))
        with tf.control_dependencies(checks):
            return {key: tf.ensure_shape(state[key], spec[key].shape) for key in self.state_keys}

    def _resized(self, frames):
        """uint8 frames `[B, H, W, C]` at the twin's frame size, as training resizes them."""
        same = tf.reduce_all(tf.equal(tf.shape(frames)[1:3], self.frame_size))
        resized = tf.cond(same, lambda: frames,
                          lambda: pipeline.resize_frames(frames, self.frame_size))
        return tf.ensure_shape(resized, (None,) + self.frame_size + (self.channels,))

    def _predictions(self, outputs, image_size):
        if self._postprocess is not None:
            outputs = self._postprocess(outputs, image_size)
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

    def _result(self, step, image_size, actions):
        """The predictions of a `stream.StreamStep`, `actions` and the new state."""
        result = self._predictions(step.outputs, image_size)
        result[ACTION] = actions
        result.update(self._pack(step.twin_state, step.observer_state, step.next_actions))
        return result

    def _start(self, memories, batch_size, key=lambda cell: MEMORY_PREFIX + cell):
        """The state of new streams on `memories` (zeros) and their first windows."""
        start = stream.stream_start(self.twin, self._observer, twin_state=memories,
                                    chooser=self._chooser, observed_cell=self.policy_cell,
                                    batch_size=batch_size)
        return self._pack(memories, start.observer_state, start.next_actions, key)

    def _pack(self, memories, observer_state, next_action, key=lambda cell: MEMORY_PREFIX + cell):
        state = {key(cell): memories[cell] for cell in self.cells}
        state.update({_OBSERVER_KEYS[key]: value for key, value in observer_state.items()})
        state[NEXT_ACTION] = next_action
        return state

    def _observer_state(self, state):
        return {key: state[name] for key, name in _OBSERVER_KEYS.items() if name in state}

    # ------------------------------------------------------------------ explicit state
    def _initial_full(self, batch_size):
        """The initial state with whole memories (`memory_<cell>`)."""
        return self._start(self.twin.initial_state(batch_size), batch_size)

    def _initial_state(self, batch_size):
        """The initial state in the explicit state's layout, compact memories built as such
        (no whole map of a compact cell is made)."""
        if self._codec is None:
            return self._initial_full(batch_size)
        # The policy reads its observed cell only, which the codec keeps whole.
        return self._start(self._codec.initial_state(batch_size), batch_size, self._memory_key)

    def _checked_initial_state(self, batch_size):
        shape = tf.shape(batch_size)
        ok = tf.logical_and(tf.equal(tf.size(shape), 0), tf.reduce_all(batch_size >= 1))
        check = tf.debugging.Assert(ok, [
            "initial_state: batch_size must be an int32 scalar >= 1 (the number of streams); "
            "got shape", shape, "values", batch_size], summarize=8)
        with tf.control_dependencies([check]):
            return self._initial_state(tf.reshape(batch_size, []))

    def _step(self, frames, state):
        frames = self._checked_frames(frames, "step")
        state = self._checked_state(state, tf.shape(frames)[0])
        return self._to_signature(self._advance(frames, self._from_signature(state)))

    def _advance(self, frames, state):
        """One step from `state` on checked uint8 frames of any size; memories given as
        variables (the one stream's) are updated in place by the cells, tensors (explicit
        state) are copied and returned."""
        actions = state[NEXT_ACTION]
        memories = {cell: state[MEMORY_PREFIX + cell] for cell in self.cells}
        inputs = self._preprocess(self._resized(frames))
        step = stream.stream_step(self.twin, self._observer, inputs, actions, memories,
                                  self._observer_state(state), chooser=self._chooser,
                                  observed_cell=self.policy_cell)
        return self._result(step, tf.shape(frames)[1:3], actions)

    def frame_call(self, frames, state):
        """The whole frame call without the signatures' run-time checks, for compilers that
        need static shapes and no assertions (`serving.tflite_export`): `step` on uint8
        frames `[B, H, W, C]` and a state of `state_spec(B)`; same outputs."""
        return self._to_signature(self._advance(frames, self._from_signature(state)))

    def frame_call_warm_start(self, frames):
        """`warm_start` without run-time checks; see `frame_call`."""
        return self._to_signature(self._warm_start(frames))

    def _signature_warm_start(self, frames):
        return self._to_signature(self._warm_start(self._checked_frames(frames, "warm_start")))

    def _warm_start(self, frames):
        """A key frame on checked uint8 frames of any size."""
        inputs = self._preprocess(self._resized(frames))
        start = stream.stream_start(self.twin, self._observer, inputs, key_frame=True,
                                    explicit_state=True, chooser=self._chooser,
                                    observed_cell=self.policy_cell)
        no_action = tf.fill(tf.reshape(tf.shape(frames)[0], [1]), -1)
        return self._result(start, tf.shape(frames)[1:3], no_action)

    # ------------------------------------------------------------------ one stateful stream
    def _stream_outputs(self, result):
        for key in self._full_keys:
            if result[key] is not self.stream_state[key]:
                self.stream_state[key].assign(result[key])
        return {key: result[key] for key in self.prediction_keys + [ACTION, NEXT_ACTION]}

    def _stream_step(self, frame):
        # The memories go in as the variables themselves: the cells scatter into them in
        # place, where reading them as tensors would copy every memory twice a step.
        frames = self._checked_frame(frame, "stream_step")
        state = {key: var if key.startswith(MEMORY_PREFIX) else var.read_value()
                 for key, var in self.stream_state.items()}
        return self._stream_outputs(self._advance(frames, state))

    def _stream_warm_start(self, frame):
        return self._stream_outputs(
            self._warm_start(self._checked_frame(frame, "stream_warm_start")))

    def _stream_reset(self):
        initial = self._initial_full(1)
        for key in self._full_keys:
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
