"""Theoretical latency (Sec. 4): FLOPs of a full-frame pass and of one Patchwork window step.

Counted analytically per layer from the static shapes each layer sees (the twin's step is
traced once with a recorder, so the window step is counted on exactly the graph that runs).
One multiply-add is 2 FLOPs, as the TF profiler counts Conv2D; batch norm and `Normalization`
count two FLOPs per output element (scale, shift), a bias, activations and element-wise merges
one per output element and operand, an elementwise `TFOpLambda` op (`x + 3.0`) one per output
element; pooling counts one per window element read. Reshapes, concatenation, padding and
dropout count 0. A batch norm folded into the linear conv before it
(`core.folding`, an inference option) becomes that conv's bias: one FLOP per element.

The Patchwork overhead is memory traffic, not arithmetic: the elements each cell writes into
its memory and crops out of it, reported apart as `overhead_elements`.
"""
import dataclasses

import numpy as np
import tensorflow as tf
import tf_keras

from patchwork_tf.core import keras_graph

L = tf_keras.layers


def _elements(shape):
    return int(np.prod([d for d in shape[1:]]))


def layer_flops(layer, input_shapes, output_shape):
    """FLOPs of one layer call for batch element 0 (shapes include the batch axis)."""
    out = _elements(output_shape)
    if isinstance(layer, L.SeparableConv2D):
        kh, kw = layer.kernel_size
        channels = int(layer.depthwise_kernel.shape[2]) * int(layer.depthwise_kernel.shape[3])
        spatial = out // output_shape[-1]
        return 2 * spatial * (kh * kw * channels + channels * output_shape[-1]) + (
            out if layer.use_bias else 0)
    if isinstance(layer, L.DepthwiseConv2D):
        kh, kw = layer.kernel_size
        return 2 * out * kh * kw + (out if layer.use_bias else 0)
    if isinstance(layer, L.Conv2D):
        kh, kw = layer.kernel_size
        return 2 * out * kh * kw * int(layer.kernel.shape[2]) + (out if layer.use_bias else 0)
    if isinstance(layer, L.Dense):
        return 2 * out * int(layer.kernel.shape[0]) + (out if layer.use_bias else 0)
    if isinstance(layer, (L.BatchNormalization, L.Normalization)):
        return 2 * out
    if type(layer).__name__ == "TFOpLambda":  # an elementwise op (plan.ELEMENTWISE_TF_OPS)
        return out
    if isinstance(layer, (L.ReLU, L.Activation, L.LeakyReLU, L.PReLU, L.ELU, L.Softmax,
                          L.Rescaling)):
        return out
    if isinstance(layer, (L.Add, L.Subtract, L.Multiply, L.Average, L.Maximum, L.Minimum)):
        return out * (len(input_shapes) - 1)
    if isinstance(layer, (L.MaxPooling2D, L.AveragePooling2D)):
        return out * int(np.prod(layer.pool_size))
    if isinstance(layer, (L.GlobalAveragePooling2D, L.GlobalMaxPooling2D)):
        return _elements(input_shapes[0])
    if isinstance(layer, (L.Resizing, L.UpSampling2D)):
        return 4 * out if getattr(layer, "interpolation", "nearest") == "bilinear" else 0
    return 0


@dataclasses.dataclass
class FlopsReport:
    """FLOPs per frame for batch 1. `overhead_elements`: memory elements written + cropped."""

    flops: int
    conv_flops: int
    overhead_elements: int

    @property
    def mflops(self):
        return self.flops / 1e6


_CONV_TYPES = (L.Conv2D, L.DepthwiseConv2D, L.SeparableConv2D, L.Dense)


def _report(records):
    flops = conv = overhead = 0
    for layer, input_shapes, output_shape, kind in records:
        if kind == "op":
            count = layer_flops(layer, input_shapes, output_shape)
            flops += count
            conv += count if isinstance(layer, _CONV_TYPES) else 0
        elif kind == "bias_add":
            flops += _elements(output_shape)
        else:
            overhead += _elements(output_shape)
    return FlopsReport(flops, conv, overhead)


def model_flops(keras_model):
    """FLOPs of one full-frame pass of a tf_keras functional model, batch 1."""
    records = [(node.layer, [t.shape for t in node.inputs], node.outputs[0].shape, "op")
               for node in keras_graph.ordered_nodes(keras_model)]
    return _report(records)


def step_flops(twin):
    """FLOPs of one window step of a `PatchworkModel` (batch 1), counted on its traced graph."""
    records = []

    def record(layer, input_shapes, output_shape, kind):
        records.append((layer, input_shapes, output_shape, kind))

    height, width = twin.frame_size
    tf.function(lambda frames, actions, state: twin.step_fn(
        frames, actions, state, recorder=record)).get_concrete_function(
            tf.TensorSpec((1, height, width, twin.input_channels), tf.float32),
            tf.TensorSpec((1,), tf.int32), twin.state_spec(1))
    return _report(records)
