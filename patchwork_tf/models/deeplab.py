"""DeepLabv3-lite on MobileNetV2 (Sandler et al. 2018, "MobileNetV2: Inverted Residuals and
Linear Bottlenecks", Sec. 6.3; Chen et al. 2017, "Rethinking Atrous Convolution for Semantic
Image Segmentation"), the segmenter of the Patchwork paper (Sec. 4.2, DAVIS 2016 unsupervised:
one foreground logit per pixel).

One flat tf_keras functional model of stock layers (Conv2D, DepthwiseConv2D,
BatchNormalization, ReLU, Add, ZeroPadding2D, GlobalAveragePooling2D, UpSampling2D,
Concatenate, Dropout, Resizing), so the Patchwork converter can walk it.
"""
from typing import Tuple

import tf_keras

# DeepLab reaches output stride 16 (8) by running MobileNetV2's last stride-2 stage(s) with
# dilation instead of stride. The stock Keras MobileNetV2 cannot be re-strided, so the head
# reads the deepest stock feature that already has the wanted stride: the expansion output
# that feeds the next stride-2 block (the same tap SSDLite uses for its stride-16 map).
FEATURE_LAYERS = {16: "block_13_expand_relu", 8: "block_6_expand_relu"}
_BN_EPSILON = 1e-3


def _conv_bn_relu(x, filters: int, name: str, momentum: float):
    x = tf_keras.layers.Conv2D(filters, 1, padding="same", use_bias=False, name=name)(x)
    x = tf_keras.layers.BatchNormalization(epsilon=_BN_EPSILON, momentum=momentum,
                                           name=f"{name}_bn")(x)
    return tf_keras.layers.ReLU(name=f"{name}_relu")(x)


def deeplabv3_mobilenet_v2(
    input_shape: Tuple[int, int, int] = (384, 384, 3),
    alpha: float = 1.0,
    output_stride: int = 16,
    head_depth: int = 256,
    dropout_rate: float = 0.1,
    batch_norm_momentum: float = 0.999,
    name: str = "deeplabv3_mobilenet_v2",
) -> tf_keras.Model:
    """Builds the DeepLabv3-lite binary segmenter of the MobileNetV2 paper (Sec. 6.3).

    The "1x1 branch plus image-pooling branch" head (no atrous branches) on a MobileNetV2
    feature map of stride `output_stride`:

    * 1x1 branch: 1x1 conv to `head_depth` + BN + ReLU;
    * image pooling: global average pooling (keepdims) + 1x1 conv + BN + ReLU, broadcast back to
      the feature map with a nearest `UpSampling2D` of the map's exact size (the pooled map is
      1x1);
    * concatenation, 1x1 projection + BN + ReLU, dropout, a 1x1 conv to one foreground logit,
      and a bilinear `Resizing` to the frame size.

    Feature taps: stock Keras MobileNetV2 cannot replace a stride by a dilation, so instead of
    DeepLab's dilated last stages the head reads the deepest stock layer at the wanted stride:
    `block_13_expand_relu` (576 * alpha channels, the input of the first stride-32 block) for
    output stride 16 and `block_6_expand_relu` (192 * alpha channels) for output stride 8. The
    backbone layers after the tap are not part of the model, which is cheaper than DeepLab's
    dilated backbone and has a smaller receptive field.

    Args:
      input_shape: `(H, W, 3)` frame size, H and W at least 32.
      alpha: MobileNetV2 depth multiplier.
      output_stride: 16 or 8, the stride of the feature map the head runs on.
      head_depth: channels of the head's branches and projection (DeepLab: 256).
      dropout_rate: dropout after the projection during training; 0 adds no Dropout layer.
      batch_norm_momentum: momentum of every BatchNormalization layer, the backbone's included
        (stock MobileNetV2: 0.999); lower values let short trainings' moving statistics settle.
      name: model name.

    Returns:
      A tf_keras functional model: input float32 `[B, H, W, 3]` in [-1, 1]; output
      `{"mask_logits": float32 [B, H, W, 1]}`, the foreground logit of every pixel.

    Raises:
      ValueError: an unsupported output stride, frame size or argument.
    """
    input_shape = tuple(int(d) for d in input_shape)
    if len(input_shape) != 3 or input_shape[2] != 3:
        raise ValueError(f"input_shape must be (H, W, 3), got {input_shape}.")
    if min(input_shape[:2]) < 32:
        raise ValueError(f"MobileNetV2 needs frames of at least 32x32 pixels, got {input_shape}.")
    if output_stride not in FEATURE_LAYERS:
        raise ValueError(
            f"output_stride must be one of {sorted(FEATURE_LAYERS)}, got {output_stride}.")
    if head_depth < 1:
        raise ValueError(f"head_depth must be >= 1, got {head_depth}.")
    if not 0.0 <= dropout_rate < 1.0:
        raise ValueError(f"dropout_rate must be in [0, 1), got {dropout_rate}.")

    backbone = tf_keras.applications.MobileNetV2(
        include_top=False, weights=None, alpha=alpha, input_shape=input_shape)
    for layer in backbone.layers:
        if isinstance(layer, tf_keras.layers.BatchNormalization):
            layer.momentum = batch_norm_momentum
    features = backbone.get_layer(FEATURE_LAYERS[output_stride]).output
    _, feature_h, feature_w, _ = features.shape

    branch_1x1 = _conv_bn_relu(features, head_depth, "aspp_1x1", batch_norm_momentum)
    pooled = tf_keras.layers.GlobalAveragePooling2D(keepdims=True, name="aspp_pool")(features)
    pooled = _conv_bn_relu(pooled, head_depth, "aspp_pool_conv", batch_norm_momentum)
    pooled = tf_keras.layers.UpSampling2D(size=(feature_h, feature_w), interpolation="nearest",
                                          name="aspp_pool_broadcast")(pooled)
    x = tf_keras.layers.Concatenate(axis=-1, name="aspp_concat")([branch_1x1, pooled])
    x = _conv_bn_relu(x, head_depth, "aspp_projection", batch_norm_momentum)
    if dropout_rate > 0.0:
        x = tf_keras.layers.Dropout(dropout_rate, name="aspp_dropout")(x)
    x = tf_keras.layers.Conv2D(1, 1, padding="same", name="mask_logits_low")(x)
    x = tf_keras.layers.Resizing(input_shape[0], input_shape[1], interpolation="bilinear",
                                 name="mask_logits")(x)
    return tf_keras.Model(inputs=backbone.input, outputs={"mask_logits": x}, name=name)
