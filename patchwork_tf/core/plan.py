"""The twin's plan (Sec. 3.2, docs/design.md section 4): how each layer call of a tf_keras
functional CNN runs when only one window of the frame is processed.

`plan(keras_model, grid, options)` walks the stock graph (`core.keras_graph`) and gives one
node per layer call, of a small class that runs itself on the whole frame (`run_full`, the
warm start) and on one window per stream (`run_window`, the step):

* `PointwiseNode`: pointwise layers (1x1 conv, BN, activations, add, multiply, channel concat,
  dense on a map, `Rescaling`, `Normalization` over channels, and the elementwise TensorFlow
  ops tf_keras wraps in `TFOpLambda` layers, e.g. MobileNetV3's hard-swish `x + 3.0`,
  `x * (1 / 6)`) run on the window as they are; an operand that is a whole map of the
  window's map (DeepLab's image pooling broadcast back to the map) is cropped to the window;
* `FrameNode`: such layers on the model input (the frame's own preprocessing) run on the
  whole current frame, so the first spatial layer still crops its halo from it;
* `HaloNode`: a layer with spatial context (conv, depthwise or separable conv, pooling; with
  a `ZeroPadding2D` in front of a VALID one fused into it) runs behind a `HaloCell`;
* `GlobalNode`: a global layer (global pooling, reshape, flatten, resizing, upsampling, and
  any layer whose windows would not fall on whole feature cells) runs on whole maps, its
  window inputs assembled by `GlobalCell`s; `FullNode`: every layer after it, on full maps;
* `FoldedBatchNormNode` (option `fold_batch_norm`): a batch norm folded into the linear conv
  before it, which then runs with the folded weights in the step;
* any other layer that would see a window is refused with its name and type.

The model input is the current frame, which is whole in memory: the first layer's halo is
cropped from it, fresh, rather than from a memory of earlier frames.
"""
import collections
import dataclasses

import numpy as np
import tensorflow as tf
import tf_keras

from patchwork_tf.core import cells as cells_lib
from patchwork_tf.core import folding
from patchwork_tf.core import keras_graph
from patchwork_tf.core import spatial_ops

_L = tf_keras.layers
Write = cells_lib.Write
Context = cells_lib.Context

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

_FOLDED_NO_GRADIENT = (
    "the Patchwork step with fold_batch_norm=True (and inference=True, which folds) runs on "
    "a snapshot of the weights and is not differentiable; build the training twin, "
    "patchwork_tf.patchwork_model(model, grid), to differentiate.")


@dataclasses.dataclass(frozen=True)
class Options:
    """The step options of `patchwork_model` (see there); `write` and `context` take the
    enum members or their string values ('window' / 'bands', 'memory' / 'zeros')."""

    jit_compile: bool = False
    write: Write = Write.WINDOW
    context: Context = Context.MEMORY
    full_memory_cells: frozenset = frozenset()
    fold_batch_norm: bool = False

    def __post_init__(self):
        object.__setattr__(self, "jit_compile", bool(self.jit_compile))
        object.__setattr__(self, "write", cells_lib.option(Write, self.write, "write"))
        object.__setattr__(self, "context",
                           cells_lib.option(Context, self.context, "context"))
        object.__setattr__(self, "full_memory_cells", frozenset(self.full_memory_cells))
        object.__setattr__(self, "fold_batch_norm", bool(self.fold_batch_norm))


@dataclasses.dataclass
class Value:
    """A tensor's place in the step: its domain, stride from the frame, map size."""

    domain: str
    stride: int = 1
    map_size: tuple = ()


def _map_size(tensor):
    return tuple(int(v) for v in tensor.shape[1:3])


def _is_broadcast_vector(tensor):
    """A tensor without spatial layout: rank != 4, or a 1x1 map that broadcasts."""
    shape = tensor.shape
    return shape.rank != 4 or tuple(shape[1:3]) == (1, 1)


def _elementwise_operand(value, map_size):
    """Whether `value`, an argument of a `TFOpLambda` call whose output map is `map_size`,
    keeps the op elementwise: a `[B, H, W, C']` tensor of that map size (C' = C or 1), a
    `[B, 1, 1, C]` broadcast, a scalar, or a non-numeric parameter (a dtype, None)."""
    if keras_graph.is_keras_tensor(value):
        return value.shape.rank == 4 and tuple(value.shape[1:3]) in (map_size, (1, 1))
    if isinstance(value, (tf.Tensor, np.ndarray, np.generic, bool, int, float)):
        return np.ndim(value) == 0
    return value is None or isinstance(value, (str, tf.dtypes.DType))


def _is_pointwise_layer(node):
    """Whether a layer call computes each output cell from the same cell of its inputs only.

    `POINTWISE_LAYER_TYPES` (`Normalization` only over the channel axis; over a map axis it
    runs on full maps), and a `TFOpLambda` whose op is in `ELEMENTWISE_TF_OPS` and whose
    every argument is an `_elementwise_operand`.
    """
    layer = node.layer
    if isinstance(layer, _L.Normalization):
        return all(axis in (-1, 3) for axis in layer.axis)
    if isinstance(layer, POINTWISE_LAYER_TYPES):
        return True
    if type(layer).__name__ != "TFOpLambda" or layer.symbol not in ELEMENTWISE_TF_OPS:
        return False
    output = node.outputs[0]
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


# ---------------------------------------------------------------------------- execution
class Step:
    """One step's context: the streams' `actions` (int32 `[B]`), the memories `state`
    (updated as cells write), and the FLOPs `recorder` (see `PatchworkModel.step_fn`)."""

    def __init__(self, plan_, actions, state, recorder=None):
        self.plan = plan_
        self.actions = actions
        self.state = dict(state)
        self.recorder = recorder
        self._assembled = {}

    def record(self, layer, input_shapes, output_shape, kind):
        if self.recorder is not None:
            self.recorder(layer, input_shapes, tuple(output_shape), kind)

    def crop(self, source, stride, map_size):
        """Each stream's window of a whole map `source` `[B, H_l, W_l, C]` at `stride`."""
        window = self.plan.grid.window_in_map(0, stride, map_size)
        return cells_lib.crop_regions(
            source, self.plan.grid.offsets_table(stride, map_size), self.actions,
            (window.h, window.w), gather=self.plan.options.jit_compile)

    def window_of(self, env, tensor_id):
        """The window part of a FRAME or WINDOW tensor."""
        if self.plan.values[tensor_id].domain == WINDOW:
            return env[tensor_id]
        return self.crop(env[tensor_id], 1, self.plan.frame_size)

    def full_of(self, env, tensor_id):
        """The whole map of a tensor, assembling windows in its GlobalCell (once a step)."""
        if self.plan.values[tensor_id].domain != WINDOW:
            return env[tensor_id]
        name = self.plan.assemble_cell[tensor_id]
        if name not in self._assembled:
            cell = self.plan.global_cells[name]
            window = env[tensor_id]
            self.state[name] = cell((window, self.actions, self.state[name]))
            self._assembled[name] = tf.convert_to_tensor(self.state[name])
            self.record(cell, [], window.shape, "write")
        return self._assembled[name]


class PlanNode:
    """One stock layer call (`graph_node`, a `keras_graph.GraphNode`) in the twin.

    `run_full(env)` runs it on whole maps (the warm start); `run_window(env, step)` in the
    step. Both read their inputs from `env` `{tensor id: tensor}` and add their outputs.
    """

    kind = None

    def __init__(self, graph_node):
        self.graph_node = graph_node
        self.layer = graph_node.layer
        self.input_ids = graph_node.input_ids
        self.output_ids = graph_node.output_ids

    def _store(self, env, outputs):
        for i, y in zip(self.output_ids, tf.nest.flatten(outputs)):
            env[i] = y
        return tf.nest.flatten(outputs)[0]

    def _call(self, env, step):
        output = self._store(env, self.graph_node.call(env))
        step.record(self.layer, [env[i].shape for i in self.input_ids], output.shape, "op")

    def run_full(self, env):
        self._store(env, self.graph_node.call(env))

    def run_window(self, env, step):
        self._call(env, step)


class FullNode(PlanNode):
    """A layer whose inputs are all whole maps (or have no spatial layout)."""

    kind = "full"


class FrameNode(FullNode):
    """Pointwise preprocessing of the whole current frame."""

    kind = "frame"


class GlobalNode(PlanNode):
    """A global layer: its window inputs are assembled into whole maps first."""

    kind = "global"

    def run_window(self, env, step):
        local = dict(env)
        for i in self.input_ids:
            local[i] = step.full_of(env, i)
        self._call(local, step)
        env.update((i, local[i]) for i in self.output_ids)


class PointwiseNode(PlanNode):
    """A pointwise layer on the window. `frame_inputs`: inputs that are the whole frame
    (cropped to the window); `map_inputs`: whole maps of the window's map size (cropped to
    the window at `stride`, `map_size`); `folded`: `(kernel, bias)` of a 1x1 conv with its
    batch norm folded in, or None."""

    kind = "pointwise"

    def __init__(self, graph_node, frame_inputs=(), map_inputs=(), stride=1, map_size=()):
        super().__init__(graph_node)
        self.frame_inputs = tuple(frame_inputs)
        self.map_inputs = tuple(map_inputs)
        self.stride, self.map_size = stride, map_size
        self.folded = None

    def run_window(self, env, step):
        local = env
        if self.frame_inputs or self.map_inputs:
            local = dict(env)
            for i in self.frame_inputs:
                local[i] = step.window_of(env, i)
            for i in self.map_inputs:
                # A whole map (e.g. an image-pooling branch broadcast to the map): the op is
                # pointwise, so only its window is needed.
                local[i] = step.crop(env[i], self.stride, self.map_size)
                step.record(self.layer, [], local[i].shape, "crop")
        if self.folded is not None:
            outputs = spatial_ops.run_valid(self.layer, local[self.input_ids[0]],
                                            folded=self.folded)
        else:
            outputs = self.graph_node.call(local)
        output = self._store(env, outputs)
        step.record(self.layer, [local[i].shape for i in self.input_ids], output.shape, "op")


class FoldedBatchNormNode(PlanNode):
    """A batch norm folded into the conv before it: the identity in the step (the conv's
    bias, counted as one FLOP per element); the stock layer in the warm start."""

    kind = "folded_bn"

    def run_window(self, env, step):
        output = self._store(env, env[self.input_ids[0]])
        step.record(self.layer, [output.shape], output.shape, "bias_add")


class HaloNode(PlanNode):
    """A layer with spatial context behind its `HaloCell` (named `cell_name`).

    `source_id`: the tensor whose memory the cell holds (the input of a fused
    `padding_layer`, else the layer's input); `from_frame`: the source is the current frame,
    whose crops are fresh (no memory); `folded`: see `PointwiseNode`.
    """

    kind = "halo"

    def __init__(self, graph_node, cell, source_id, source_domain, context,
                 padding_layer=None):
        super().__init__(graph_node)
        self.cell = cell
        self.cell_name = graph_node.layer.name
        self.source_id = source_id
        self.source_domain = source_domain
        self.from_frame = source_domain == FRAME and context == Context.MEMORY
        self.padding_layer = padding_layer
        self.folded = None

    def run_full(self, env):
        if self.padding_layer is not None:
            env[self.input_ids[0]] = self.padding_layer(env[self.source_id])
        super().run_full(env)

    def run_window(self, env, step):
        cell, actions = self.cell, step.actions
        if self.from_frame:
            crop = cell.crop_from_map(env[self.source_id], actions,
                                      gather=step.plan.options.jit_compile)
            outputs = cell.run_on_crop(crop, actions, self.folded)
            step.record(cell, [], crop.shape, "crop")
        else:
            window = step.window_of(env, self.source_id)
            outputs, new_memory = cell((window, actions, step.state.get(self.cell_name)),
                                       folded=self.folded)
            if new_memory is not None:
                step.state[self.cell_name] = new_memory
            written, cropped = cell.traffic(window.shape)
            step.record(cell, [], (None, written), "write")
            step.record(cell, [], (None, cropped), "crop")
        self._store(env, outputs)
        step.record(self.layer, [None], outputs.shape, "op")


# ---------------------------------------------------------------------------- planning
@dataclasses.dataclass
class Plan:
    """A twin's plan: `nodes` in the order they run, and what the step needs to run them.

    `values`: each tensor id's `Value`; `tensors`: each tensor id's symbolic tensor;
    `halo_cells` / `global_cells`: cell name -> cell; `assemble_cell`: id of a window tensor
    -> the GlobalCell assembling it; `cell_input`: cell name -> id of the tensor whose memory
    it holds; `folded`: conv name -> `(kernel, bias)` variables (`fold_batch_norm`).
    """

    keras_model: object
    grid: object
    options: Options
    frame_size: tuple
    input_id: int
    output_ids: list
    nodes: list = dataclasses.field(default_factory=list)
    values: dict = dataclasses.field(default_factory=dict)
    tensors: dict = dataclasses.field(default_factory=dict)
    halo_cells: dict = dataclasses.field(default_factory=dict)
    global_cells: dict = dataclasses.field(default_factory=dict)
    assemble_cell: dict = dataclasses.field(default_factory=dict)
    cell_input: dict = dataclasses.field(default_factory=dict)
    folded: dict = dataclasses.field(default_factory=dict)

    def warm_start(self, frames):
        """`(env, state)` of a full-frame pass: every tensor, and every memory in
        `state_cells` filled with its cell's whole input map."""
        env = {self.input_id: frames}
        for node in self.nodes:
            node.run_full(env)
        return env, {name: self.cell(name).pad_full_map(env[self.cell_input[name]])
                     for name in self.state_cells()}

    def step(self, frames, actions, state, recorder=None):
        """`(env, new_state)` of one window step; the outputs in `env` are whole maps."""
        step = Step(self, actions, state, recorder)
        env = {self.input_id: frames}
        for node in self.nodes:
            node.run_window(env, step)
        for i in self.output_ids:
            env[i] = step.full_of(env, i)
            if self.options.fold_batch_norm:
                env[i] = tf.raw_ops.PreventGradient(input=env[i], message=_FOLDED_NO_GRADIENT)
        return env, step.state

    @property
    def cell_names(self):
        return [n.cell_name for n in self.nodes if n.kind == "halo"] + list(self.global_cells)

    def cell(self, name):
        return self.halo_cells.get(name) or self.global_cells[name]

    def state_cells(self):
        """Cells that keep a memory: all but those fed by the (always whole) frame or its
        preprocessing, and, with zero context, all halo cells but the observed ones."""
        return [n for n in self.cell_names
                if self.values[self.cell_input[n]].domain != FRAME and not (
                    self.options.context == Context.ZEROS and n in self.halo_cells
                    and n not in self.options.full_memory_cells)]


class _Planner:
    """Builds a `Plan` node by node (`plan`)."""

    def __init__(self, keras_model, grid, options):
        self.grid, self.options = grid, options
        graph = keras_graph.ordered_nodes(keras_model)
        self.graph = graph
        input_tensor = keras_model.inputs[0]
        self.plan = Plan(keras_model, grid, options, _map_size(input_tensor),
                         keras_graph.tensor_id(input_tensor),
                         [keras_graph.tensor_id(t) for t in keras_model.outputs])
        self.consumers = collections.defaultdict(list)
        for node in graph:
            for t in node.inputs:
                self.consumers[keras_graph.tensor_id(t)].append(node)
            for t in node.inputs + node.outputs:
                self.plan.tensors[keras_graph.tensor_id(t)] = t
        self.plan.tensors[self.plan.input_id] = input_tensor

    def run(self):
        plan_ = self.plan
        values = plan_.values
        values[plan_.input_id] = Value(FRAME, 1, plan_.frame_size)
        fused = {}  # id of a ZeroPadding2D output -> (padding, its input id)
        for node in self.graph:
            layer = node.layer
            in_ids, out_ids = node.input_ids, node.output_ids
            ins = [values[i] if i not in fused else None for i in in_ids]
            spatial_ins = [v for v in ins if v is not None and v.domain in (FRAME, WINDOW)]
            if not keras_graph.single_call(layer):
                raise ValueError(
                    f"Layer {layer.name!r} ({type(layer).__name__}) is called more than once; "
                    "the Patchwork converter needs each layer called once."
                )
            if any(v is None for v in ins):
                padding_layer, pad_in = fused[in_ids[0]]
                planned, out_value = self._halo(node, pad_in, padding_layer)
            elif not spatial_ins:
                planned, out_value = FullNode(node), Value(FULL)
            elif isinstance(layer, _L.ZeroPadding2D) and self._fusable_padding(node, ins[0]):
                fused[out_ids[0]] = (layer, in_ids[0])
                continue
            elif isinstance(layer, spatial_ops.HALO_LAYER_TYPES) and self._window_capable(
                    layer, ins[0], node.inputs[0]):
                planned, out_value = self._halo(node, in_ids[0])
            elif _is_pointwise_layer(node) and self._pointwise_ok(node, ins):
                planned, out_value = self._pointwise(node, ins)
            elif isinstance(layer, GLOBAL_LAYER_TYPES + POINTWISE_LAYER_TYPES) or (
                    _is_pointwise_layer(node)):
                for i, v in zip(in_ids, ins):
                    if v.domain == WINDOW:
                        self._add_assemble(i, v)
                planned, out_value = GlobalNode(node), Value(FULL)
            else:
                raise _unsupported(layer)
            plan_.nodes.append(planned)
            for i in out_ids:
                values[i] = out_value
        for i in plan_.output_ids:
            if values[i].domain == WINDOW:
                self._add_assemble(i, values[i])
        if self.options.fold_batch_norm:
            self._fold_batch_norms()
        unknown = self.options.full_memory_cells - set(plan_.halo_cells)
        if unknown:
            raise ValueError(f"full_memory_cells {sorted(unknown)} are not halo cells of the "
                             f"twin; halo cells: {list(plan_.halo_cells)}.")
        return plan_

    def _fusable_padding(self, node, value):
        """A ZeroPadding2D whose only consumer is a VALID op with context on windows."""
        consumers = self.consumers[node.output_ids[0]]
        if len(consumers) != 1:
            return False
        consumer = consumers[0].layer
        if not (isinstance(consumer, spatial_ops.HALO_LAYER_TYPES)
                and consumer.padding.lower() == "valid"):
            return False
        geometry = spatial_ops.layer_geometry(consumer, _map_size(node.inputs[0]),
                                              node.layer.padding)
        return geometry.has_context and self._window_capable(
            consumer, value, node.inputs[0], node.layer.padding)

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

    def _pointwise_ok(self, node, ins):
        if isinstance(node.layer, _L.Concatenate) and node.layer.axis not in (-1, 3):
            return False
        windows = [v for v in ins if v.domain == WINDOW]
        if len({(v.stride, v.map_size) for v in windows}) > 1:
            return False
        # A whole map of the window's map size is cropped to the window.
        map_size = windows[0].map_size if windows else None
        others = [t for t, v in zip(node.inputs, ins) if v.domain == FULL]
        if not all(_is_broadcast_vector(t) or _map_size(t) == map_size for t in others):
            return False
        return not (any(v.domain == FRAME for v in ins) and len(ins) > 1)

    def _pointwise(self, node, ins):
        windows = [v for v in ins if v.domain == WINDOW]
        if not windows and not isinstance(node.layer, _L.Dense):
            # Preprocessing of the frame: it stays whole, and fresh for halo crops.
            return FrameNode(node), Value(FRAME, 1, self.plan.frame_size)
        out_value = Value(WINDOW, windows[0].stride if windows else 1,
                          windows[0].map_size if windows else self.plan.frame_size)
        frame_inputs = [i for i, v in zip(node.input_ids, ins) if v.domain == FRAME]
        map_inputs = [i for i, t, v in zip(node.input_ids, node.inputs, ins)
                      if v.domain == FULL and not _is_broadcast_vector(t)]
        return PointwiseNode(node, frame_inputs, map_inputs, out_value.stride,
                             out_value.map_size), out_value

    def _halo(self, node, input_id, padding_layer=None):
        layer = node.layer
        value = self.plan.values[input_id]
        map_size = _map_size(self.plan.tensors[input_id])
        zero_padding = padding_layer.padding if padding_layer is not None else None
        geometry = spatial_ops.layer_geometry(layer, map_size, zero_padding)
        out_value = Value(WINDOW, value.stride * geometry.stride[0], _map_size(node.outputs[0]))
        if not geometry.has_context:
            frame_inputs = [input_id] if value.domain == FRAME else []
            return PointwiseNode(node, frame_inputs, stride=out_value.stride,
                                 map_size=out_value.map_size), out_value
        options = self.options
        windows = [self.grid.window_in_map(a, value.stride, map_size)
                   for a in range(self.grid.num_actions)]
        write = Write.WINDOW if layer.name in options.full_memory_cells else options.write
        cell = cells_lib.HaloCell(
            layer, map_size, windows, zero_padding, write=write, context=options.context,
            depthwise_as_shifts=options.jit_compile,
            ring_assembly="scatter" if options.jit_compile else "concat",
            name=f"{layer.name}_cell")
        self.plan.halo_cells[layer.name] = cell
        self.plan.cell_input[layer.name] = input_id
        return HaloNode(node, cell, input_id, value.domain, options.context,
                        padding_layer), out_value

    def _add_assemble(self, tensor_id, value):
        if tensor_id in self.plan.assemble_cell:
            return
        name = f"{keras_graph.producer(self.plan.tensors[tensor_id]).name}_global"
        windows = [self.grid.window_in_map(a, value.stride, value.map_size)
                   for a in range(self.grid.num_actions)]
        self.plan.global_cells[name] = cells_lib.GlobalCell(value.map_size, windows,
                                                            name=f"{name}_cell")
        self.plan.assemble_cell[tensor_id] = name
        self.plan.cell_input[name] = tensor_id

    def _fold_batch_norms(self):
        """Folds each batch norm of `folding.foldable_batch_norms` whose conv runs on windows
        into that conv's weights (inference only): the conv's node gets non-trainable
        variables holding the folded weights as they are now (`Plan.folded`), and the batch
        norm's node becomes a `FoldedBatchNormNode`."""
        pairs = folding.foldable_batch_norms(self.plan.keras_model)
        window_convs = {node.layer.name: node for node in self.plan.nodes
                        if isinstance(node, (HaloNode, PointwiseNode))}
        for index, bn_node in enumerate(self.plan.nodes):
            conv = pairs.get(bn_node.layer.name)
            if conv is None or bn_node.kind != "pointwise" or conv.name not in window_convs:
                continue
            kernel, bias = spatial_ops.fold_batch_norm(conv, bn_node.layer)
            folded = (
                tf.Variable(kernel, trainable=False, name=f"{conv.name}_folded_kernel"),
                tf.Variable(bias, trainable=False, name=f"{conv.name}_folded_bias"))
            self.plan.folded[conv.name] = folded
            window_convs[conv.name].folded = folded
            self.plan.nodes[index] = FoldedBatchNormNode(bn_node.graph_node)


def plan(keras_model, grid, options=Options()):
    """The `Plan` of `keras_model` (a tf_keras functional CNN with one image input of the
    grid's frame size) on `grid` (a `WindowGrid`) with step `options` (`Options`).

    Raises:
      ValueError: a layer called more than once, a layer that cannot run on windows (named
        with its type), or `full_memory_cells` that are not halo cells.
    """
    return _Planner(keras_model, grid, options).run()
