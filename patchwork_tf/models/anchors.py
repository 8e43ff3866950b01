"""SSD anchor boxes, in the order of the SSDLite model's concatenated predictions.

The generator follows the TF Object Detection API's `multiple_grid_anchor_generator`
(`create_ssd_anchors`, Liu et al. 2016, "SSD: Single Shot MultiBox Detector", Sec. 2.2):

* feature map `k` of `K` gets the scale `s_k = min_scale + (max_scale - min_scale) * k / (K - 1)`,
  and the map after the last one the scale 1.0;
* every location of map `k` carries one box per aspect ratio `r` with height `s_k / sqrt(r)` and
  width `s_k * sqrt(r)`, plus (if `interpolated_scale_aspect_ratio > 0`) one box of scale
  `sqrt(s_k * s_{k+1})` and that aspect ratio;
* with `reduce_boxes_in_lowest_layer`, map 0 carries only `(0.1, 1), (s_0, 2), (s_0, 1/2)`;
* box centers sit at the centers of the feature-map cells, `((i + 0.5) / h, (j + 0.5) / w)`;
* on a non-square frame the base box is shrunk along the longer side so that a ratio-1 box is
  square in pixels.

Anchors are normalized `(ymin, xmin, ymax, xmax)`, float32, not clipped to the frame. Their
order is feature map, then row, then column, then box spec: the order that
`tf_keras.layers.Reshape` gives a predictor output `[B, h, w, k * 4] -> [B, h * w * k, 4]`, so
`anchors[a]` belongs to prediction `a` of `model(frames)["box_encodings"]`.
"""
import math
from typing import List, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

DEFAULT_ASPECT_RATIOS = (1.0, 2.0, 0.5, 3.0, 1.0 / 3.0)

BoxSpec = Tuple[float, float]
# Boxes per location of a reduced lowest layer: (0.1, 1), (s_0, 2), (s_0, 1/2).
_REDUCED_BOXES = 3


def anchor_box_specs(
    num_feature_maps: int,
    min_scale: float = 0.2,
    max_scale: float = 0.95,
    aspect_ratios: Sequence[float] = DEFAULT_ASPECT_RATIOS,
    interpolated_scale_aspect_ratio: float = 1.0,
    reduce_boxes_in_lowest_layer: bool = True,
) -> List[List[BoxSpec]]:
    """The `(scale, aspect_ratio)` of every box at one location of each feature map.

    Args:
      num_feature_maps: number of feature maps `K` that carry predictions (>= 1).
      min_scale: scale of the first map, relative to the shorter frame side.
      max_scale: scale of the last map.
      aspect_ratios: width / height of the boxes at each location.
      interpolated_scale_aspect_ratio: aspect ratio of the extra box of scale
        `sqrt(s_k * s_{k+1})`; 0 or less adds no extra box.
      reduce_boxes_in_lowest_layer: give map 0 only the three boxes
        `(0.1, 1), (s_0, 2), (s_0, 1/2)`, as SSD on MobileNet does.

    Returns:
      A list of `K` lists of `(scale, aspect_ratio)` pairs; `len(specs[k])` is the number of
      anchors per location of map `k`.
    """
    if num_feature_maps < 1:
        raise ValueError(f"num_feature_maps must be >= 1, got {num_feature_maps}.")
    if not 0.0 < min_scale <= max_scale:
        raise ValueError(
            f"Need 0 < min_scale <= max_scale, got min_scale={min_scale}, max_scale={max_scale}.")
    if not aspect_ratios or any(r <= 0 for r in aspect_ratios):
        raise ValueError(f"aspect_ratios must be positive numbers, got {tuple(aspect_ratios)}.")
    if num_feature_maps == 1:
        scales = [min_scale]
    else:
        scales = [
            min_scale + (max_scale - min_scale) * k / (num_feature_maps - 1)
            for k in range(num_feature_maps)
        ]
    scales.append(1.0)
    specs = []
    for k in range(num_feature_maps):
        scale, scale_next = scales[k], scales[k + 1]
        if k == 0 and reduce_boxes_in_lowest_layer:
            specs.append([(0.1, 1.0), (scale, 2.0), (scale, 0.5)])
            continue
        layer = [(scale, float(r)) for r in aspect_ratios]
        if interpolated_scale_aspect_ratio > 0.0:
            layer.append((math.sqrt(scale * scale_next), float(interpolated_scale_aspect_ratio)))
        specs.append(layer)
    return specs


def grid_anchors(
    feature_map_shapes: Sequence[Tuple[int, int]],
    box_specs: Sequence[Sequence[BoxSpec]],
    image_size: Tuple[int, int],
) -> tf.Tensor:
    """Anchors of all feature maps, concatenated in prediction order.

    Args:
      feature_map_shapes: `(h_k, w_k)` of each feature map, in the model's order.
      box_specs: `(scale, aspect_ratio)` pairs per map, as from `anchor_box_specs`.
      image_size: `(H, W)` of the frame in pixels; only its aspect ratio matters.

    Returns:
      float32 `[A, 4]` normalized `(ymin, xmin, ymax, xmax)`,
      `A = sum_k h_k * w_k * len(box_specs[k])`.
    """
    if len(feature_map_shapes) != len(box_specs):
        raise ValueError(
            f"Got {len(feature_map_shapes)} feature map shapes but {len(box_specs)} lists of box "
            "specs; give one list of specs per feature map.")
    height, width = image_size
    if height <= 0 or width <= 0:
        raise ValueError(f"image_size must be positive (H, W), got {tuple(image_size)}.")
    shorter = min(height, width)
    base_h, base_w = shorter / height, shorter / width
    per_map = []
    for (grid_h, grid_w), specs in zip(feature_map_shapes, box_specs):
        if grid_h < 1 or grid_w < 1:
            raise ValueError(f"Feature map shapes must be at least 1x1, got {(grid_h, grid_w)}.")
        scales = np.array([s for s, _ in specs], dtype=np.float64)
        ratio_sqrts = np.sqrt(np.array([r for _, r in specs], dtype=np.float64))
        heights = scales / ratio_sqrts * base_h
        widths = scales * ratio_sqrts * base_w
        y_centers = (np.arange(grid_h) + 0.5) / grid_h
        x_centers = (np.arange(grid_w) + 0.5) / grid_w
        yc = np.broadcast_to(y_centers[:, None, None], (grid_h, grid_w, len(specs)))
        xc = np.broadcast_to(x_centers[None, :, None], (grid_h, grid_w, len(specs)))
        hh = np.broadcast_to(heights[None, None, :], (grid_h, grid_w, len(specs)))
        ww = np.broadcast_to(widths[None, None, :], (grid_h, grid_w, len(specs)))
        boxes = np.stack([yc - hh / 2, xc - ww / 2, yc + hh / 2, xc + ww / 2], axis=-1)
        per_map.append(boxes.reshape(-1, 4))
    return tf.constant(np.concatenate(per_map, axis=0), dtype=tf.float32)


def predictor_feature_map_shapes(model) -> List[Tuple[int, int, int]]:
    """`(h, w, anchors per location)` of each box predictor of an SSDLite model.

    Reads the layers `box_predictor_{k}_box` that `ssdlite_mobilenet_v2` builds; their output
    is `[B, h, w, k * 4]`.
    """
    shapes = []
    while True:
        try:
            layer = model.get_layer(f"box_predictor_{len(shapes)}_box")
        except ValueError:
            break
        _, grid_h, grid_w, channels = layer.output_shape
        shapes.append((int(grid_h), int(grid_w), int(channels) // 4))
    if not shapes:
        raise ValueError(
            f"Model {model.name!r} has no layer 'box_predictor_0_box'; build it with "
            "patchwork_tf.models.ssdlite.ssdlite_mobilenet_v2.")
    return shapes


def anchors_for_model(
    model,
    min_scale: float = 0.2,
    max_scale: float = 0.95,
    aspect_ratios: Sequence[float] = DEFAULT_ASPECT_RATIOS,
    interpolated_scale_aspect_ratio: float = 1.0,
    reduce_boxes_in_lowest_layer: Optional[bool] = None,
) -> tf.Tensor:
    """The anchors of an SSDLite model, one per row of its `box_encodings` output.

    Feature-map shapes and the frame size are read from the model, so anchors and predictions
    cannot disagree; the anchor arguments must be the ones the model was built with, and a
    mismatch in the number of boxes per location is refused.

    Args:
      model: a model from `ssdlite_mobilenet_v2`.
      min_scale, max_scale, aspect_ratios, interpolated_scale_aspect_ratio: as in
        `anchor_box_specs`.
      reduce_boxes_in_lowest_layer: as in `anchor_box_specs`; None reads it from the model
        (map 0 predicts 3 boxes per location exactly when it was reduced), which is refused
        when the other arguments also give 3 unreduced boxes.

    Returns:
      float32 `[A, 4]` normalized `(ymin, xmin, ymax, xmax)`.
    """
    shapes = predictor_feature_map_shapes(model)
    if reduce_boxes_in_lowest_layer is None:
        unreduced = anchor_box_specs(len(shapes), min_scale, max_scale, aspect_ratios,
                                     interpolated_scale_aspect_ratio, False)[0]
        if len(unreduced) == _REDUCED_BOXES:
            raise ValueError(
                f"Cannot tell from model {model.name!r} whether its lowest layer was reduced: "
                f"both give {_REDUCED_BOXES} boxes per location with these aspect ratios; pass "
                "reduce_boxes_in_lowest_layer.")
        reduce_boxes_in_lowest_layer = shapes[0][2] == _REDUCED_BOXES
    specs = anchor_box_specs(
        len(shapes),
        min_scale=min_scale,
        max_scale=max_scale,
        aspect_ratios=aspect_ratios,
        interpolated_scale_aspect_ratio=interpolated_scale_aspect_ratio,
        reduce_boxes_in_lowest_layer=reduce_boxes_in_lowest_layer,
    )
    for k, ((_, _, model_k), layer_specs) in enumerate(zip(shapes, specs)):
        if model_k != len(layer_specs):
            raise ValueError(
                f"Box predictor {k} of model {model.name!r} predicts {model_k} boxes per location "
                f"but the anchor arguments give {len(layer_specs)}; pass the aspect_ratios, "
                "interpolated_scale_aspect_ratio and reduce_boxes_in_lowest_layer the model was "
                "built with.")
    _, height, width, _ = model.input_shape
    return grid_anchors([(h, w) for h, w, _ in shapes], specs, (int(height), int(width)))
