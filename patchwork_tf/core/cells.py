"""The Patchwork Cell (Sec. 3.2): a full-frame memory in front of an op that needs context.

Two kinds, both Keras layers with explicit state (the memory goes in and comes out, so a step
is a pure function that can be exported, batched across streams and differentiated):

* `HaloCell`, in front of a conv / depthwise / separable conv / pooling layer with context:
  (1) state update: the window's features overwrite the memory at the window's place, with
  `tf.tensor_scatter_nd_update`; (2) feature propagation: the window plus its halo is cropped
  from the memory; (3) the stock layer's op runs with VALID padding, so the output has the
  window's size (divided by the stride).
* `GlobalCell`, in front of a global op (global pooling, reshape of a prediction map,
  upsampling): it writes the window into a full-frame memory, and the global op runs on the
  whole memory.

Memories are per batch element, and so are windows: `actions` is int32 `[B]`, each stream's
action, and a cell knows every action's window in its own map. A halo cell stores its memory
with the stock op's padding already in place (zeros, or -inf for SAME max pooling), so the crop
is the exact input of the VALID op, and the frame border needs no special case.
"""
import contextlib
import dataclasses
import enum

import numpy as np
import tensorflow as tf
from tensorflow.compiler.tf2xla.python import xla
import tf_keras

from patchwork_tf.core import grid as grid_lib
from patchwork_tf.core import spatial_ops


class Write(enum.StrEnum):
    """How a halo cell updates its memory (`HaloCell`'s `write`)."""

    WINDOW = "window"  # the whole window (the paper's state update)
    BANDS = "bands"    # only the halo bands other windows read


class Context(enum.StrEnum):
    """What a halo cell's window sees around it (`HaloCell`'s `context`)."""

    MEMORY = "memory"  # the cell's memory: the Patchwork Cell
    ZEROS = "zeros"    # zero padding, a plain crop: the ablation of Tab. 2


def option(kind, value, name):
    """`value` (a member of the enum `kind` or its string value) as a `kind` member, or a
    ValueError naming the option `name` and the accepted values."""
    try:
        return kind(value)
    except ValueError:
        raise ValueError(
            f"{name} must be one of {[member.value for member in kind]} (or "
            f"{kind.__name__}.{'/'.join(member.name for member in kind)}), got {value!r}."
        ) from None


def window_indices(offsets, size):
    """int32 `[B, rows, cols, 3]` gather/scatter indices `(b, y0 + i, x0 + j)`.

    Args:
      offsets: int32 `[B, 2]`, each stream's `(y0, x0)` in the memory.
      size: static `(rows, cols)` of the region.
    """
    offsets = tf.convert_to_tensor(offsets, tf.int32)
    batch = tf.shape(offsets)[0]
    rows, cols = size
    b = tf.broadcast_to(tf.range(batch)[:, None, None], (batch, rows, cols))
    y = offsets[:, 0, None, None] + tf.range(rows)[None, :, None]
    x = offsets[:, 1, None, None] + tf.range(cols)[None, None, :]
    y = tf.broadcast_to(y, (batch, rows, cols))
    x = tf.broadcast_to(x, (batch, rows, cols))
    return tf.stack([b, y, x], axis=-1)


def stream_indices(table, actions):
    """Gather/scatter indices `[B, ...]` of each stream's action from a per-action `table`
    (`[A, ..., 3]`, batch slot 0, built once per cell), with each stream's batch index."""
    return with_batch_index(tf.gather(tf.constant(table), actions), actions)


def with_batch_index(indices, actions):
    """`indices` (`[B, ..., 3]`, batch slot 0, or one `[..., 3]` for every stream) with stream
    `b`'s batch slot set to `b`; added at trace time when the batch size is static."""
    batch = actions.shape[0]
    if isinstance(indices, np.ndarray) and batch is not None:
        indices = np.broadcast_to(indices, (batch,) + indices.shape)
        offsets = np.arange(batch, dtype=np.int32).reshape((batch,) + (1,) * (indices.ndim - 1))
        return tf.constant(indices + offsets * np.array([1, 0, 0], np.int32))
    if isinstance(indices, np.ndarray):
        indices = tf.broadcast_to(indices, tf.concat([tf.shape(actions), indices.shape], 0))
    rank = indices.shape.rank
    if batch == 1:
        return indices
    if batch is not None:
        offsets = np.arange(batch, dtype=np.int32).reshape((batch,) + (1,) * (rank - 1))
        return indices + offsets * np.array([1, 0, 0], np.int32)
    offsets = tf.reshape(tf.range(tf.shape(actions)[0]), [-1] + [1] * (rank - 1))
    return indices + offsets * tf.constant([1, 0, 0])


_SLICE_WINDOWS = [False]


@contextlib.contextmanager
def slice_windows():
    """Within this context, functions traced write and crop whole windows of memory tensors of
    batch 1 by dynamic (update) slices instead of scatters and gathers.

    For TensorFlow Lite (`serving.tflite_export`): it lowers a tensor scatter to `SCATTER_ND`
    plus masking, several passes over the whole memory, and a gather to `GATHER_ND`, both slow;
    `DYNAMIC_UPDATE_SLICE` and `SLICE` copy only the window (3-4x faster for a 194 x 194 x 96
    memory). TF graphs and XLA keep the scatters (faster there, see WORKSPACE_NOTES).
    """
    _SLICE_WINDOWS[0], previous = True, _SLICE_WINDOWS[0]
    try:
        yield
    finally:
        _SLICE_WINDOWS[0] = previous


_DEFERRED_WRITES = [None]


@contextlib.contextmanager
def deferred_window_writes(in_graph=()):
    """Within this context, functions traced leave the memory write of every whole-window
    `HaloCell` to their caller, except the cells whose op layers are named in `in_graph`.

    Such a cell crops the window plus its halo from the memory as given, lays the fresh
    window over the crop's interior (the memory outside the window is what the write would
    leave there), and returns the window `[B, h, w, C]` in place of its new memory: the
    caller writes it at the window's place (`HaloCell.memory_corners`). For TensorFlow Lite
    (`serving.tflite_export`), whose `DYNAMIC_UPDATE_SLICE` of a graph input copies the whole
    memory first: the interpreter's caller keeps the memories in the step's input tensors
    and copies only the windows. `GlobalCell`s, whose op reads the whole memory, and the
    cells in `in_graph` (the one the policy observes) still write in the graph.
    """
    _DEFERRED_WRITES[0], previous = frozenset(in_graph), _DEFERRED_WRITES[0]
    try:
        yield
    finally:
        _DEFERRED_WRITES[0] = previous


def _slice_start(memory, offsets):
    """The `[0, y0, x0, 0]` start of stream 0's window, when `slice_windows` applies."""
    if (_SLICE_WINDOWS[0] and not isinstance(memory, tf.Variable)
            and memory.shape[0] == 1 and offsets.shape[0] == 1):
        return tf.concat([[0], tf.reshape(offsets, [2]), [0]], 0)
    return None


def scatter_update(memory, indices, updates):
    """`memory[indices] = updates`: `tf.tensor_scatter_nd_update` on a memory tensor, or its
    in-place form on a memory variable (the stateful step), which copies nothing else."""
    if isinstance(memory, tf.Variable):
        memory.scatter_nd_update(indices, updates)
        return memory
    return tf.tensor_scatter_nd_update(memory, indices, updates)


def write_window(memory, window, offsets):
    """State update: `memory[b, y0:y0+h, x0:x0+w] = window[b]` for each stream `b`.

    Args:
      memory: `[B, R, C_, D]`, a tensor or (in place) a variable.
      window: `[B, h, w, D]`.
      offsets: int32 `[B, 2]`, the window's `(y0, x0)` in `memory`.
    """
    size = (window.shape[1], window.shape[2])
    offsets = tf.convert_to_tensor(offsets, tf.int32)
    start = _slice_start(memory, offsets)
    if start is not None:
        return xla.dynamic_update_slice(memory, window, start)
    return scatter_update(memory, window_indices(offsets, size), window)


def crop_window(memory, offsets, size):
    """Feature propagation: `memory[b, y0:y0+rows, x0:x0+cols]` per stream, `[B, rows, cols, D]`.

    A gather, so that on a memory variable only the crop is read."""
    offsets = tf.convert_to_tensor(offsets, tf.int32)
    start = _slice_start(memory, offsets)
    if start is not None:
        return tf.slice(memory, start, (1,) + tuple(size) + (memory.shape[-1],))
    return tf.gather_nd(memory, window_indices(offsets, size))


def crop_regions(source, corners, actions, size, gather=False):
    """`source[b, y0:y0+rows, x0:x0+cols]` with `(y0, x0) = corners[actions[b]]` per stream.

    Args:
      source: float tensor `[B, R, C_, D]` (not a variable).
      corners: int `[A, 2]`, each action's region corner in `source`.
      actions: int32 `[B]`.
      size: static `(rows, cols)`.
      gather: index the regions with a gather. Otherwise, with a static batch size, one
        slice per stream (a plain copy of the region) is taken; under XLA a slice's start
        must be a compile-time constant, so a step compiled with XLA must gather, or XLA
        compiles it once per action.

    Returns `[B, rows, cols, D]`.
    """
    starts = tf.gather(tf.constant(np.asarray(corners, np.int32)), actions)
    batch = actions.shape[0]
    if gather or batch is None:
        return tf.gather_nd(source, window_indices(starts, size))
    shape = (1,) + tuple(size) + (source.shape[-1],)
    crops = [tf.slice(source, tf.concat([[b], starts[b], [0]], 0), shape) for b in range(batch)]
    return crops[0] if batch == 1 else tf.concat(crops, 0)


def _as_windows(windows):
    return tuple(
        w if isinstance(w, grid_lib.Window) else grid_lib.Window(*(int(v) for v in w))
        for w in windows)


@tf_keras.saving.register_keras_serializable(package="patchwork_tf")
class HaloCell(tf_keras.layers.Layer):
    """Patchwork Cell in front of a spatial op with context (Sec. 3.2, Fig. 1b).

    Wraps a stock layer (sharing its weights) whose input map is `input_size = (H, W)` in the
    stock model; `windows` lists each action's window in that map (all of one size `h x w`).
    Its memory is float `[B, H + pad_top + pad_bottom, W + pad_left + pad_right, C]`: the
    stock op's padded input. `call((window, actions, memory))` with `window` float
    `[B, h, w, C]` and `actions` int32 `[B]` returns `(outputs [B, h / s, w / s, C_out],
    new_memory)`, where `outputs` equals the stock layer's output on the memory's full map
    with the window written in, restricted to the window.

    `write`: 'window' overwrites the whole window in the memory (the paper's state update;
    the memory then shows the patchwork of Fig. 2); 'bands' writes only the rows and columns
    of the window that other windows' halos read, and assembles the crop from the fresh
    window and a ring read from the memory. Outputs are identical; 'bands' moves far less
    memory per step, but the memory's window interiors are then stale.

    `ring_assembly` (write 'bands'): how the crop is built from the window and the ring,
    which is gathered from the memory in one go: 'concat' (the ring's runs and the window's
    rows concatenated in raster order, one copy of the window; the faster in graph mode; with
    an unknown batch size it falls back to 'scatter') or 'scatter' (the window zero-padded,
    the ring scattered over the padding; the faster under XLA, which updates the pad's
    buffer in place).

    `context`: 'memory' (the Patchwork Cell) or 'zeros', the ablation of Tab. 2: the window's
    halo is zero padding, as if the window were processed as a plain crop; the memory is then
    written only to be observed (pass `memory=None` to skip it).
    """

    def __init__(self, op_layer, input_size, windows, zero_padding=None, write="window",
                 context="memory", depthwise_as_shifts=False, ring_assembly="concat", **kwargs):
        super().__init__(**kwargs)
        write = option(Write, write, "write")
        if ring_assembly not in ("concat", "scatter"):
            raise ValueError(
                f"ring_assembly must be 'concat' or 'scatter', got {ring_assembly!r}.")
        self.ring_assembly = ring_assembly
        self.context = option(Context, context, "context")
        self.op_layer = op_layer
        self.input_size = tuple(int(v) for v in input_size)
        self.windows = _as_windows(windows)
        self.zero_padding = (
            tuple(tuple(int(p) for p in pair) for pair in zero_padding)
            if zero_padding is not None else None
        )
        self.depthwise_as_shifts = bool(depthwise_as_shifts)
        self.geometry = spatial_ops.layer_geometry(op_layer, self.input_size, self.zero_padding)
        self.fill_value = spatial_ops.fill_value(op_layer)
        (top, bottom), (left, right) = self.geometry.pad
        self.memory_size = (self.input_size[0] + top + bottom, self.input_size[1] + left + right)
        self.window_size = (self.windows[0].h, self.windows[0].w)
        # Halo read past the window's bottom / right edge (the top / left halo is the padding).
        self.read_after = tuple(
            k - s - p0 for k, s, (p0, _) in zip(
                self.geometry.kernel, self.geometry.stride, self.geometry.pad))
        self.write = write if min(self.read_after) >= 0 else Write.WINDOW
        self._averages_in_frame_only = (
            isinstance(op_layer, tf_keras.layers.AveragePooling2D)
            and op_layer.padding.lower() == "same"
        )
        self._band_tables = self._bands() if self.write == Write.BANDS else None
        if self.write == Write.BANDS:
            corners = np.array([(w.y0 + top, w.x0 + left) for w in self.windows], np.int32)
            local = np.concatenate(
                [np.zeros(self._band_tables.shape[:2] + (1,), np.int32), self._band_tables],
                axis=-1)
            self._band_window_indices = local
            self._band_memory_indices = local + np.concatenate(
                [np.zeros((len(corners), 1, 1), np.int32), corners[:, None, :]], axis=-1)
            self._ring_in_crop, self._ring_in_memory = self._ring_points()

    def _bands(self):
        """Per action, the window pixels some other window's halo reads: int32 `[A, P, 2]`
        window-local `(row, col)`, padded to the longest list by repeating its first pixel
        (a repeated write of the same value is harmless)."""
        (top, _), (left, _) = self.geometry.pad
        rows, cols = set(), set()
        for win in self.windows:
            rows.update(range(win.y0 - top, win.y0))
            rows.update(range(win.y0 + win.h, win.y0 + win.h + self.read_after[0]))
            cols.update(range(win.x0 - left, win.x0))
            cols.update(range(win.x0 + win.w, win.x0 + win.w + self.read_after[1]))
        tables = []
        for win in self.windows:
            band = [(y, x) for y in range(win.h) for x in range(win.w)
                    if win.y0 + y in rows or win.x0 + x in cols]
            tables.append(band)
        longest = max(len(t) for t in tables)
        if longest == 0:
            return np.zeros((len(tables), 0, 2), np.int32)
        return np.array([t + [t[0]] * (longest - len(t)) if t else [(0, 0)] * longest
                         for t in tables], np.int32)

    def traffic(self, window_shape):
        """Memory elements one stream's step moves, `(written, cropped)`, for a window of
        shape `[B, h, w, C]`: the window (or its halo bands, `write` 'bands') written into
        the memory, and the window-plus-halo crop read back (with 'bands', the ring read
        from the memory plus the fresh window)."""
        channels = int(window_shape[-1])
        rows, cols = self.geometry.crop_size(tuple(window_shape[1:3]))
        if self.write == Write.WINDOW:
            written = int(window_shape[1]) * int(window_shape[2]) * channels
        else:
            written = self._band_tables.shape[1] * channels
        return written, rows * cols * channels

    def _ring_points(self):
        """The ring around the window in the crop as points: int32 `[P, 3]` `(0, y, x)` in
        the crop, and per action `[A, P, 3]` the same points in the memory."""
        (top, _), (left, _) = self.geometry.pad
        rows, cols = self.geometry.crop_size(self.window_size)
        (h, w) = self.window_size
        points = np.array([(0, y, x) for y in range(rows) for x in range(cols)
                           if not (top <= y < top + h and left <= x < left + w)],
                          np.int32).reshape(-1, 3)
        corners = np.array([(0, win.y0, win.x0) for win in self.windows], np.int32)
        return points, points[None] + corners[:, None]

    def _ring_runs(self):
        """Lengths of the runs of ring points (`_ring_points` order, the crop's raster order)
        before the window's first row, between consecutive window rows, and after its last:
        `h + 1` ints summing to the ring's size."""
        (top, _), (left, _) = self.geometry.pad
        rows, cols = self.geometry.crop_size(self.window_size)
        h, w = self.window_size
        right, bottom = cols - left - w, rows - top - h
        return [top * cols + left] + [right + left] * (h - 1) + [right + bottom * cols]

    def initial_memory(self, batch_size, channels, dtype=tf.float32):
        """A memory of zeros inside the frame and the op's padding value outside it."""
        inside = tf.zeros((batch_size,) + self.input_size + (channels,), dtype)
        return self.pad_full_map(inside)

    def pad_full_map(self, full_map):
        """The padded memory holding a whole map `[B, H, W, C]` (a warm start)."""
        (top, bottom), (left, right) = self.geometry.pad
        return tf.pad(
            full_map, [[0, 0], [top, bottom], [left, right], [0, 0]],
            constant_values=tf.cast(self.fill_value, full_map.dtype),
        )

    def _corners(self, actions):
        """int32 `[B, 2]`: each stream's window-plus-halo corner in the padded memory."""
        table = np.array([(w.y0, w.x0) for w in self.windows], np.int32)
        return tf.gather(tf.constant(table), actions)

    def memory_corners(self):
        """int32 `[A, 2]`: each action's window corner `(row, col)` in the padded memory."""
        (top, _), (left, _) = self.geometry.pad
        return np.array([(w.y0 + top, w.x0 + left) for w in self.windows], np.int32)

    def _window_in_memory(self, actions):
        """int32 `[B, 2]`: each stream's window corner in the padded memory."""
        return tf.gather(tf.constant(self.memory_corners()), actions)

    def _defers_write(self):
        return (_DEFERRED_WRITES[0] is not None and self.write == Write.WINDOW
                and self.op_layer.name not in _DEFERRED_WRITES[0])

    def crop_from(self, padded_source, actions):
        """The window-plus-halo crop of a whole padded map (the current frame, say), gathered:
        any batch size, and XLA compiles it once for every action (`crop_regions`)."""
        return crop_regions(padded_source, [(w.y0, w.x0) for w in self.windows], actions,
                            self.geometry.crop_size(self.window_size), gather=True)

    def crop_from_map(self, full_map, actions, gather=False):
        """`crop_from` of the unpadded whole map `[B, H, W, C]` (the current frame) without
        padding all of it: per stream, the crop's part inside the map is sliced and only
        the padding it needs is added. With `gather` (under XLA, where a slice's start must
        be a compile-time constant, `crop_regions`) or a batch size unknown at trace time,
        the padded map is cropped by `crop_from` instead."""
        if gather or actions.shape[0] is None:
            return self.crop_from(self.pad_full_map(full_map), actions)
        rows, cols = self.geometry.crop_size(self.window_size)
        (top, _), (left, _) = self.geometry.pad
        tables = []
        for win in self.windows:
            y, x = win.y0 - top, win.x0 - left
            y0, x0 = max(y, 0), max(x, 0)
            y1, x1 = min(y + rows, self.input_size[0]), min(x + cols, self.input_size[1])
            tables.append([y0, x0, y1 - y0, x1 - x0, y0 - y, y + rows - y1, x0 - x,
                           x + cols - x1])
        table = tf.gather(tf.constant(np.array(tables, np.int32)), actions)
        channels = full_map.shape[-1]
        crops = []
        for b in range(actions.shape[0]):
            inside = tf.slice(full_map, tf.concat([[b], table[b, :2], [0]], 0),
                              tf.concat([[1], table[b, 2:4], [channels]], 0))
            paddings = tf.concat([[[0, 0]], tf.reshape(table[b, 4:], (2, 2)), [[0, 0]]], 0)
            crop = tf.pad(inside, paddings,
                          constant_values=tf.cast(self.fill_value, full_map.dtype))
            crops.append(tf.reshape(crop, (1, rows, cols, channels)))
        return crops[0] if len(crops) == 1 else tf.concat(crops, 0)

    def zero_context_crop(self, window):
        """The window padded as if it were the whole image: a plain crop (Tab. 2 ablation)."""
        (top, _), (left, _) = self.geometry.pad
        return tf.pad(window, [[0, 0], [top, self.read_after[0]], [left, self.read_after[1]],
                               [0, 0]], constant_values=tf.cast(self.fill_value, window.dtype))

    def run_on_crop(self, crop, actions, folded=None):
        """The VALID op on the window-plus-halo crop of each stream's action; `folded`: see
        `spatial_ops.run_valid`."""
        valid_count = None
        if self._averages_in_frame_only:
            counts = self._in_frame_counts()
            valid_count = tf.constant(counts[:1]) if self.context == Context.ZEROS else tf.gather(
                tf.constant(counts), actions)
        return spatial_ops.run_valid(self.op_layer, crop, valid_count, self.depthwise_as_shifts,
                                     folded)

    def _in_frame_counts(self):
        """float32 `[A, h', w', 1]`: per action, how many cells of each output's pooling
        window lie inside the frame (inside the window itself for context 'zeros')."""
        (top, _), (left, _) = self.geometry.pad
        (kh, kw), (sh, sw) = self.geometry.kernel, self.geometry.stride
        rows, cols = self.geometry.output_size(self.window_size)
        extent = self.window_size if self.context == Context.ZEROS else self.input_size
        counts = []
        for win in self.windows:
            y0, x0 = (0, 0) if self.context == Context.ZEROS else (win.y0, win.x0)
            first_y = y0 - top + sh * np.arange(rows)
            first_x = x0 - left + sw * np.arange(cols)
            in_y = np.clip(first_y + kh, 0, extent[0]) - np.clip(first_y, 0, extent[0])
            in_x = np.clip(first_x + kw, 0, extent[1]) - np.clip(first_x, 0, extent[1])
            counts.append(np.outer(in_y, in_x)[..., None])
        return np.asarray(counts, np.float32)

    def _ring_scatter_crop(self, window, actions, memory):
        """Crop = the fresh window padded, with the ring of halo read from the memory scattered
        over the padding (one copy of the window; the scatter reuses the pad's buffer)."""
        (top, _), (left, _) = self.geometry.pad
        padded = tf.pad(window, [[0, 0], [top, self.read_after[0]], [left, self.read_after[1]],
                                 [0, 0]])
        ring = tf.gather_nd(memory, stream_indices(self._ring_in_memory, actions))
        return tf.tensor_scatter_nd_update(
            padded, with_batch_index(self._ring_in_crop, actions), ring)

    def _ring_concat_crop(self, window, actions, memory):
        """Crop = the ring read from the memory in raster order, its runs interleaved with the
        fresh window's rows in one concatenation (one copy of the window; the splits share
        their inputs' buffers). Needs a static batch size."""
        batch, channels = window.shape[0], window.shape[-1]
        rows = self.window_size[0]
        ring = tf.gather_nd(memory, stream_indices(self._ring_in_memory, actions))
        runs = tf.split(tf.reshape(ring, (-1, channels)), self._ring_runs() * batch)
        window_rows = tf.split(tf.reshape(window, (-1, channels)), batch * rows)
        pieces = []
        for b in range(batch):
            pieces.append(runs[b * (rows + 1)])
            for i in range(rows):
                pieces += [window_rows[b * rows + i], runs[b * (rows + 1) + i + 1]]
        crop_size = self.geometry.crop_size(self.window_size)
        return tf.reshape(tf.concat(pieces, 0), (batch,) + crop_size + (channels,))

    def _ring_crop(self, window, actions, memory):
        """Crop = the fresh window framed by the ring of halo read from the memory."""
        if not len(self._ring_in_crop):
            return window
        if self.ring_assembly == "scatter" or window.shape[0] is None:
            return self._ring_scatter_crop(window, actions, memory)
        return self._ring_concat_crop(window, actions, memory)

    def build(self, input_shape):
        """Builds the stock layer, if it is not yet (a cell from `from_config`), for the
        window's channels."""
        if not self.op_layer.built:
            channels = tf.TensorShape(input_shape[0])[-1]
            self.op_layer.build(tf.TensorShape((None,) + self.input_size + (channels,)))
        super().build(input_shape)

    def call(self, inputs, folded=None):
        """`inputs = (window, actions, memory)`; `folded`: see `spatial_ops.run_valid`."""
        window, actions, memory = inputs
        (top, _), (left, _) = self.geometry.pad
        if self.context == Context.ZEROS:
            if memory is not None:
                memory = (window if self._defers_write() else
                          write_window(memory, window, self._window_in_memory(actions)))
            return self.run_on_crop(self.zero_context_crop(window), actions, folded), memory
        if self._defers_write():
            crop = crop_window(memory, self._corners(actions),
                               self.geometry.crop_size(window.shape[1:3]))
            crop = xla.dynamic_update_slice(crop, window, tf.constant([0, top, left, 0]))
            return self.run_on_crop(crop, actions, folded), window
        if self.write == Write.WINDOW:
            memory = write_window(memory, window, self._window_in_memory(actions))
            crop = crop_window(memory, self._corners(actions),
                               self.geometry.crop_size(window.shape[1:3]))
        else:
            if self._band_tables.shape[1]:
                updates = tf.gather_nd(
                    window, stream_indices(self._band_window_indices, actions))
                memory = scatter_update(
                    memory, stream_indices(self._band_memory_indices, actions), updates)
            crop = self._ring_crop(window, actions, memory)
        return self.run_on_crop(crop, actions, folded), memory

    def get_config(self):
        config = super().get_config()
        config.update(
            op_layer=tf_keras.layers.serialize(self.op_layer),
            input_size=self.input_size,
            windows=[tuple(dataclasses.astuple(w)) for w in self.windows],
            zero_padding=self.zero_padding,
            write=self.write.value,
            context=self.context.value,
            depthwise_as_shifts=self.depthwise_as_shifts,
            ring_assembly=self.ring_assembly,
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["op_layer"] = tf_keras.layers.deserialize(config["op_layer"])
        return cls(**config)


@tf_keras.saving.register_keras_serializable(package="patchwork_tf")
class GlobalCell(tf_keras.layers.Layer):
    """Patchwork Cell in front of a global op (Sec. 3.2): assembles the full frame.

    Its memory is float `[B, H, W, C]`, the full map; `windows` lists each action's window in
    it. `call((window, actions, memory))` writes the window (`[B, h, w, C]`, actions int32
    `[B]`) and returns the new memory, which is both the global op's input and the cell's
    next state.
    """

    def __init__(self, map_size, windows, **kwargs):
        super().__init__(**kwargs)
        self.map_size = tuple(int(v) for v in map_size)
        self.windows = _as_windows(windows)

    def initial_memory(self, batch_size, channels, dtype=tf.float32):
        return tf.zeros((batch_size,) + self.map_size + (channels,), dtype)

    def pad_full_map(self, full_map):
        return full_map

    def call(self, inputs):
        window, actions, memory = inputs
        table = np.array([(w.y0, w.x0) for w in self.windows], np.int32)
        return write_window(memory, window, tf.gather(tf.constant(table), actions))

    def get_config(self):
        config = super().get_config()
        config.update(map_size=self.map_size,
                      windows=[tuple(dataclasses.astuple(w)) for w in self.windows])
        return config
