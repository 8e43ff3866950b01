"""Compact per-stream memories for serving: keep only what a later step reads.

A halo cell's memory (`core.cells.HaloCell`) is its op's padded input map, `[B, H_l + pads,
W_l + pads, C_l]`, but a step reads from it only the *ring*: the halo around the chosen
window inside the window-plus-halo crop (with write='bands' the crop is the fresh window
framed by the ring read from memory; with write='window' the window is written first, so its
interior is fresh too). Everything a later step can read is therefore the union over all
actions of those rings; what lies outside the frame in it is the op's constant padding (zeros,
or -inf for SAME max pooling), which no step writes. `StateCodec` stores each such cell as
its values at the ring union's in-frame points,

    halo memory `[B, P_l, C_l]`, point `p` = memory pixel `points(cell)[p] = (y, x)`
    (padded-memory coordinates, raster order),

and rebuilds (`unpack`) a full memory before a step: the op's padding outside the frame,
the stored values at the points, zeros elsewhere (never read). So a step from
`unpack(pack(memory))` equals a step from `memory`, and the state a server keeps between
steps shrinks to the bands next to window edges (MobileNetV2 1.0 at 384 px, M=4, N=2:
`tools/stream_state_size.py`).

Cells kept whole (`full_cells`, e.g. the cell the attention policy observes, whose whole map
the policy reads after each step) and `GlobalCell`s (a global op, or the twin's full-frame
outputs, reads their whole map) stay as they are.
"""
import numpy as np
import tensorflow as tf


def halo_points(cell):
    """int32 `[P, 2]`: the `(y, x)` pixels of a `HaloCell`'s padded memory that some action's
    crop reads from memory, inside the frame, in raster order.

    The crop of action `a` is `crop_size(window)` at the window's corner `(y0, x0)` in the
    padded memory; its window part (at `(y0 + top, x0 + left)`) is the fresh window, the rest
    (the ring) is read from memory; the frame is `[top, top + H) x [left, left + W)`.
    """
    (top, _), (left, _) = cell.geometry.pad
    rows, cols = cell.geometry.crop_size(cell.window_size)
    height, width = cell.input_size
    h, w = cell.window_size
    read = np.zeros(cell.memory_size, bool)
    for win in cell.windows:
        crop = np.zeros(cell.memory_size, bool)
        crop[win.y0:win.y0 + rows, win.x0:win.x0 + cols] = True
        crop[win.y0 + top:win.y0 + top + h, win.x0 + left:win.x0 + left + w] = False
        read |= crop
    frame = np.zeros(cell.memory_size, bool)
    frame[top:top + height, left:left + width] = True
    return np.argwhere(read & frame).astype(np.int32).reshape(-1, 2)


def _batched(points, batch_size):
    """int32 `[B, P, 3]` gather/scatter indices `(b, y, x)` of `points` [P, 2] per stream."""
    count = points.shape[0]
    b = tf.broadcast_to(tf.range(batch_size)[:, None, None], tf.stack([batch_size, count, 1]))
    yx = tf.broadcast_to(tf.constant(points)[None], tf.stack([batch_size, count, 2]))
    return tf.concat([b, yx], axis=-1)


class StateCodec:
    """Packs a twin's memories into the compact layout and back (see the module docstring).

    Attributes:
      compact_cells: the halo cells stored as `[B, P_l, C_l]`, in the twin's cell order.
      full_cells: the cells with memories stored whole, in the twin's cell order.
    """

    def __init__(self, twin, full_cells=()):
        """Args:
          twin: a `patchwork_tf.PatchworkModel`.
          full_cells: halo cells to keep whole (e.g. the policy's observed cell).

        Raises:
          ValueError: a name in `full_cells` that is not a cell with a memory.
        """
        cells = list(twin.state_spec())
        unknown = sorted(set(full_cells) - set(cells))
        if unknown:
            raise ValueError(f"full_cells {unknown} are not cells with memories; cells: {cells}.")
        self._twin = twin
        self.compact_cells = [c for c in cells
                              if c in twin.halo_cells and c not in set(full_cells)]
        self.full_cells = [c for c in cells if c not in self.compact_cells]
        self._points = {c: halo_points(twin.halo_cells[c]) for c in self.compact_cells}

    def points(self, cell):
        """int32 `[P, 2]` `(y, x)` in the padded memory of a compact cell's stored values."""
        return self._points[cell].copy()

    def spec(self, batch_size=None):
        """`tf.TensorSpec` per cell: `[B, P_l, C_l]` compact, the twin's memory spec else."""
        memories = self._twin.state_spec(batch_size)
        spec = {}
        for cell, memory in memories.items():
            if cell in self._points:
                spec[cell] = tf.TensorSpec(
                    (batch_size, len(self._points[cell]), memory.shape[-1]), memory.dtype)
            else:
                spec[cell] = memory
        return spec

    def initial_state(self, batch_size):
        """The compact form of `twin.initial_state(batch_size)` without building the compact
        cells' full maps: their points lie inside the frame, where an initial memory is zero."""
        spec = self.spec()
        state = {cell: tf.zeros(tf.concat([tf.reshape(batch_size, [1]),
                                           spec[cell].shape[1:].as_list()], 0), spec[cell].dtype)
                 for cell in self.compact_cells}
        for cell in self.full_cells:
            kept = self._twin.halo_cells.get(cell) or self._twin.global_cells[cell]
            state[cell] = kept.initial_memory(batch_size, self._twin.memory_shape(cell)[-1])
        return {cell: state[cell] for cell in spec}

    def pack(self, memories):
        """Compact state from the twin's memories (tensors `[B, ...]`, cell name -> memory)."""
        packed = {}
        for cell, memory in memories.items():
            if cell in self._points:
                memory = tf.convert_to_tensor(memory)
                packed[cell] = tf.gather_nd(
                    memory, _batched(self._points[cell], tf.shape(memory)[0]))
            else:
                packed[cell] = memory
        return packed

    def unpack(self, packed):
        """The twin's memories from a compact state: stored points in place, the op's padding
        outside the frame, zeros at the pixels no step reads."""
        memories = {}
        for cell, value in packed.items():
            if cell not in self._points:
                memories[cell] = value
                continue
            halo_cell = self._twin.halo_cells[cell]
            value = tf.convert_to_tensor(value)
            batch_size = tf.shape(value)[0]
            indices = _batched(self._points[cell], batch_size)
            if float(halo_cell.fill_value) == 0.0:
                shape = tf.concat([tf.reshape(batch_size, [1]),
                                   list(halo_cell.memory_size) + [value.shape[-1]]], 0)
                memories[cell] = tf.scatter_nd(indices, value, shape)
            else:
                base = halo_cell.initial_memory(batch_size, value.shape[-1], value.dtype)
                memories[cell] = tf.tensor_scatter_nd_update(base, indices, value)
        return memories


def state_bytes(spec):
    """Bytes of one stream's state: the sum over `spec` (TensorSpecs with batch dim first)."""
    return sum(int(np.prod(s.shape[1:])) * s.dtype.size for s in spec.values())
