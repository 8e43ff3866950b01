"""From a tf_keras functional CNN to its Patchwork twin (Sec. 3.2, docs/design.md section 4).

`patchwork_model(keras_model, grid)` plans, per layer call of the stock functional graph, how
it runs when only one window of the frame is processed (`core.plan`: pointwise layers on the
window, layers with spatial context behind a `HaloCell`, global layers on whole maps
assembled by `GlobalCell`s; any other layer that would see a window is refused with its name
and type), and runs the plan: the warm start and the step are loops over the plan's nodes.

The twin shares the stock layers (and so their weights). A step is a pure function of
`(frames, actions, state)`; `PatchworkModel` also keeps the state in variables for the
stateful API of a single set of streams.
"""
import re

import tensorflow as tf

from patchwork_tf.core import cells as cells_lib
from patchwork_tf.core import grid as grid_lib
from patchwork_tf.core import keras_graph
from patchwork_tf.core import plan as plan_lib

Write = plan_lib.Write
Context = plan_lib.Context


class PatchworkModel(tf.Module):
    """The Patchwork twin of a tf_keras functional CNN (Sec. 3, Fig. 1a).

    Per step only one window of the frame is processed per stream; the output has the
    structure and meaning of `keras_model(frames)` for the whole frame (the window's part
    fresh, the rest from the cells' memories).

    Functional API (pure, exportable, differentiable):
      `initial_state(batch_size) -> state`, `warm_start_fn(frames) -> (outputs, state)`,
      `step_fn(frames, actions, state) -> (outputs, state)`; `state` maps cell names to
      memories.
    Stateful API (memories in variables, like a stateful Keras RNN):
      `reset_states(batch_size)`, `warm_start(frames)`, `step(frames, actions)`,
      `memory(cell_name)`.

    Shapes: `frames` float32 `[B, H, W, 3]` in the stock model's input scaling, `actions`
    int32 `[B]` action indices of the grid.
    """

    def __init__(self, keras_model, grid, jit_compile=False, write=Write.WINDOW,
                 full_memory_cells=(), context=Context.MEMORY, fold_batch_norm=False,
                 name=None):
        super().__init__(name=name or "patchwork_" + re.sub(r"\W", "_", keras_model.name))
        if not isinstance(grid, grid_lib.WindowGrid):
            raise TypeError(f"grid must be a WindowGrid, got {type(grid).__name__}.")
        if not keras_graph.is_functional(keras_model):
            raise ValueError(
                f"Model {keras_model.name!r} is not a tf_keras functional model; the Patchwork "
                "converter walks a functional graph (build it with tf_keras.Model(inputs, "
                "outputs) or tf_keras.applications)."
            )
        if len(keras_model.inputs) != 1 or keras_model.inputs[0].shape.rank != 4:
            raise ValueError(
                f"Model {keras_model.name!r} must have one image input [B, H, W, C], got "
                f"{[t.shape for t in keras_model.inputs]}."
            )
        frame_size = tuple(int(v) for v in keras_model.inputs[0].shape[1:3])
        if frame_size != grid.frame_size:
            raise ValueError(
                f"Model {keras_model.name!r} takes {frame_size[0]}x{frame_size[1]} frames but "
                f"the grid is for {grid.frame_size[0]}x{grid.frame_size[1]}: build both for "
                "the same frame size."
            )
        self.keras_model = keras_model
        self.grid = grid
        self.frame_size = frame_size
        self.input_channels = int(keras_model.inputs[0].shape[-1])
        self._options = plan_lib.Options(
            jit_compile=jit_compile, write=write, context=context,
            full_memory_cells=full_memory_cells, fold_batch_norm=fold_batch_norm)
        self._plan = plan_lib.plan(keras_model, grid, self._options)
        self._nodes = self._plan.nodes
        self.halo_cells = self._plan.halo_cells
        self.global_cells = self._plan.global_cells  # cell name -> GlobalCell
        self.cell_names = self._plan.cell_names
        self.fold_batch_norm = self._options.fold_batch_norm
        # conv name -> (kernel, bias): variables tracked here for checkpoints and exports.
        self._folded = self._plan.folded
        self._jit_compile = self._options.jit_compile
        self._memories = None
        self._step_tf = tf.function(self._stateful_step, jit_compile=self._jit_compile)
        self._warm_tf = tf.function(self._stateful_warm_start)

    # ------------------------------------------------------------------ state
    def _cell(self, name):
        return self._plan.cell(name)

    def memory_shape(self, name):
        """`(rows, cols, channels)` of a cell's memory, padding included."""
        cell = self._cell(name)
        channels = int(self._plan.tensors[self._plan.cell_input[name]].shape[-1])
        size = cell.memory_size if isinstance(cell, cells_lib.HaloCell) else cell.map_size
        return tuple(size) + (channels,)

    def _state_cells(self):
        """Cells that keep a memory (`plan.Plan.state_cells`)."""
        return self._plan.state_cells()

    def initial_state(self, batch_size):
        """Zero memories (zero inside the frame, the op's padding value outside)."""
        return {
            name: self._cell(name).initial_memory(
                batch_size, self.memory_shape(name)[-1])
            for name in self._state_cells()
        }

    def state_spec(self, batch_size=None):
        return {
            name: tf.TensorSpec((batch_size,) + self.memory_shape(name), tf.float32)
            for name in self._state_cells()
        }

    # ------------------------------------------------------------------ execution
    def warm_start_fn(self, frames):
        """One full-frame pass (a key frame) that fills every memory.

        Returns `(outputs, state)`: the stock model's outputs on `frames` and memories that
        hold every cell's full input map.
        """
        env, state = self._plan.warm_start(self._check_frames(frames))
        return keras_graph.structured_outputs(self.keras_model, env), state

    def step_fn(self, frames, actions, state, recorder=None):
        """One Patchwork step: each stream processes only the window of its action.

        Args:
          frames: float32 `[B, H, W, C]`, the current frames.
          actions: int32 `[B]`, each stream's window (an action index of the grid).
          state: memories, as from `initial_state` or a previous step.
          recorder: optional callable `(layer, input_shapes, output_shape, kind)` called at
            trace time for each op run (`kind` 'op'), each batch norm folded into a conv's
            bias ('bias_add') and each memory write or crop (`kind` 'write' or 'crop',
            `output_shape` the region written or cropped, `(None, elements)` for a halo
            cell's `traffic`), for counting.

        Returns:
          `(outputs, new_state)`; `outputs` as `keras_model(frames)` for the full frame.
        """
        frames = self._check_frames(frames)
        actions = self._check_actions(actions, frames)
        env, state = self._plan.step(frames, actions, state, recorder)
        return keras_graph.structured_outputs(self.keras_model, env), state

    def _check_frames(self, frames):
        frames = tf.convert_to_tensor(frames)
        expected = self.frame_size + (self.input_channels,)
        if frames.shape.rank != 4 or tuple(frames.shape[1:]) != expected:
            raise ValueError(
                f"frames must be [batch, {expected[0]}, {expected[1]}, {expected[2]}] for "
                f"{self.grid!r}, got shape {frames.shape}. Resize frames to the grid's "
                "frame size before the step."
            )
        if not frames.dtype.is_floating:
            raise ValueError(
                f"frames must be float (the model's input scaling), got {frames.dtype.name}; "
                "convert uint8 frames with patchwork_tf.data.clips.preprocess_frames."
            )
        return frames

    def _check_actions(self, actions, frames):
        actions = tf.convert_to_tensor(actions)
        if not actions.dtype.is_integer or actions.shape.rank != 1:
            raise ValueError(
                f"actions must be integer [batch], got {actions.dtype.name} {actions.shape}."
            )
        actions = tf.cast(actions, tf.int32)
        if tf.executing_eagerly():
            bad = actions.numpy()[(actions.numpy() < 0)
                                  | (actions.numpy() >= self.grid.num_actions)]
            if bad.size:
                raise ValueError(
                    f"actions {bad.tolist()} are outside 0..{self.grid.num_actions - 1} of "
                    f"{self.grid!r}.")
        else:
            tf.debugging.assert_less(
                actions, self.grid.num_actions,
                message=f"actions outside 0..{self.grid.num_actions - 1} of {self.grid!r}")
            tf.debugging.assert_non_negative(actions, message="actions must be >= 0")
        return actions

    # ------------------------------------------------------------------ stateful API
    def reset_states(self, batch_size=1):
        """Zero every memory for `batch_size` streams (a new video or a scene cut)."""
        batch_size = int(batch_size)
        initial = self.initial_state(batch_size)
        if self._memories is None or self._batch_size != batch_size:
            self._memories = {
                name: tf.Variable(value, trainable=False, name=f"memory_{name}")
                for name, value in initial.items()
            }
            self._batch_size = batch_size
            self._step_tf = tf.function(self._stateful_step, jit_compile=self._jit_compile)
            self._warm_tf = tf.function(self._stateful_warm_start)
        else:
            for name, value in initial.items():
                self._memories[name].assign(value)

    def _require_states(self, frames):
        if self._memories is None:
            raise RuntimeError("Call reset_states(batch_size) before warm_start or step.")
        if int(frames.shape[0]) != self._batch_size:
            raise ValueError(
                f"frames have batch {frames.shape[0]} but the memories were reset for "
                f"{self._batch_size} streams; call reset_states({frames.shape[0]}).")

    def _stateful_step(self, frames, actions):
        if self._jit_compile:
            # XLA aliases the read and the assigned buffers: the update happens in place.
            state = {name: var.read_value() for name, var in self._memories.items()}
        else:
            # The cells scatter into the variables in place and gather their crops.
            state = dict(self._memories)
        outputs, state = self.step_fn(frames, actions, state)
        for name, value in state.items():
            if value is not self._memories[name]:
                self._memories[name].assign(value)
        return outputs

    def _stateful_warm_start(self, frames):
        outputs, state = self.warm_start_fn(frames)
        for name, value in state.items():
            self._memories[name].assign(value)
        return outputs

    def warm_start(self, frames):
        """Stateful key frame: outputs of the stock model; every memory filled."""
        frames = self._check_frames(frames)
        self._require_states(frames)
        return self._warm_tf(frames)

    def step(self, frames, actions):
        """Stateful step on the variables' memories; see `step_fn`."""
        frames = self._check_frames(frames)
        self._require_states(frames)
        return self._step_tf(frames, self._check_actions(actions, frames))

    def view_shape(self, cell_name):
        """`(rows, cols, channels)` of `memory_view`: a cell's memory without padding."""
        cell = self._cell(cell_name)
        size = cell.input_size if isinstance(cell, cells_lib.HaloCell) else cell.map_size
        return tuple(size) + (self.memory_shape(cell_name)[-1],)

    def memory_view(self, state, cell_name):
        """float32 `[B, H_l, W_l, C]`: a cell's memory in `state` as a full map, no padding."""
        if cell_name not in self._state_cells():
            raise KeyError(f"No memory {cell_name!r}; cells with memories: "
                           f"{self._state_cells()}.")
        cell = self._cell(cell_name)
        if getattr(cell, "write", Write.WINDOW) != Write.WINDOW:
            raise ValueError(
                f"Cell {cell_name!r} writes only halo bands (write='bands'), so its memory's "
                "window interiors are stale; build the twin with full_memory_cells="
                f"[{cell_name!r}] to observe it.")
        memory = state[cell_name]
        if isinstance(cell, cells_lib.GlobalCell):
            return tf.identity(memory)
        (top, _), (left, _) = cell.geometry.pad
        rows, cols = cell.input_size
        return memory[:, top:top + rows, left:left + cols]

    @property
    def folded_variables(self):
        """The step's copies of conv weights with batch norm folded in (`fold_batch_norm`),
        non-trainable; save them with anything that exports the step."""
        return [variable for pair in self._folded.values() for variable in pair]

    @property
    def options(self):
        """The step options as `patchwork_model` takes them (`write` and `context` as their
        string values; `inference`: whether they are the inference preset,
        `INFERENCE_OPTIONS`)."""
        options = dict(jit_compile=self._options.jit_compile, write=self._options.write.value,
                       fold_batch_norm=self._options.fold_batch_norm)
        return dict(options, context=self._options.context.value,
                    full_memory_cells=sorted(self._options.full_memory_cells),
                    inference=options == INFERENCE_OPTIONS)

    def memory(self, cell_name):
        """float32 `[B, H_l, W_l, C]`: a cell's memory (stateful API) as a full map."""
        if self._memories is None:
            raise RuntimeError("Call reset_states(batch_size) first.")
        return self.memory_view(self._memories, cell_name)


# The fastest step options measured on the project's CPU machines (one thread, batch 1):
# XLA with memories updated in place, halo-band writes, batch norm folded into the convs.
# See WORKSPACE_NOTES.md, "Latency" and "Honest empirical latency and the inference preset".
INFERENCE_OPTIONS = dict(jit_compile=True, write="bands", fold_batch_norm=True)
# The differentiable twin training unrolls (stage 3): every option off.
TRAINING_OPTIONS = dict(jit_compile=False, write="window", fold_batch_norm=False)


def patchwork_model(keras_model, grid, jit_compile=None, write=None, full_memory_cells=(),
                    context="memory", fold_batch_norm=None, inference=False):
    """The Patchwork twin of `keras_model` on `grid`; shares `keras_model`'s weights.

    `patchwork_model(model, grid)` is the differentiable twin training unrolls;
    `patchwork_model(model, grid, inference=True)` the fastest step measured for inference
    (`INFERENCE_OPTIONS`: XLA, band writes, batch norm folded), with the same outputs within
    float rounding. The step options below override the default twin's one by one; with
    `inference=True` they are the preset's, and a different value is refused (build
    `patchwork_model(model, grid, ...)` with the options you want instead).

    Args:
      keras_model: a tf_keras functional CNN with one image input of the grid's frame size.
      grid: the `WindowGrid` of the action space.
      jit_compile: compile the stateful step with XLA (memories update in place; depthwise
        convs run as shifted multiply-adds, which XLA fuses). Default False.
      write: `Write.WINDOW` or 'window' (the paper's state update; every memory shows the
        patchwork) or `Write.BANDS` or 'bands' (only the halo bands other windows read are
        written: same outputs, less traffic). Default 'window'.
      full_memory_cells: halo cells that write whole windows even with write='bands', e.g.
        the cell whose memory the attention policy observes.
      context: `Context.MEMORY` or 'memory' (Patchwork Cells) or `Context.ZEROS` or 'zeros':
        every window is processed as a plain zero-padded crop, the "without Patchwork Cell" ablation of Tab. 2; predictions are
        still assembled over the full frame.
      fold_batch_norm: an inference option: each BatchNormalization right after a linear
        Conv2D / DepthwiseConv2D on windows is folded into that conv's weights for the step
        (one fused conv + bias + activation instead of conv, batch norm, activation). The
        folded weights are a snapshot of `keras_model`'s weights when the twin is built:
        build a new twin after training. Such a step refuses gradients (LookupError naming
        the fix). The warm start runs the stock layers as they are. Default False.
      inference: take `INFERENCE_OPTIONS` for the three options above.

    Raises:
      ValueError: `inference=True` with an option that contradicts the preset, an unknown
        `write` or `context`, or a model the converter cannot plan (`plan.plan`).
    """
    options = dict(jit_compile=jit_compile, write=write, fold_batch_norm=fold_batch_norm)
    defaults = INFERENCE_OPTIONS if inference else TRAINING_OPTIONS
    if inference:
        conflicts = {k: v for k, v in options.items()
                     if v is not None and v != INFERENCE_OPTIONS[k]}
        if conflicts:
            raise ValueError(
                f"inference=True takes the inference preset {INFERENCE_OPTIONS}, but "
                f"{conflicts} contradicts it; drop those options, or build the twin without "
                "inference=True and pass every option you want.")
    options = {k: defaults[k] if v is None else v for k, v in options.items()}
    return PatchworkModel(keras_model, grid, full_memory_cells=full_memory_cells,
                          context=context, **options)
