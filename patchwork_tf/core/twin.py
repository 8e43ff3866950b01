"""From a tf_keras functional CNN to its Patchwork twin (Sec. 3.2, docs/design.md section 4).

`patchwork_model(keras_model, grid)` walks the stock functional graph and decides, per layer,
how it runs when only one window of the frame is processed:

* pointwise layers (1x1 conv, BN, activations, add, multiply, channel concat, dense on a map,
  `Rescaling`, `Normalization` over channels, and the elementwise TensorFlow ops tf_keras
  wraps in `TFOpLambda` layers, e.g. MobileNetV3's hard-swish `x + 3.0`, `x * (1 / 6)`) run on
  the window as they are; the frame's own preprocessing (such layers on the model input) runs
  on the whole current frame, so the first spatial layer still crops its halo from it; a
  pointwise layer's operand that is a whole map of the window's map (DeepLab's image pooling
  broadcast back to the map) is cropped to the window;
* a layer with spatial context (conv, depthwise or separable conv, pooling; with a
  `ZeroPadding2D` in front of a VALID one fused into it) gets a `HaloCell`;
* a global layer (global pooling, reshape, flatten, resizing, upsampling, and any layer whose
  windows would not fall on whole feature cells) gets a `GlobalCell` and runs on the whole
  memory, and everything after it runs on full maps too;
* any other layer that would see a window is refused with its name and type.

The twin shares the stock layers (and so their weights). A step is a pure function of
`(frames, actions, state)`; `PatchworkModel` also keeps the state in variables for the
stateful API of a single set of streams.

The model input is the current frame, which is whole in memory: the first layer's halo is
cropped from it, fresh, rather than from a memory of earlier frames.
"""
import collections
import re
import dataclasses

import numpy as np
import tensorflow as tf
import tf_keras
from tf_keras.src.engine import keras_tensor

from patchwork_tf.core import cells as cells_lib
from patchwork_tf.core import folding
from patchwork_tf.core import grid as grid_lib
from patchwork_tf.core import spatial_ops

_L = tf_keras.layers

POINTWISE_LAYER_TYPES = (
    _L.BatchNormalization, _L.ReLU, _L.Activation, _L.LeakyReLU, _L.PReLU, _L.ELU,
    _L.Softmax, _L.Add, _L.Subtract, _L.Multiply, _L.Average, _L.Maximum, _L.Minimum,
    _L.Dropout, _L.SpatialDropout2D, _L.Rescaling, _L.Dense, _L.Concatenate, _L.Normalization,
)
# Elementwise TensorFlow ops, by the `symbol` of the `TFOpLambda` layer tf_keras wraps them in
# (`x + 3.0` is '__operators__.add', `x * y` 'math.multiply', `tf.clip_by_value` ...).
ELEMENTWISE_TF_OPS = frozenset({
    "__operators__.add", "math.add", "math.subtract", "math.multiply", "math.truediv",
    "math.divide", "math.maximum", "math.minimum", "math.pow", "math.squared_difference",
    "math.negative", "math.abs", "math.square", "math.sqrt", "math.rsqrt", "math.exp",
    "math.log", "math.sigmoid", "math.tanh", "math.softplus", "nn.relu", "nn.relu6",
    "nn.sigmoid", "nn.silu", "nn.swish", "nn.elu", "nn.leaky_relu", "nn.softplus",
    "clip_by_value", "identity", "cast",
})
GLOBAL_LAYER_TYPES = (
    _L.GlobalAveragePooling2D, _L.GlobalMaxPooling2D, _L.Flatten, _L.Reshape, _L.Resizing,
    _L.UpSampling2D, _L.ZeroPadding2D, _L.Cropping2D, _L.Permute,
) + spatial_ops.HALO_LAYER_TYPES

# Domains of a tensor in the twin's step.
FRAME = "frame"    # the model input: the whole current frame
WINDOW = "window"  # the window of a feature map
FULL = "full"      # a whole map (from memory) or a tensor without spatial layout


@dataclasses.dataclass
class _Value:
    domain: str
    stride: int = 1
    map_size: tuple = ()


@dataclasses.dataclass
class _Node:
    """One stock layer call and how the twin runs it."""

    layer: tf_keras.layers.Layer
    node: object           # the tf_keras Node of the stock graph
    input_ids: list
    output_ids: list
    kind: str              # 'pointwise', 'halo', 'global', 'full', 'frame', 'folded_bn'
    cell_name: str = None  # 'halo': the HaloCell; 'global': see assemble
    padding_input_id: int = None  # 'halo' fused with a ZeroPadding2D: the padding's input
    padding_layer: tf_keras.layers.Layer = None  # ... and the ZeroPadding2D itself


def _map_size(keras_tensor):
    return tuple(int(v) for v in keras_tensor.shape[1:3])


def _elementwise_operand(value, map_size):
    """Whether `value`, an argument of a `TFOpLambda` call whose output map is `map_size`,
    keeps the op elementwise: a `[B, H, W, C']` tensor of that map size (C' = C or 1), a
    `[B, 1, 1, C]` broadcast, a scalar, or a non-numeric parameter (a dtype, None)."""
    if isinstance(value, keras_tensor.KerasTensor):
        return value.shape.rank == 4 and tuple(value.shape[1:3]) in (map_size, (1, 1))
    if isinstance(value, (tf.Tensor, np.ndarray, np.generic, bool, int, float)):
        return np.ndim(value) == 0
    return value is None or isinstance(value, (str, tf.dtypes.DType))


def _is_pointwise_layer(layer, node):
    """Whether a layer call computes each output cell from the same cell of its inputs only.

    `POINTWISE_LAYER_TYPES` (`Normalization` only over the channel axis; over a map axis it
    runs on full maps), and a `TFOpLambda` whose op is in `ELEMENTWISE_TF_OPS` and whose
    every argument is an `_elementwise_operand`.
    """
    if isinstance(layer, _L.Normalization):
        return all(axis in (-1, 3) for axis in layer.axis)
    if isinstance(layer, POINTWISE_LAYER_TYPES):
        return True
    if type(layer).__name__ != "TFOpLambda" or layer.symbol not in ELEMENTWISE_TF_OPS:
        return False
    output = tf.nest.flatten(node.outputs)[0]
    if output.shape.rank != 4:
        return False
    operands = list(node.call_args) + [
        value for key, value in node.call_kwargs.items() if key != "name"]
    return all(_elementwise_operand(value, tuple(output.shape[1:3]))
               for value in tf.nest.flatten(operands))


def _unsupported(layer):
    """The converter's refusal of a layer that would see a window."""
    if type(layer).__name__ == "TFOpLambda":
        return ValueError(
            f"Layer {layer.name!r} of type TFOpLambda ({layer.symbol}) is not supported on "
            "windows by the Patchwork converter: only elementwise TensorFlow ops run on "
            f"windows (ops {sorted(ELEMENTWISE_TF_OPS)} on tensors of the same map size, "
            "[B, 1, 1, C] broadcasts and scalars). Replace it with a Keras layer or an "
            "elementwise op.")
    return ValueError(
        f"Layer {layer.name!r} of type {type(layer).__name__} is not supported on "
        "windows by the Patchwork converter: it is neither pointwise nor a known "
        "spatial or global op. Supported: "
        f"{sorted({t.__name__ for t in POINTWISE_LAYER_TYPES + GLOBAL_LAYER_TYPES})} "
        "and elementwise TFOpLambda ops.")


def _is_broadcast_vector(keras_tensor):
    """A tensor without spatial layout: rank != 4, or a 1x1 map that broadcasts."""
    shape = keras_tensor.shape
    return shape.rank != 4 or tuple(shape[1:3]) == (1, 1)


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

    def __init__(self, keras_model, grid, jit_compile=False, write="window",
                 full_memory_cells=(), context="memory", fold_batch_norm=False, name=None):
        super().__init__(name=name or "patchwork_" + re.sub(r"\W", "_", keras_model.name))
        if not isinstance(grid, grid_lib.WindowGrid):
            raise TypeError(f"grid must be a WindowGrid, got {type(grid).__name__}.")
        if not getattr(keras_model, "_is_graph_network", False):
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
        frame_size = _map_size(keras_model.inputs[0])
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
        self._jit_compile = bool(jit_compile)
        self._write = write
        self._context = context
        self._full_memory_cells = set(full_memory_cells)
        self._plan()
        self.fold_batch_norm = bool(fold_batch_norm)
        self._folded = self._fold_batch_norms() if fold_batch_norm else {}
        unknown = self._full_memory_cells - set(self.halo_cells)
        if unknown:
            raise ValueError(f"full_memory_cells {sorted(unknown)} are not halo cells of the "
                             f"twin; halo cells: {list(self.halo_cells)}.")
        self._memories = None
        self._step_tf = tf.function(self._stateful_step, jit_compile=jit_compile)
        self._warm_tf = tf.function(self._stateful_warm_start)

    # ------------------------------------------------------------------ planning
    def _plan(self):
        model = self.keras_model
        self._input_id = id(model.inputs[0])
        consumers = collections.defaultdict(list)
        ordered = []
        for depth in sorted(model._nodes_by_depth, reverse=True):
            for node in model._nodes_by_depth[depth]:
                if node.is_input:
                    continue
                ordered.append(node)
                for t in node.keras_inputs:
                    consumers[id(t)].append(node)
        self._keras_tensors = {}
        for node in ordered:
            for t in node.keras_inputs + tf.nest.flatten(node.outputs):
                self._keras_tensors[id(t)] = t
        self._keras_tensors[self._input_id] = model.inputs[0]

        values = {self._input_id: _Value(FRAME, 1, self.frame_size)}
        self._nodes = []
        self.halo_cells = {}
        self.global_cells = {}     # cell name -> GlobalCell
        self._assemble_cell = {}   # id of a window tensor -> name of the GlobalCell assembling it
        self._cell_input = {}      # cell name -> id of the tensor whose memory it holds
        fused = {}                 # id of a ZeroPadding2D output -> (padding, its input id)

        for node in ordered:
            layer = node.layer
            in_ids = [id(t) for t in node.keras_inputs]
            out_ids = [id(t) for t in tf.nest.flatten(node.outputs)]
            ins = [values[i] if i not in fused else None for i in in_ids]
            spatial_ins = [v for v in ins if v is not None and v.domain in (FRAME, WINDOW)]
            if len(layer._inbound_nodes) > 1:
                raise ValueError(
                    f"Layer {layer.name!r} ({type(layer).__name__}) is called more than once; "
                    "the Patchwork converter needs each layer called once."
                )

            if any(v is None for v in ins):
                padding_layer, pad_in = fused[in_ids[0]]
                kind, out_value = self._plan_halo(
                    node, layer, pad_in, values[pad_in], padding_layer.padding)
                self._nodes.append(_Node(layer, node, in_ids, out_ids, kind,
                                         cell_name=layer.name, padding_input_id=pad_in,
                                         padding_layer=padding_layer))
            elif not spatial_ins:
                kind, out_value = "full", _Value(FULL)
                self._nodes.append(_Node(layer, node, in_ids, out_ids, kind))
            elif isinstance(layer, _L.ZeroPadding2D) and self._fusable_padding(
                    layer, node, consumers[out_ids[0]], ins[0]):
                fused[out_ids[0]] = (layer, in_ids[0])
                continue
            elif isinstance(layer, spatial_ops.HALO_LAYER_TYPES) and self._window_capable(
                    layer, ins[0], node.keras_inputs[0]):
                kind, out_value = self._plan_halo(node, layer, in_ids[0], ins[0], None)
                self._nodes.append(_Node(layer, node, in_ids, out_ids, kind,
                                         cell_name=layer.name if kind == "halo" else None))
            elif _is_pointwise_layer(layer, node) and self._pointwise_ok(layer, node, ins):
                windows = [v for v in ins if v.domain == WINDOW]
                if not windows and not isinstance(layer, _L.Dense):
                    # Preprocessing of the frame: it stays whole, and fresh for halo crops.
                    out_value, kind = _Value(FRAME, 1, self.frame_size), "frame"
                else:
                    out_value = _Value(WINDOW, windows[0].stride if windows else 1,
                                       windows[0].map_size if windows else self.frame_size)
                    kind = "pointwise"
                self._nodes.append(_Node(layer, node, in_ids, out_ids, kind))
            elif (isinstance(layer, GLOBAL_LAYER_TYPES + POINTWISE_LAYER_TYPES)
                  or _is_pointwise_layer(layer, node)):
                for i, v in zip(in_ids, ins):
                    if v.domain == WINDOW:
                        self._add_assemble(i, v)
                out_value = _Value(FULL)
                self._nodes.append(_Node(layer, node, in_ids, out_ids, "global"))
            else:
                raise _unsupported(layer)
            for i in out_ids:
                values[i] = out_value

        self._output_ids = [id(t) for t in model.outputs]
        for i in self._output_ids:
            if values[i].domain == WINDOW:
                self._add_assemble(i, values[i])
        self._values = values
        self.cell_names = [n.cell_name for n in self._nodes if n.kind == "halo"] + list(
            self.global_cells)

    def _fusable_padding(self, layer, node, consumers, value):
        if len(consumers) != 1:
            return False
        consumer = consumers[0].layer
        if not (isinstance(consumer, spatial_ops.HALO_LAYER_TYPES)
                and consumer.padding.lower() == "valid"):
            return False
        return self._window_capable(consumer, value, node.keras_inputs[0], layer.padding)

    def _window_capable(self, layer, value, keras_input, zero_padding=None):
        map_size = _map_size(keras_input)
        geometry = spatial_ops.layer_geometry(layer, map_size, zero_padding)
        if not geometry.has_context:
            return True
        out_stride = value.stride * geometry.stride[0]
        return (geometry.stride[0] == geometry.stride[1]
                and geometry.tiles_windows(map_size)
                and self.grid.is_aligned(value.stride)
                and self.grid.is_aligned(out_stride))

    def _pointwise_ok(self, layer, node, ins):
        if isinstance(layer, _L.Concatenate) and layer.axis not in (-1, 3):
            return False
        windows = [v for v in ins if v.domain == WINDOW]
        if len({(v.stride, v.map_size) for v in windows}) > 1:
            return False
        # A whole map of the window's map size is cropped to the window (`step_fn`).
        map_size = windows[0].map_size if windows else None
        others = [t for t, v in zip(node.keras_inputs, ins) if v.domain == FULL]
        if not all(_is_broadcast_vector(t) or _map_size(t) == map_size for t in others):
            return False
        return not (any(v.domain == FRAME for v in ins) and len(ins) > 1)

    def _plan_halo(self, node, layer, input_id, value, zero_padding):
        map_size = _map_size(self._keras_tensors[input_id])
        geometry = spatial_ops.layer_geometry(layer, map_size, zero_padding)
        out_value = _Value(WINDOW, value.stride * geometry.stride[0],
                           _map_size(tf.nest.flatten(node.outputs)[0]))
        if not geometry.has_context:
            return "pointwise", out_value
        windows = [self.grid.window_in_map(a, value.stride, map_size)
                   for a in range(self.grid.num_actions)]
        write = "window" if layer.name in self._full_memory_cells else self._write
        self.halo_cells[layer.name] = cells_lib.HaloCell(
            layer, map_size, windows, zero_padding, write=write, context=self._context,
            depthwise_as_shifts=self._jit_compile,
            ring_assembly="scatter" if self._jit_compile else "concat", name=f"{layer.name}_cell")
        self._cell_input[layer.name] = input_id
        return "halo", out_value

    def _add_assemble(self, tensor_id, value):
        if tensor_id in self._assemble_cell:
            return
        producer = self._keras_tensors[tensor_id].node.layer.name
        name = f"{producer}_global"
        windows = [self.grid.window_in_map(a, value.stride, value.map_size)
                   for a in range(self.grid.num_actions)]
        self.global_cells[name] = cells_lib.GlobalCell(value.map_size, windows,
                                                       name=f"{name}_cell")
        self._assemble_cell[tensor_id] = name
        self._cell_input[name] = tensor_id

    def _fold_batch_norms(self):
        """Folds each batch norm of `folding.foldable_batch_norms` whose conv runs on windows
        into that conv's weights (inference only).

        Returns `{conv layer name: (kernel, bias)}`, non-trainable variables holding the
        folded weights as they are now; the batch norm's node becomes `folded_bn` (identity).
        """
        pairs = folding.foldable_batch_norms(self.keras_model)
        window_convs = {node.layer.name for node in self._nodes
                        if node.kind in ("halo", "pointwise")}
        folded = {}
        for bn_node in self._nodes:
            conv = pairs.get(bn_node.layer.name)
            if conv is None or bn_node.kind != "pointwise" or conv.name not in window_convs:
                continue
            kernel, bias = spatial_ops.fold_batch_norm(conv, bn_node.layer)
            folded[conv.name] = (
                tf.Variable(kernel, trainable=False, name=f"{conv.name}_folded_kernel"),
                tf.Variable(bias, trainable=False, name=f"{conv.name}_folded_bias"))
            bn_node.kind = "folded_bn"
        return folded

    # ------------------------------------------------------------------ state
    def _cell(self, name):
        return self.halo_cells.get(name) or self.global_cells[name]

    def memory_shape(self, name):
        """`(rows, cols, channels)` of a cell's memory, padding included."""
        cell = self._cell(name)
        channels = int(self._keras_tensors[self._cell_input[name]].shape[-1])
        size = cell.memory_size if isinstance(cell, cells_lib.HaloCell) else cell.map_size
        return tuple(size) + (channels,)

    def _state_cells(self):
        """Cells that keep a memory: all but those fed by the (always whole) frame or its
        preprocessing, and, with zero context, all halo cells but the observed ones."""
        return [n for n in self.cell_names
                if self._values[self._cell_input[n]].domain != FRAME and not (
            self._context == "zeros" and n in self.halo_cells
            and n not in self._full_memory_cells)]

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
    def _call_layer(self, node, env):
        def lookup(t):
            return env[id(t)] if isinstance(t, keras_tensor.KerasTensor) else t
        args = tf.nest.map_structure(lookup, node.node.call_args,
                                     expand_composites=False)
        kwargs = tf.nest.map_structure(lookup, node.node.call_kwargs)
        return node.layer(*args, **kwargs)

    def warm_start_fn(self, frames):
        """One full-frame pass (a key frame) that fills every memory.

        Returns `(outputs, state)`: the stock model's outputs on `frames` and memories that
        hold every cell's full input map.
        """
        frames = self._check_frames(frames)
        env = {self._input_id: frames}
        state = {}
        for node in self._nodes:
            if node.padding_layer is not None:
                env[node.input_ids[0]] = node.padding_layer(env[node.padding_input_id])
            outputs = self._call_layer(node, env)
            for i, y in zip(node.output_ids, tf.nest.flatten(outputs)):
                env[i] = y
        for name in self._state_cells():
            state[name] = self._cell(name).pad_full_map(env[self._cell_input[name]])
        return self._structured_outputs(env), state

    def step_fn(self, frames, actions, state, recorder=None):
        """One Patchwork step: each stream processes only the window of its action.

        Args:
          frames: float32 `[B, H, W, C]`, the current frames.
          actions: int32 `[B]`, each stream's window (an action index of the grid).
          state: memories, as from `initial_state` or a previous step.
          recorder: optional callable `(layer, input_shapes, output_shape, kind)` called at
            trace time for each op run (`kind` 'op') and each memory write or crop (`kind`
            'write' or 'crop', `output_shape` the region written or cropped), for counting.

        Returns:
          `(outputs, new_state)`; `outputs` as `keras_model(frames)` for the full frame.
        """
        frames = self._check_frames(frames)
        actions = self._check_actions(actions, frames)
        state = dict(state)
        frame_window = self.grid.window_in_map(0, 1, self.frame_size)

        def window_of(tensor_id):
            """The window part of a FRAME or WINDOW tensor."""
            if self._values[tensor_id].domain == WINDOW:
                return env[tensor_id]
            return cells_lib.crop_regions(
                env[tensor_id], self.grid.offsets_table(1, self.frame_size), actions,
                (frame_window.h, frame_window.w), gather=self._jit_compile)

        def full_of(tensor_id):
            """The whole map of a tensor, assembling windows in a GlobalCell."""
            if self._values[tensor_id].domain != WINDOW:
                return env[tensor_id]
            name = self._assemble_cell[tensor_id]
            if name not in assembled:
                cell = self.global_cells[name]
                window = env[tensor_id]
                state[name] = cell((window, actions, state[name]))
                assembled[name] = tf.convert_to_tensor(state[name])
                _record(recorder, cell, [], window.shape, "write")
            return assembled[name]

        env = {self._input_id: frames}
        assembled = {}
        for node in self._nodes:
            if node.kind == "halo":
                in_id = node.padding_input_id or node.input_ids[0]
                cell = self.halo_cells[node.cell_name]
                folded = self._folded.get(node.layer.name)
                if self._values[in_id].domain == FRAME and self._context == "memory":
                    crop = cell.crop_from_map(env[in_id], actions, gather=self._jit_compile)
                    outputs = cell.run_on_crop(crop, actions, folded)
                    _record(recorder, cell, [], crop.shape, "crop")
                else:
                    window = window_of(in_id)
                    outputs, new_memory = cell(
                        (window, actions, state.get(node.cell_name)), folded=folded)
                    if new_memory is not None:
                        state[node.cell_name] = new_memory
                    _record_cell_traffic(recorder, cell, window.shape)
                _record(recorder, node.layer, [None], outputs.shape, "op")
            elif node.kind == "pointwise":
                local = dict(env)
                for i in node.input_ids:
                    if self._values[i].domain == FRAME:
                        local[i] = window_of(i)
                    elif (self._values[i].domain == FULL
                          and not _is_broadcast_vector(self._keras_tensors[i])):
                        # A whole map (e.g. an image-pooling branch broadcast to the map):
                        # the op is pointwise, so only its window is needed.
                        value = self._values[node.output_ids[0]]
                        window = self.grid.window_in_map(0, value.stride, value.map_size)
                        local[i] = cells_lib.crop_regions(
                            env[i], self.grid.offsets_table(value.stride, value.map_size),
                            actions, (window.h, window.w), gather=self._jit_compile)
                        _record(recorder, node.layer, [], local[i].shape, "crop")
                if node.layer.name in self._folded:
                    outputs = spatial_ops.run_valid(node.layer, local[node.input_ids[0]],
                                                    folded=self._folded[node.layer.name])
                else:
                    outputs = self._call_layer(node, local)
                _record(recorder, node.layer, [local[i].shape for i in node.input_ids],
                        tf.nest.flatten(outputs)[0].shape, "op")
            elif node.kind == "folded_bn":
                outputs = env[node.input_ids[0]]
                _record(recorder, node.layer, [outputs.shape], outputs.shape, "bias_add")
            elif node.kind == "global":
                local = dict(env)
                for i in node.input_ids:
                    local[i] = full_of(i)
                outputs = self._call_layer(node, local)
                _record(recorder, node.layer, [local[i].shape for i in node.input_ids],
                        tf.nest.flatten(outputs)[0].shape, "op")
            else:
                outputs = self._call_layer(node, env)
                _record(recorder, node.layer, [env[i].shape for i in node.input_ids],
                        tf.nest.flatten(outputs)[0].shape, "op")
            for i, y in zip(node.output_ids, tf.nest.flatten(outputs)):
                env[i] = y
        for i in self._output_ids:
            env[i] = full_of(i)
            if self.fold_batch_norm:
                env[i] = tf.raw_ops.PreventGradient(input=env[i], message=_FOLDED_NO_GRADIENT)
        return self._structured_outputs(env), state

    def _structured_outputs(self, env):
        return tf.nest.map_structure(lambda t: env[id(t)], self.keras_model._nested_outputs)

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
        if getattr(cell, "write", "window") != "window":
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
        """The step's options as `patchwork_model` takes them (`inference`: whether they are
        the inference preset, `INFERENCE_OPTIONS`)."""
        options = dict(jit_compile=self._jit_compile, write=self._write,
                       fold_batch_norm=self.fold_batch_norm)
        return dict(options, context=self._context,
                    full_memory_cells=sorted(self._full_memory_cells),
                    inference=options == INFERENCE_OPTIONS)

    def memory(self, cell_name):
        """float32 `[B, H_l, W_l, C]`: a cell's memory (stateful API) as a full map."""
        if self._memories is None:
            raise RuntimeError("Call reset_states(batch_size) first.")
        return self.memory_view(self._memories, cell_name)


def _record_cell_traffic(recorder, cell, window_shape):
    """Elements a halo cell writes into and crops from its memory in one step."""
    channels = window_shape[-1]
    if cell.write == "window":
        _record(recorder, cell, [], window_shape, "write")
        crop = cell.geometry.crop_size(window_shape[1:3])
        _record(recorder, cell, [], (None,) + crop + (channels,), "crop")
    else:
        band = cell._band_tables.shape[1]
        _record(recorder, cell, [], (None, band, channels), "write")
        crop = cell.geometry.crop_size(window_shape[1:3])
        ring = crop[0] * crop[1] - window_shape[1] * window_shape[2]
        _record(recorder, cell, [], (None, ring + window_shape[1] * window_shape[2], channels),
                "crop")


def _record(recorder, layer, input_shapes, output_shape, kind):
    if recorder is not None:
        recorder(layer, input_shapes, tuple(output_shape), kind)


# The fastest step options measured on the project's CPU machines (one thread, batch 1):
# XLA with memories updated in place, halo-band writes, batch norm folded into the convs.
# See WORKSPACE_NOTES.md, "Latency" and "Honest empirical latency and the inference preset".
INFERENCE_OPTIONS = dict(jit_compile=True, write="bands", fold_batch_norm=True)
# The differentiable twin training unrolls (stage 3): every option off.
TRAINING_OPTIONS = dict(jit_compile=False, write="window", fold_batch_norm=False)
_FOLDED_NO_GRADIENT = (
    "the Patchwork step with fold_batch_norm=True (and inference=True, which folds) runs on "
    "a snapshot of the weights and is not differentiable; build the training twin, "
    "patchwork_tf.patchwork_model(model, grid), to differentiate.")


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
      write: 'window' (the paper's state update; every memory shows the patchwork) or 'bands'
        (only the halo bands other windows read are written: same outputs, less traffic).
        Default 'window'.
      full_memory_cells: halo cells that write whole windows even with write='bands', e.g.
        the cell whose memory the attention policy observes.
      context: 'memory' (Patchwork Cells) or 'zeros': every window is processed as a plain
        zero-padded crop, the "without Patchwork Cell" ablation of Tab. 2; predictions are
        still assembled over the full frame.
      fold_batch_norm: an inference option: each BatchNormalization right after a linear
        Conv2D / DepthwiseConv2D on windows is folded into that conv's weights for the step
        (one fused conv + bias + activation instead of conv, batch norm, activation). The
        folded weights are a snapshot of `keras_model`'s weights when the twin is built:
        build a new twin after training. Such a step refuses gradients (LookupError naming
        the fix). The warm start runs the stock layers as they are. Default False.
      inference: take `INFERENCE_OPTIONS` for the three options above.

    Raises:
      ValueError: `inference=True` with an option that contradicts the preset.
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
