"""DeepLabv3-lite on MobileNetV2 (Sandler et al. 2018, "MobileNetV2: Inverted Residuals and
Linear Bottlenecks", Sec. 6.3; Chen et al. 2017, "Rethinking Atrous Convolution for Semantic
Image Segmentation"), the segmenter of the Patchwork paper (Sec. 4.2, DAVIS 2016 unsupervised:
one foreground logit per pixel).

The backbone is the whole MobileNetV2 feature extractor (blocks 0-16, without the last 1x1
conv to 1280 channels: DeepLab's heads read the second-last feature map, MobileNetV2 paper
Tab. 7) at output stride 16 or 8: the last one or two stride-2 blocks run with stride 1, and
the depthwise convs after each removed stride are dilated instead (atrous convolution). Its
layers are written out here with the names of `tf_keras.applications.MobileNetV2`
(`block_13_depthwise`, `block_13_depthwise_BN`, ...), so a stock model's (ImageNet) weights
copy into it by layer name (`models.backbone_weights.copy_weights`).

One flat tf_keras functional model of stock layers (Conv2D, DepthwiseConv2D,
BatchNormalization, ReLU, Add, ZeroPadding2D, GlobalAveragePooling2D, UpSampling2D,
Concatenate, Dropout, Resizing), so the Patchwork converter can walk it; its dilated
depthwise convs get halo cells like the others (halo `dilation * (kernel - 1) / 2`).
"""
from typing import List, Tuple

import tf_keras

_L = tf_keras.layers
_BN_EPSILON = 1e-3
# MobileNetV2's inverted residual blocks 0-16: (output channels before alpha, stride,
# expansion), as in tf_keras.applications.MobileNetV2.
_BLOCKS = (
    (16, 1, 1),
    (24, 2, 6), (24, 1, 6),
    (32, 2, 6), (32, 1, 6), (32, 1, 6),
    (64, 2, 6), (64, 1, 6), (64, 1, 6), (64, 1, 6),
    (96, 1, 6), (96, 1, 6), (96, 1, 6),
    (160, 2, 6), (160, 1, 6), (160, 1, 6),
    (320, 1, 6),
)
OUTPUT_STRIDES = (8, 16)
# The layer whose output the head reads: the last inverted residual block's projection.
FEATURE_LAYER = "block_16_project_BN"
# The halo cell whose memory the attention network observes (layer L of Sec. 3.1), in every
# model `deeplabv3_mobilenet_v2` builds: the deepest depthwise conv (dilated at either output
# stride). It is a halo cell when the grid's slices (frame / M) are multiples of the output
# stride.
OBSERVED_CELL = "block_16_depthwise"


def _make_divisible(value: float, divisor: int = 8) -> int:
    """Channel rounding of MobileNetV2 (`_make_divisible` in Keras applications)."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


def _correct_pad(size: Tuple[int, int]) -> Tuple[Tuple[int, int], Tuple[int, int]]:
    """Keras' zero padding before a VALID stride-2 3x3 conv (`imagenet_utils.correct_pad`)."""
    return tuple((n % 2, 1) for n in size)


def backbone_schedule(output_stride: int) -> List[Tuple[int, int]]:
    """`(stride, dilation)` of the depthwise conv of each of MobileNetV2's blocks 0-16.

    As DeepLab's `output_stride` (slim's MobileNet): once the stride product reaches
    `output_stride`, a stride-2 block runs with stride 1 at the current rate and the rate of
    every later block doubles. Output stride 16: block 13 stride 1, blocks 14-16 dilation 2;
    8: block 6 stride 1, blocks 7-12 dilation 2, block 13 stride 1 dilation 2, blocks 14-16
    dilation 4. The stem conv has stride 2.
    """
    if output_stride not in OUTPUT_STRIDES:
        raise ValueError(
            f"output_stride must be one of {list(OUTPUT_STRIDES)}, got {output_stride}.")
    current, rate, schedule = 2, 1, []
    for _, stride, _ in _BLOCKS:
        if stride > 1 and current == output_stride:
            schedule.append((1, rate))
            rate *= stride
        else:
            schedule.append((stride, rate))
            current *= stride
    return schedule


def _inverted_res_block(x, block_id: int, alpha: float, output_stride: int, momentum: float):
    """MobileNetV2's block `block_id` with the stock layer names, its depthwise conv strided
    or dilated as `backbone_schedule(output_stride)` says."""
    filters, stock_stride, expansion = _BLOCKS[block_id]
    stride, dilation = backbone_schedule(output_stride)[block_id]
    in_channels = int(x.shape[-1])
    out_channels = _make_divisible(int(filters * alpha))
    inputs = x
    prefix = f"block_{block_id}_" if block_id else "expanded_conv_"
    if block_id:
        x = _L.Conv2D(expansion * in_channels, 1, padding="same", use_bias=False,
                      name=prefix + "expand")(x)
        x = _L.BatchNormalization(epsilon=_BN_EPSILON, momentum=momentum,
                                  name=prefix + "expand_BN")(x)
        x = _L.ReLU(6.0, name=prefix + "expand_relu")(x)
    if stride == 2:
        x = _L.ZeroPadding2D(_correct_pad(tuple(x.shape[1:3])), name=prefix + "pad")(x)
    x = _L.DepthwiseConv2D(3, strides=stride, dilation_rate=dilation, use_bias=False,
                           padding="same" if stride == 1 else "valid",
                           name=prefix + "depthwise")(x)
    x = _L.BatchNormalization(epsilon=_BN_EPSILON, momentum=momentum,
                              name=prefix + "depthwise_BN")(x)
    x = _L.ReLU(6.0, name=prefix + "depthwise_relu")(x)
    x = _L.Conv2D(out_channels, 1, padding="same", use_bias=False, name=prefix + "project")(x)
    x = _L.BatchNormalization(epsilon=_BN_EPSILON, momentum=momentum,
                              name=prefix + "project_BN")(x)
    if in_channels == out_channels and stock_stride == 1:
        return _L.Add(name=prefix + "add")([inputs, x])
    return x


def mobilenet_v2_backbone(frames, alpha: float, output_stride: int, momentum: float):
    """MobileNetV2 blocks 0-16 on `frames` (a Keras tensor `[B, H, W, 3]`) at `output_stride`.

    Returns the output of `FEATURE_LAYER`, `[B, ceil(H / os), ceil(W / os), 320 * alpha]`
    (channels rounded as MobileNetV2 rounds them).
    """
    x = _L.Conv2D(_make_divisible(32 * alpha), 3, strides=2, padding="same", use_bias=False,
                  name="Conv1")(frames)
    x = _L.BatchNormalization(epsilon=_BN_EPSILON, momentum=momentum, name="bn_Conv1")(x)
    x = _L.ReLU(6.0, name="Conv1_relu")(x)
    for block_id in range(len(_BLOCKS)):
        x = _inverted_res_block(x, block_id, alpha, output_stride, momentum)
    return x


def _conv_bn_relu(x, filters: int, name: str, momentum: float):
    x = _L.Conv2D(filters, 1, padding="same", use_bias=False, name=name)(x)
    x = _L.BatchNormalization(epsilon=_BN_EPSILON, momentum=momentum, name=f"{name}_bn")(x)
    return _L.ReLU(name=f"{name}_relu")(x)


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

    Backbone: MobileNetV2 blocks 0-16 at `output_stride` (`mobilenet_v2_backbone`,
    `backbone_schedule`), ending at `FEATURE_LAYER` (320 * alpha channels). Head, the
    "1x1 branch plus image-pooling branch" of DeepLabv3 (no atrous branches):

    * 1x1 branch: 1x1 conv to `head_depth` + BN + ReLU;
    * image pooling: global average pooling (keepdims) + 1x1 conv + BN + ReLU, broadcast back to
      the feature map with a nearest `UpSampling2D` of the map's exact size (the pooled map is
      1x1);
    * concatenation, 1x1 projection + BN + ReLU, dropout, a 1x1 conv to one foreground logit,
      and a bilinear `Resizing` to the frame size.

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
    if output_stride not in OUTPUT_STRIDES:
        raise ValueError(
            f"output_stride must be one of {list(OUTPUT_STRIDES)}, got {output_stride}.")
    if head_depth < 1:
        raise ValueError(f"head_depth must be >= 1, got {head_depth}.")
    if not 0.0 <= dropout_rate < 1.0:
        raise ValueError(f"dropout_rate must be in [0, 1), got {dropout_rate}.")

    frames = _L.Input(input_shape, name="frames")
    features = mobilenet_v2_backbone(frames, alpha, output_stride, batch_norm_momentum)
    _, feature_h, feature_w, _ = features.shape

    branch_1x1 = _conv_bn_relu(features, head_depth, "aspp_1x1", batch_norm_momentum)
    pooled = _L.GlobalAveragePooling2D(keepdims=True, name="aspp_pool")(features)
    pooled = _conv_bn_relu(pooled, head_depth, "aspp_pool_conv", batch_norm_momentum)
    pooled = _L.UpSampling2D(size=(feature_h, feature_w), interpolation="nearest",
                             name="aspp_pool_broadcast")(pooled)
    x = _L.Concatenate(axis=-1, name="aspp_concat")([branch_1x1, pooled])
    x = _conv_bn_relu(x, head_depth, "aspp_projection", batch_norm_momentum)
    if dropout_rate > 0.0:
        x = _L.Dropout(dropout_rate, name="aspp_dropout")(x)
    x = _L.Conv2D(1, 1, padding="same", name="mask_logits_low")(x)
    x = _L.Resizing(input_shape[0], input_shape[1], interpolation="bilinear",
                    name="mask_logits")(x)
    return tf_keras.Model(inputs=frames, outputs={"mask_logits": x}, name=name)
