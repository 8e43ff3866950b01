"""Spatial-context ops (conv, depthwise, separable conv, pooling) in their VALID form.

A Patchwork Cell (Sec. 3.2) runs the op of a stock layer with VALID padding on a window plus
its halo. This module holds the two things that needs: the op's padding geometry in the stock
model (`SpatialGeometry`, which reproduces TensorFlow's SAME arithmetic and Keras'
`ZeroPadding2D + VALID` pattern) and the VALID op itself, computed with the stock layer's
weights (`run_valid`).

Dilation (atrous convolution, DeepLab): a kernel `k` with dilation `d` spans
`(k - 1) * d + 1` cells, and the geometry uses that extent throughout, so a dilated SAME
stride-1 op's halo is `d * (k - 1) / 2` cells on each side (any `d`, per axis; wider than the
window if need be); `run_valid` runs the dilated op on the crop.
"""
import dataclasses
import math

import tensorflow as tf
import tf_keras

HALO_LAYER_TYPES = (
    tf_keras.layers.Conv2D,
    tf_keras.layers.DepthwiseConv2D,
    tf_keras.layers.SeparableConv2D,
    tf_keras.layers.MaxPooling2D,
    tf_keras.layers.AveragePooling2D,
)


@dataclasses.dataclass(frozen=True)
class SpatialGeometry:
    """Kernel extent, stride and zero padding of a spatial op along rows and columns.

    Attributes:
      kernel: effective kernel extent `(rows, cols)`, `(k - 1) * dilation + 1`.
      stride: `(rows, cols)`.
      pad: `((top, bottom), (left, right))` padding of the stock op on the full map.
    """

    kernel: tuple
    stride: tuple
    pad: tuple

    def output_size(self, input_size):
        return tuple(
            (n + p0 + p1 - k) // s + 1
            for n, (p0, p1), k, s in zip(input_size, self.pad, self.kernel, self.stride)
        )

    def tiles_windows(self, input_size):
        """Whether the op maps a window of the input to the window `/ stride` of the output.

        Output cell `o` reads padded-input cells `o*s .. o*s + k - 1`. For windows to map onto
        windows, the map must divide by the stride and the output must have `n / s` cells,
        which holds iff `k - s <= pad_before + pad_after <= k - 1`: TF SAME padding on such a
        map, and Keras' `ZeroPadding2D + VALID` stride-2 pattern, both qualify. Then the VALID
        op on the crop `window_start .. window_end - s + k` of the padded map equals the stock
        op restricted to the window.
        """
        return all(
            n % s == 0 and k - s <= p0 + p1 <= k - 1
            for n, (p0, p1), k, s in zip(input_size, self.pad, self.kernel, self.stride)
        )

    def crop_size(self, window_size):
        """Rows and cols of the window-plus-halo crop that a window of `window_size` needs."""
        return tuple(n + k - s for n, k, s in zip(window_size, self.kernel, self.stride))

    @property
    def has_context(self):
        """False for a 1x1 stride-1 op, which is pointwise and needs no cell."""
        return self.kernel != (1, 1) or self.stride != (1, 1)


def _pair(value):
    return tuple(value) if isinstance(value, (tuple, list)) else (value, value)


def _same_padding(size, kernel, stride):
    """TensorFlow's SAME padding `(before, after)`: before = total // 2, the rest after."""
    total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
    return (total // 2, total - total // 2)


def layer_geometry(layer, input_size, zero_padding=None):
    """The `SpatialGeometry` of a stock layer applied to a map of `input_size = (rows, cols)`.

    Args:
      layer: one of `HALO_LAYER_TYPES`, channels-last.
      input_size: `(rows, cols)` of the layer's input in the stock model, before any
        `zero_padding`.
      zero_padding: `((top, bottom), (left, right))` of a `ZeroPadding2D` right before a VALID
        `layer`, or None.
    """
    if getattr(layer, "data_format", "channels_last") != "channels_last":
        raise ValueError(
            f"Layer {layer.name!r} ({type(layer).__name__}) uses data_format="
            f"{layer.data_format!r}; Patchwork Cells support channels_last only."
        )
    if isinstance(layer, (tf_keras.layers.MaxPooling2D, tf_keras.layers.AveragePooling2D)):
        kernel, stride, dilation = _pair(layer.pool_size), _pair(layer.strides), (1, 1)
    else:
        kernel, stride = _pair(layer.kernel_size), _pair(layer.strides)
        dilation = _pair(layer.dilation_rate)
    kernel = tuple((k - 1) * d + 1 for k, d in zip(kernel, dilation))
    padding = layer.padding.lower()
    if padding == "same":
        if zero_padding is not None:
            raise ValueError(f"ZeroPadding2D before SAME layer {layer.name!r} is not supported.")
        pad = tuple(_same_padding(n, k, s) for n, k, s in zip(input_size, kernel, stride))
    elif padding == "valid":
        pad = tuple(tuple(p) for p in zero_padding) if zero_padding else ((0, 0), (0, 0))
    else:
        raise ValueError(
            f"Layer {layer.name!r} ({type(layer).__name__}) has padding={layer.padding!r}; "
            "Patchwork Cells support 'same' and 'valid'."
        )
    return SpatialGeometry(kernel=kernel, stride=stride, pad=pad)


def fill_value(layer):
    """The value outside the frame as the stock op sees it: -inf for SAME max pooling."""
    if isinstance(layer, tf_keras.layers.MaxPooling2D) and layer.padding.lower() == "same":
        return float("-inf")
    return 0.0


def _activate(layer, outputs, bias=None):
    if bias is not None:
        outputs = tf.nn.bias_add(outputs, bias)
    elif getattr(layer, "use_bias", False):
        outputs = tf.nn.bias_add(outputs, layer.bias)
    activation = getattr(layer, "activation", None)
    return activation(outputs) if activation is not None else outputs


def _depthwise_as_shifts(inputs, kernel, strides, dilations):
    """VALID depthwise conv as a sum of `kh * kw` shifted, strided slices times the kernel.

    XLA fuses this into one loop; its native depthwise conv is about 12x slower on CPU
    (docs/design.md section 3). `kernel` is `[kh, kw, C, multiplier]`.
    """
    kh, kw, channels, multiplier = kernel.shape
    if multiplier != 1:
        inputs = tf.repeat(inputs, multiplier, axis=-1)
        kernel = tf.reshape(kernel, (kh, kw, 1, channels * multiplier))
    rows = (inputs.shape[1] - (kh - 1) * dilations[0] - 1) // strides[0] + 1
    cols = (inputs.shape[2] - (kw - 1) * dilations[1] - 1) // strides[1] + 1
    outputs = None
    for i in range(kh):
        for j in range(kw):
            y0, x0 = i * dilations[0], j * dilations[1]
            tap = inputs[:, y0:y0 + (rows - 1) * strides[0] + 1:strides[0],
                         x0:x0 + (cols - 1) * strides[1] + 1:strides[1], :]
            term = tap * tf.reshape(kernel[i, j], (-1,))
            outputs = term if outputs is None else outputs + term
    return outputs


def run_valid(layer, inputs, valid_count=None, depthwise_as_shifts=False, folded=None):
    """The stock layer's op with VALID padding, using the layer's own weights.

    Args:
      layer: one of `HALO_LAYER_TYPES`.
      inputs: float `[B, h + halo_rows, w + halo_cols, C]`, a window with its halo.
      valid_count: for SAME average pooling only, float `[B or 1, h', w', 1]`: how many
        in-frame cells each output window covers, since TF's SAME average excludes padding.
      depthwise_as_shifts: compute a depthwise conv as shifted multiply-adds (for XLA).
      folded: optional `(kernel, bias)` replacing a Conv2D's or DepthwiseConv2D's own weights
        (the layer's kernel and bias with the following batch norm folded in,
        `fold_batch_norm`).

    Returns:
      float `[B, h / stride, w / stride, C_out]`.
    """
    if isinstance(layer, (tf_keras.layers.MaxPooling2D, tf_keras.layers.AveragePooling2D)):
        ksize, strides = _pair(layer.pool_size), _pair(layer.strides)
        if isinstance(layer, tf_keras.layers.MaxPooling2D):
            return tf.nn.max_pool2d(inputs, ksize, strides, "VALID")
        pooled = tf.nn.avg_pool2d(inputs, ksize, strides, "VALID")
        if valid_count is None:
            return pooled
        return pooled * float(ksize[0] * ksize[1]) / valid_count
    strides, dilations = _pair(layer.strides), _pair(layer.dilation_rate)
    kernel, bias = folded if folded is not None else (None, None)
    if isinstance(layer, tf_keras.layers.SeparableConv2D):
        outputs = tf.nn.separable_conv2d(
            inputs, layer.depthwise_kernel, layer.pointwise_kernel,
            strides=(1,) + strides + (1,), padding="VALID", dilations=dilations,
        )
    elif isinstance(layer, tf_keras.layers.DepthwiseConv2D) and depthwise_as_shifts:
        outputs = _depthwise_as_shifts(
            inputs, layer.depthwise_kernel if kernel is None else kernel, strides, dilations)
    elif isinstance(layer, tf_keras.layers.DepthwiseConv2D):
        outputs = tf.nn.depthwise_conv2d(
            inputs, layer.depthwise_kernel if kernel is None else kernel,
            strides=(1,) + strides + (1,), padding="VALID",
            dilations=dilations,
        )
    else:
        outputs = tf.nn.convolution(
            inputs, layer.kernel if kernel is None else kernel, strides=strides,
            padding="VALID", dilations=dilations)
    return _activate(layer, outputs, bias)


def fold_batch_norm(conv, batch_norm):
    """`(kernel, bias)` of `conv` followed by inference-mode `batch_norm`, as one conv.

    `batch_norm(conv(x)) = conv'(x)` with `kernel' = kernel * s` per output channel and
    `bias' = (bias - moving_mean) * s + beta`, `s = gamma / sqrt(moving_variance + epsilon)`.
    Computed from the layers' current weights.

    Args:
      conv: a linear (no activation) `Conv2D` (kernel `[kh, kw, C_in, C_out]`) or
        `DepthwiseConv2D` (kernel `[kh, kw, C, multiplier]`, output channel
        `c * multiplier + m`).
      batch_norm: a `BatchNormalization` over the last axis of `conv`'s output.
    """
    depthwise = isinstance(conv, tf_keras.layers.DepthwiseConv2D)
    kernel = conv.depthwise_kernel if depthwise else conv.kernel
    channels = int(kernel.shape[2] * kernel.shape[3]) if depthwise else int(kernel.shape[3])
    scale = tf.math.rsqrt(batch_norm.moving_variance + batch_norm.epsilon)
    if batch_norm.gamma is not None:
        scale = scale * batch_norm.gamma
    bias = conv.bias if conv.use_bias else tf.zeros((channels,), kernel.dtype)
    bias = (bias - batch_norm.moving_mean) * scale
    if batch_norm.beta is not None:
        bias = bias + batch_norm.beta
    return kernel * tf.reshape(scale, kernel.shape[2:] if depthwise else (-1,)), bias
