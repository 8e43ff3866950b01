"""SSDLite on MobileNetV2 (Sandler et al. 2018, "MobileNetV2: Inverted Residuals and Linear
Bottlenecks", Sec. 6.2), the detector of the Patchwork paper (Sec. 4.1).

One flat tf_keras functional model built from the stock `tf_keras.applications.MobileNetV2`
and stock layers only (Conv2D, DepthwiseConv2D, BatchNormalization, ReLU, Reshape,
Concatenate), so the Patchwork converter can walk it and share its weights.
"""
from typing import Dict, Optional, Sequence, Tuple, Union

import numpy as np
import tf_keras

from patchwork_tf.models import anchors as anchors_lib

# The stride-16 map is the expansion output of block 13 (the TF OD API's
# `layer_15/expansion_output`), the stride-32 map the last 1x1 conv (`layer_19`).
BACKBONE_FEATURES = ("block_13_expand_relu", "out_relu")
BACKBONE_STRIDE = 32
# The halo cell whose memory the attention network observes (layer L of Sec. 3.1), in every
# model `ssdlite_mobilenet_v2` builds: the stride-2 depthwise conv that reads the stride-16
# map (the training flag's default so far). Its output has stride 32, so it is a halo cell
# when the grid's slices (frame / M) are multiples of 32 pixels.
OBSERVED_CELL = "block_13_depthwise"
_DEFAULT_EXTRA_DEPTHS = (512, 256, 256, 128)
_BN_EPSILON = 1e-3


def _ceil_half(size: int) -> int:
    return (size + 1) // 2


def _stride32_size(input_shape: Sequence[int]) -> Tuple[int, int]:
    """Size of MobileNetV2's last map: five stride-2 stages, each `ceil(n / 2)`."""
    height, width = input_shape[0], input_shape[1]
    for _ in range(5):
        height, width = _ceil_half(height), _ceil_half(width)
    return height, width


def max_extra_layers(input_shape: Sequence[int]) -> int:
    """The most stride-2 extra layers a frame of `input_shape` `(H, W, 3)` allows.

    Each extra layer halves its input (rounding up); a layer whose input is already one pixel
    high or wide would not shrink it, so the count stops there.
    """
    height, width = _stride32_size(input_shape)
    count = 0
    while height > 1 and width > 1:
        height, width = _ceil_half(height), _ceil_half(width)
        count += 1
    return count


def _make_divisible(value: float, divisor: int = 8, min_value: Optional[int] = None) -> int:
    """Channel rounding of MobileNetV2 (`_make_divisible` in Keras applications)."""
    min_value = min_value or divisor
    rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


def _conv_bn_relu(x, filters: int, name: str, momentum: float):
    x = tf_keras.layers.Conv2D(filters, 1, padding="same", use_bias=False, name=name)(x)
    x = tf_keras.layers.BatchNormalization(epsilon=_BN_EPSILON, momentum=momentum,
                                           name=f"{name}_bn")(x)
    return tf_keras.layers.ReLU(6.0, name=f"{name}_relu")(x)


def _depthwise_bn_relu(x, strides: int, name: str, momentum: float):
    x = tf_keras.layers.DepthwiseConv2D(3, strides=strides, padding="same", use_bias=False,
                                        name=name)(x)
    x = tf_keras.layers.BatchNormalization(epsilon=_BN_EPSILON, momentum=momentum,
                                           name=f"{name}_bn")(x)
    return tf_keras.layers.ReLU(6.0, name=f"{name}_relu")(x)


def _extra_layer(x, index: int, depth: int, momentum: float):
    """SSDLite extra layer: 1x1 conv to depth/2, then a stride-2 3x3 depthwise-separable conv."""
    prefix = f"ssd_extra_{index}"
    x = _conv_bn_relu(x, depth // 2, f"{prefix}_1x1", momentum)
    x = _depthwise_bn_relu(x, 2, f"{prefix}_depthwise", momentum)
    return _conv_bn_relu(x, depth, f"{prefix}_project", momentum)


def _predictor(x, index: int, kind: str, boxes_per_location: int, code_size: int,
               momentum: float, bias_initializer):
    """SSDLite box predictor branch: 3x3 depthwise + BN + ReLU6, then a 1x1 conv with bias."""
    name = f"box_predictor_{index}_{kind}"
    x = _depthwise_bn_relu(x, 1, f"{name}_depthwise", momentum)
    x = tf_keras.layers.Conv2D(boxes_per_location * code_size, 1, padding="same",
                               bias_initializer=bias_initializer, name=name)(x)
    _, height, width, _ = x.shape
    return tf_keras.layers.Reshape((height * width * boxes_per_location, code_size),
                                   name=f"{name}_reshape")(x)


def ssdlite_mobilenet_v2(
    input_shape: Tuple[int, int, int] = (320, 320, 3),
    num_classes: int = 30,
    alpha: float = 1.0,
    num_extra_layers: int = 4,
    extra_layer_depths: Optional[Sequence[int]] = None,
    add_background_class: bool = True,
    min_depth: int = 16,
    aspect_ratios: Sequence[float] = anchors_lib.DEFAULT_ASPECT_RATIOS,
    interpolated_scale_aspect_ratio: float = 1.0,
    reduce_boxes_in_lowest_layer: bool = True,
    class_bias_init: Union[float, Sequence[float]] = 0.0,
    batch_norm_momentum: float = 0.999,
    name: str = "ssdlite_mobilenet_v2",
) -> tf_keras.Model:
    """Builds SSDLite with a MobileNetV2 backbone (MobileNetV2 paper, Sec. 6.2).

    Feature maps: the expansion output of block 13 (`block_13_expand_relu`, stride 16), the
    last layer (`out_relu`, stride 32), then `num_extra_layers` extra layers, each a 1x1 conv to
    half its depth followed by a stride-2 3x3 depthwise-separable conv (SSDLite), halving the map
    each time. Every feature map gets an SSDLite box predictor: for the class logits and for the
    box encodings separately, a 3x3 depthwise conv + BN + ReLU6 and a 1x1 conv. Per-map
    predictions `[B, h, w, k * c]` are reshaped to `[B, h * w * k, c]` and concatenated in
    feature-map order, which is the anchor order of `anchors.anchors_for_model`.

    Args:
      input_shape: `(H, W, 3)` frame size; H and W at least 32 and large enough for the extra
        layers (see `max_extra_layers`).
      num_classes: number of object classes, without background.
      alpha: MobileNetV2 depth multiplier; it also scales the extra layers' depths.
      num_extra_layers: number of stride-2 extra layers after the stride-32 map; the model has
        `2 + num_extra_layers` feature maps.
      extra_layer_depths: output depth of each extra layer before `alpha`; default
        `(512, 256, 256, 128)` (TF OD API), 128 for any further layer.
      add_background_class: if True the class logits have `num_classes + 1` columns, column 0
        the background (softmax losses); if False `num_classes` (sigmoid / focal losses).
      min_depth: smallest depth of an extra layer after scaling by `alpha`.
      aspect_ratios, interpolated_scale_aspect_ratio, reduce_boxes_in_lowest_layer: the anchor
        box specs (see `anchors.anchor_box_specs`); they fix the boxes per location.
      class_bias_init: initial bias of the class logits: one value for all columns, or one per
        column (`num_classes (+1)` values, the same for every anchor), e.g. `log(p / (1 - p))`
        for a prior probability `p` of each column with sigmoid losses.
      batch_norm_momentum: momentum of every BatchNormalization layer, the backbone's included
        (stock MobileNetV2: 0.999); lower values let short trainings' moving statistics settle.
      name: model name.

    Returns:
      A tf_keras functional model: input float32 `[B, H, W, 3]` in [-1, 1]; outputs
      `{"class_logits": float32 [B, A, num_classes (+1)], "box_encodings": float32 [B, A, 4]}`,
      A the number of anchors.

    Raises:
      ValueError: a frame too small for `num_extra_layers`, or a bad argument.
    """
    input_shape = tuple(int(d) for d in input_shape)
    if len(input_shape) != 3 or input_shape[2] != 3:
        raise ValueError(f"input_shape must be (H, W, 3), got {input_shape}.")
    if min(input_shape[:2]) < 32:
        raise ValueError(f"MobileNetV2 needs frames of at least 32x32 pixels, got {input_shape}.")
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}.")
    if num_extra_layers < 0:
        raise ValueError(f"num_extra_layers must be >= 0, got {num_extra_layers}.")
    allowed = max_extra_layers(input_shape)
    if num_extra_layers > allowed:
        raise ValueError(
            f"A {input_shape[0]}x{input_shape[1]} frame gives a {_stride32_size(input_shape)} "
            f"stride-32 map, which allows at most {allowed} stride-2 extra layers before a map "
            f"would fall below 1x1 pixel; got num_extra_layers={num_extra_layers}. Use a larger "
            "frame or fewer extra layers.")
    if extra_layer_depths is None:
        extra_layer_depths = (_DEFAULT_EXTRA_DEPTHS + (128,) * num_extra_layers)[:num_extra_layers]
    if len(extra_layer_depths) != num_extra_layers:
        raise ValueError(
            f"extra_layer_depths has {len(extra_layer_depths)} entries, expected "
            f"num_extra_layers={num_extra_layers}.")

    backbone = tf_keras.applications.MobileNetV2(
        include_top=False, weights=None, alpha=alpha, input_shape=input_shape)
    for layer in backbone.layers:
        if isinstance(layer, tf_keras.layers.BatchNormalization):
            layer.momentum = batch_norm_momentum
    features = [backbone.get_layer(n).output for n in BACKBONE_FEATURES]
    x = features[-1]
    for i, depth in enumerate(extra_layer_depths, start=1):
        x = _extra_layer(x, i, _make_divisible(max(depth * alpha, min_depth)), batch_norm_momentum)
        features.append(x)

    box_specs = anchors_lib.anchor_box_specs(
        len(features),
        aspect_ratios=aspect_ratios,
        interpolated_scale_aspect_ratio=interpolated_scale_aspect_ratio,
        reduce_boxes_in_lowest_layer=reduce_boxes_in_lowest_layer,
    )
    num_logits = num_classes + 1 if add_background_class else num_classes
    if np.ndim(class_bias_init) not in (0, 1) or (
        np.ndim(class_bias_init) == 1 and len(class_bias_init) != num_logits):
        raise ValueError(
            f"class_bias_init must be one number or {num_logits} (one per class-logit column), "
            f"got {class_bias_init!r}.")
    column_bias = np.broadcast_to(np.asarray(class_bias_init, np.float32), (num_logits,))
    class_outputs, box_outputs = [], []
    for k, (feature, specs) in enumerate(zip(features, box_specs)):
        # Conv channels are (box spec, column) pairs, so the column biases repeat per box spec.
        class_bias = tf_keras.initializers.Constant(np.tile(column_bias, len(specs)).tolist())
        class_outputs.append(_predictor(feature, k, "class", len(specs), num_logits,
                                        batch_norm_momentum, class_bias))
        box_outputs.append(_predictor(feature, k, "box", len(specs), 4, batch_norm_momentum,
                                      "zeros"))
    outputs: Dict[str, tf_keras.layers.Layer] = {
        "class_logits": tf_keras.layers.Concatenate(axis=1, name="class_logits")(class_outputs),
        "box_encodings": tf_keras.layers.Concatenate(axis=1, name="box_encodings")(box_outputs),
    }
    return tf_keras.Model(inputs=backbone.input, outputs=outputs, name=name)
