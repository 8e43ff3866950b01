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

Memories are per batch element, and so are windows: `offsets` is int32 `[B, 2]`, the `(row,
col)` of each stream's window in the cell's map. A halo cell stores its memory with the
stock op's padding already in place (zeros, or -inf for SAME max pooling), so the crop is the
exact input of the VALID op, and the frame border needs no special case.
"""
import tensorflow as tf
import tf_keras

from patchwork_tf.core import spatial_ops


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


def write_window(memory, window, offsets):
    """State update: `memory[b, y0:y0+h, x0:x0+w] = window[b]` for each stream `b`.

    Args:
      memory: `[B, R, C_, D]`.
      window: `[B, h, w, D]`.
      offsets: int32 `[B, 2]`, the window's `(y0, x0)` in `memory`.
    """
    size = (window.shape[1], window.shape[2])
    return tf.tensor_scatter_nd_update(memory, window_indices(offsets, size), window)


def crop_window(memory, offsets, size):
    """Feature propagation: `memory[b, y0:y0+rows, x0:x0+cols]` per stream, `[B, rows, cols, D]`."""
    return tf.gather_nd(memory, window_indices(offsets, size))


class HaloCell(tf_keras.layers.Layer):
    """Patchwork Cell in front of a spatial op with context (Sec. 3.2, Fig. 1b).

    Wraps a stock layer (sharing its weights) whose input map is `input_size = (H, W)` in the
    stock model. Its memory is float `[B, H + pad_top + pad_bottom, W + pad_left + pad_right,
    C]`: the stock op's padded input. `call((window, offsets, memory))` with `window` float
    `[B, h, w, C]` and `offsets` int32 `[B, 2]` (the window's corner in the unpadded map)
    returns `(outputs [B, h / s, w / s, C_out], new_memory)`, where `outputs` equals the stock
    layer's output on the memory's full map, restricted to the window.
    """

    def __init__(self, op_layer, input_size, zero_padding=None, depthwise_as_shifts=False,
                 **kwargs):
        super().__init__(**kwargs)
        self.depthwise_as_shifts = bool(depthwise_as_shifts)
        self.op_layer = op_layer
        self.input_size = tuple(int(v) for v in input_size)
        self.zero_padding = (
            tuple(tuple(int(p) for p in pair) for pair in zero_padding)
            if zero_padding is not None else None
        )
        self.geometry = spatial_ops.layer_geometry(op_layer, self.input_size, self.zero_padding)
        self.fill_value = spatial_ops.fill_value(op_layer)
        (top, bottom), (left, right) = self.geometry.pad
        self.memory_size = (self.input_size[0] + top + bottom, self.input_size[1] + left + right)
        self._averages_in_frame_only = (
            isinstance(op_layer, tf_keras.layers.AveragePooling2D)
            and op_layer.padding.lower() == "same"
        )

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

    def run_on_crop(self, crop, offsets):
        """The VALID op on a window-plus-halo crop whose window corner is at `offsets`."""
        valid_count = None
        if self._averages_in_frame_only:
            inside = self.pad_full_map(tf.ones((1,) + self.input_size + (1,), crop.dtype))
            inside = tf.broadcast_to(inside, (tf.shape(offsets)[0],) + inside.shape[1:])
            in_frame = crop_window(inside, offsets, crop.shape[1:3])
            valid_count = tf.nn.avg_pool2d(
                in_frame, self.geometry.kernel, self.geometry.stride, "VALID"
            ) * float(self.geometry.kernel[0] * self.geometry.kernel[1])
        return spatial_ops.run_valid(self.op_layer, crop, valid_count, self.depthwise_as_shifts)

    def call(self, inputs):
        window, offsets, memory = inputs
        (top, _), (left, _) = self.geometry.pad
        memory = write_window(memory, window, offsets + tf.constant([[top, left]], tf.int32))
        crop = crop_window(memory, offsets, self.geometry.crop_size(window.shape[1:3]))
        return self.run_on_crop(crop, offsets), memory

    def get_config(self):
        config = super().get_config()
        config.update(
            op_layer=tf_keras.layers.serialize(self.op_layer),
            input_size=self.input_size,
            zero_padding=self.zero_padding,
            depthwise_as_shifts=self.depthwise_as_shifts,
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["op_layer"] = tf_keras.layers.deserialize(config["op_layer"])
        return cls(**config)


class GlobalCell(tf_keras.layers.Layer):
    """Patchwork Cell in front of a global op (Sec. 3.2): assembles the full frame.

    Its memory is float `[B, H, W, C]`, the full map. `call((window, offsets, memory))`
    writes the window (`[B, h, w, C]` at `offsets`, int32 `[B, 2]`) and returns the new
    memory, which is both the global op's input and the cell's next state.
    """

    def __init__(self, map_size, **kwargs):
        super().__init__(**kwargs)
        self.map_size = tuple(int(v) for v in map_size)

    def initial_memory(self, batch_size, channels, dtype=tf.float32):
        return tf.zeros((batch_size,) + self.map_size + (channels,), dtype)

    def pad_full_map(self, full_map):
        return full_map

    def call(self, inputs):
        window, offsets, memory = inputs
        return write_window(memory, window, offsets)

    def get_config(self):
        config = super().get_config()
        config.update(map_size=self.map_size)
        return config
