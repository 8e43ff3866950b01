"""Pretrained MobileNetV2 weights for the backbones of the single-frame models.

The paper's single-frame baselines fine-tune from an ImageNet checkpoint (Sec. 4.1). SSDLite
(`models.ssdlite`) and DeepLab (`models.deeplab`) build their backbones from the stock
`tf_keras.applications.MobileNetV2` and keep its layer names (`Conv1`, `expanded_conv_depthwise`,
`block_13_depthwise`, ...), so pretrained weights reach them in two steps:

1. `stock_backbone(weights, alpha, input_shape)` builds the stock MobileNetV2 without its top
   and loads the weights into it: "imagenet" (the Keras application's file, downloaded into
   the Keras cache `~/.keras/models/` unless it is there already) or the path of a local h5
   weights file of the same stock model (as Keras saves and downloads it);
2. `copy_weights(backbone, model)` copies them layer by layer, by layer name, into every layer
   of the built model that has the same name; the head's layers have other names and keep
   their fresh initialisation.
"""
import os
from typing import List, Optional, Sequence

import tensorflow as tf
import tf_keras

NONE = "none"
IMAGENET = "imagenet"
# Depth multipliers and square input sizes with ImageNet weights of the Keras MobileNetV2.
# Without its top every input size works: Keras loads the 224-pixel weights for a size
# (or a non-square frame) that has none of its own, as `imagenet_file_name` does.
IMAGENET_ALPHAS = (0.35, 0.5, 0.75, 1.0, 1.3, 1.4)
IMAGENET_SIZES = (96, 128, 160, 192, 224)
IMAGENET_URL = "https://storage.googleapis.com/tensorflow/keras-applications/mobilenet_v2/"
KERAS_CACHE = os.path.join("~", ".keras", "models")
# A model built on the stock backbone takes at least this share of its layers with weights:
# SSDLite takes all 104, DeepLab at output stride 8 the 38 up to `block_6_expand_BN`. Fewer
# means the model is not built on MobileNetV2 layers of these names.
MIN_COPIED_FRACTION = 0.25


def check_weights(weights: str, alpha: float) -> None:
    """Refuses a `weights` setting that cannot load: an empty one, or "imagenet" for a depth
    multiplier without ImageNet weights. A path is checked when it is loaded."""
    if not isinstance(weights, str) or not weights:
        raise ValueError(f"backbone_weights must be {IMAGENET!r}, {NONE!r} or the path of a "
                         f"MobileNetV2 weights file, got {weights!r}.")
    if weights == IMAGENET and alpha not in IMAGENET_ALPHAS:
        raise ValueError(
            f"MobileNetV2 has ImageNet weights for alpha in {IMAGENET_ALPHAS}, not alpha={alpha}; "
            f"use one of those or backbone_weights={NONE!r} (train from scratch).")


def imagenet_file_name(alpha: float, input_shape: Sequence[int]) -> str:
    """The Keras file name of the ImageNet weights of MobileNetV2 without its top for `alpha`
    and frames of `input_shape` `(H, W, 3)`: those of the frame size for a square frame of one
    of `IMAGENET_SIZES`, else the 224-pixel ones (the Keras application's choice)."""
    check_weights(IMAGENET, alpha)
    height, width = int(input_shape[0]), int(input_shape[1])
    size = height if height == width and height in IMAGENET_SIZES else 224
    return f"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_{float(alpha)}_{size}_no_top.h5"


def _imagenet_file(alpha: float, input_shape: Sequence[int]) -> str:
    """The local path of the ImageNet weights file: from the Keras cache, or downloaded."""
    name = imagenet_file_name(alpha, input_shape)
    try:
        return tf_keras.utils.get_file(name, IMAGENET_URL + name, cache_subdir="models")
    except Exception as error:  # get_file raises a bare Exception for a failed download.
        raise OSError(
            f"Could not get the ImageNet weights of MobileNetV2 (alpha={alpha}): {name} is "
            f"not in the Keras cache {KERAS_CACHE}/ and downloading it from {IMAGENET_URL} "
            f"failed ({error}). Without a network, download that file on a machine with one, "
            f"copy it over and pass its path, --backbone_weights=/path/to/{name}, or place it "
            f"in {KERAS_CACHE}/.") from error


def stock_backbone(weights: str, alpha: float,
                   input_shape: Sequence[int]) -> Optional[tf_keras.Model]:
    """The stock `tf_keras.applications.MobileNetV2` without its top holding `weights`.

    Args:
      weights: "imagenet" (the Keras ImageNet weights), "none", or the path of a weights file
        of the stock MobileNetV2 with `include_top=False` and this `alpha`.
      alpha: MobileNetV2 depth multiplier.
      input_shape: `(H, W, 3)` frame size (the weights do not depend on it).

    Returns:
      The model with the weights loaded, or None for "none".

    Raises:
      ValueError: a bad setting, or a file that does not hold this model's weights.
      FileNotFoundError: no file at the path.
      OSError: the ImageNet weights are neither cached nor downloadable.
    """
    check_weights(weights, alpha)
    if weights == NONE:
        return None
    if weights == IMAGENET:
        path = _imagenet_file(alpha, input_shape)
    else:
        path = weights
        if not tf.io.gfile.exists(path):
            raise FileNotFoundError(
                f"backbone_weights={path!r}: no such file. Pass {IMAGENET!r}, {NONE!r} or the "
                f"path of a MobileNetV2 weights file (include_top=False, alpha={alpha}).")
    backbone = tf_keras.applications.MobileNetV2(
        include_top=False, weights=None, alpha=alpha, input_shape=tuple(input_shape))
    try:
        backbone.load_weights(path)
    except (ValueError, OSError) as error:
        raise ValueError(
            f"{path} does not hold the weights of the stock MobileNetV2 with include_top=False "
            f"and alpha={alpha} ({error}). Pass a file of that model, saved by its "
            f"save_weights or downloaded by Keras (mobilenet_v2_weights_tf_dim_ordering_tf_"
            f"kernels_{float(alpha)}_<size>_no_top.h5), or match alpha to the file.") from error
    return backbone


def copy_weights(backbone: tf_keras.Model, model: tf_keras.Model) -> List[str]:
    """Copies the weights of `backbone`'s layers into the layers of `model` of the same name.

    Args:
      backbone: a stock MobileNetV2 (`stock_backbone`).
      model: a model built on a MobileNetV2 of the same `alpha` that kept its layer names.

    Returns:
      The names of the layers copied, in `model`'s order.

    Raises:
      ValueError: a layer of the same name with other weight shapes, or fewer than
        `MIN_COPIED_FRACTION` of the backbone's layers with weights found in `model`.
    """
    sources = {layer.name: layer for layer in backbone.layers if layer.weights}
    pairs = [(layer, sources[layer.name]) for layer in model.layers
             if layer.weights and layer.name in sources]
    mismatched = []
    for layer, source in pairs:  # every layer is checked before any is copied
        shapes = [tuple(w.shape) for w in layer.weights]
        source_shapes = [tuple(w.shape) for w in source.weights]
        if shapes != source_shapes:
            mismatched.append(f"{layer.name} {shapes} != {source_shapes}")
    if mismatched:
        raise ValueError(
            f"The layers of {model.name!r} and of the stock MobileNetV2 {backbone.name!r} of the "
            f"same name have other weight shapes: {mismatched}. Build both with the same alpha.")
    if len(pairs) < MIN_COPIED_FRACTION * len(sources):
        raise ValueError(
            f"Only {len(pairs)} of the {len(sources)} layers with weights of the stock "
            f"MobileNetV2 {backbone.name!r} are in {model.name!r}, fewer than "
            f"{MIN_COPIED_FRACTION:.0%}: its backbone is not the stock MobileNetV2 with the "
            "stock layer names, so pretrained backbone weights cannot be applied to it.")
    for layer, source in pairs:
        layer.set_weights(source.get_weights())
    return [layer.name for layer, _ in pairs]
