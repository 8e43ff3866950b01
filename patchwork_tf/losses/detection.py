"""SSD detection losses: the sigmoid focal loss, and the hard-example-mined SSD loss of the
paper's detector; both with a smooth-L1 localisation loss.

Two classification losses, chosen by `Stage1Config.detection_loss`:

* **"ssd"** (`ssd_detection_loss`), the loss of the paper's detector: Sec. 4.1 takes "an
  off-the-shelf MobileNetV2 + SSD detection architecture [33]", the MobileNetV2 paper's
  SSDLite, trained with the TF Object Detection API config `ssdlite_mobilenet_v2_coco.config`
  (`research/object_detection/samples/configs/`). Its `loss` block is a weighted sigmoid
  cross-entropy over the C + 1 columns and a weighted smooth-L1 (delta 1) localisation loss,
  both weight 1.0, with `hard_example_miner { num_hard_examples: 3000, iou_threshold: 0.99,
  loss_type: CLASSIFICATION, max_negatives_per_positive: 3, min_negatives_per_image: 3 }`
  and `normalize_loss_by_num_matches: true`; `ssd_mobilenet_v2_coco.config` has the same
  block. The miner is the API's `core/losses.py` `HardExampleMiner` (see `hard_example_mask`).
* **"focal"** (`detection_loss`), the sigmoid focal loss (Lin et al., "Focal Loss for Dense
  Object Detection", ICCV 2017; alpha = 0.25, gamma = 2, the TF OD API's SSD-FPN / RetinaNet
  setting) instead of mining. Not the paper's; kept because
  - it is a pure per-anchor tensor function: no per-image sort or NMS-based mining, so it
    runs unchanged on a batch of padded frames inside one traced `tf.function`, and on the
    global cell's full-frame prediction memory in stage 3 fine-tuning (Sec. 3.4);
  - easy negatives are down-weighted by p^gamma instead of dropped, so there is no miner to
    tune (negatives per positive, the miner's own NMS) and the loss is a smooth function of
    every anchor's logits.

Both score classes with independent sigmoids, so "score > 0.5" in the detection reward
(Eq. 3, Sec. 3.3) is a per-class threshold rather than a share of a softmax, and
post-processing (`patchwork_tf.ops.postprocess`) uses sigmoid scores (the OD API config's
`score_converter: SIGMOID`).

Layout: class logits are [B, N, C + 1] with column 0 the background, as the TF OD API's SSD
heads (`add_background_class`); targets come from
`patchwork_tf.ops.target_assigner.assign_targets` (0 = background, class_id + 1). Both
classification losses apply to all C + 1 columns against one-hot targets.

Both losses are summed over anchors (the mined ones for "ssd") and frames and divided by the
number of positive anchors in the batch (at least 1), as SSD (`normalize_loss_by_num_matches`).
"""
import tensorflow as tf

from patchwork_tf.ops import box_coder
from patchwork_tf.ops import target_assigner

FOCAL = "focal"
SSD = "ssd"
LOSSES = (FOCAL, SSD)

FOCAL_ALPHA = 0.25
FOCAL_GAMMA = 2.0

# hard_example_miner of ssdlite_mobilenet_v2_coco.config (TF OD API samples/configs).
SSD_NUM_HARD_EXAMPLES = 3000
SSD_MINER_IOU_THRESHOLD = 0.99
SSD_MAX_NEGATIVES_PER_POSITIVE = 3
SSD_MIN_NEGATIVES_PER_IMAGE = 3


def _check_rank(x, rank, name, expected):
    if x.shape.rank is not None and x.shape.rank != rank:
        raise ValueError(f"{name} must have shape {expected}; got shape {x.shape}.")


def _sigmoid_cross_entropy(class_logits, cls_targets):
    """(logits float32 [B, N, C + 1], one-hot targets [B, N, C + 1], per-column sigmoid
    cross-entropy [B, N, C + 1]) of class logits and int targets [B, N]."""
    class_logits = tf.convert_to_tensor(class_logits, tf.float32)
    cls_targets = tf.convert_to_tensor(cls_targets, tf.int32)
    _check_rank(class_logits, 3, "class_logits", "[B, N, C + 1]")
    _check_rank(cls_targets, 2, "cls_targets", "[B, N]")
    labels = tf.one_hot(cls_targets, tf.shape(class_logits)[-1], dtype=tf.float32)
    return class_logits, labels, tf.nn.sigmoid_cross_entropy_with_logits(labels=labels,
                                                                         logits=class_logits)


def sigmoid_focal_loss(class_logits, cls_targets, cls_weights, alpha=FOCAL_ALPHA,
                       gamma=FOCAL_GAMMA):
    """Per-anchor sigmoid focal loss, summed over the C + 1 class columns.

    FL = -alpha_t (1 - p_t)^gamma log(p_t) with p_t = p for the target column and 1 - p for the
    others, alpha_t = alpha for the target column and 1 - alpha for the others.

    Args:
      class_logits: float32 [B, N, C + 1] logits, column 0 background.
      cls_targets: int32 [B, N] in [0, C]; 0 = background.
      cls_weights: float32 [B, N]; 0 removes an anchor (the ignore band).
      alpha: weight of the target column.
      gamma: focusing exponent.

    Returns:
      float32 [B, N], weighted, not normalized.
    """
    class_logits, labels, cross_entropy = _sigmoid_cross_entropy(class_logits, cls_targets)
    probs = tf.sigmoid(class_logits)
    p_t = labels * probs + (1.0 - labels) * (1.0 - probs)
    alpha_t = labels * alpha + (1.0 - labels) * (1.0 - alpha)
    per_class = alpha_t * tf.pow(1.0 - p_t, gamma) * cross_entropy
    return tf.reduce_sum(per_class, axis=-1) * tf.convert_to_tensor(cls_weights, tf.float32)


def smooth_l1_loss(box_encodings, reg_targets, reg_weights, delta=1.0):
    """Per-anchor smooth-L1 (Huber) loss, summed over the four box codes.

    Args:
      box_encodings: float32 [B, N, 4] predicted codes (`patchwork_tf.ops.box_coder`).
      reg_targets: float32 [B, N, 4] encoded targets.
      reg_weights: float32 [B, N]; 1 for positive anchors, else 0.
      delta: where the loss turns from quadratic (0.5 x^2) to linear (delta (|x| - delta / 2)).

    Returns:
      float32 [B, N], weighted, not normalized.
    """
    box_encodings = tf.convert_to_tensor(box_encodings, tf.float32)
    _check_rank(box_encodings, 3, "box_encodings", "[B, N, 4]")
    diff = tf.abs(box_encodings - tf.convert_to_tensor(reg_targets, tf.float32))
    huber = tf.where(diff < delta, 0.5 * tf.square(diff), delta * (diff - 0.5 * delta))
    return tf.reduce_sum(huber, axis=-1) * tf.convert_to_tensor(reg_weights, tf.float32)


def detection_loss(class_logits, box_encodings, targets, localization_weight=1.0,
                   alpha=FOCAL_ALPHA, gamma=FOCAL_GAMMA, delta=1.0):
    """The focal SSD loss of a batch ("focal"): sigmoid focal plus smooth-L1 over every
    anchor, normalized by the batch's positive anchors.

    Args:
      class_logits: float32 [B, N, C + 1], column 0 background.
      box_encodings: float32 [B, N, 4].
      targets: dict from `patchwork_tf.ops.target_assigner.assign_targets` (uses cls_targets,
        cls_weights, reg_targets, reg_weights).
      localization_weight: weight of the localisation term in `total`.
      alpha, gamma: focal loss parameters.
      delta: Huber delta.

    Returns:
      dict of float32 scalars: classification, localization, total, num_positives.
    """
    num_positives = tf.reduce_sum(tf.convert_to_tensor(targets["reg_weights"], tf.float32))
    normalizer = tf.maximum(num_positives, 1.0)
    classification = tf.reduce_sum(sigmoid_focal_loss(
        class_logits, targets["cls_targets"], targets["cls_weights"], alpha, gamma)) / normalizer
    localization = tf.reduce_sum(smooth_l1_loss(
        box_encodings, targets["reg_targets"], targets["reg_weights"], delta)) / normalizer
    return dict(classification=classification, localization=localization,
                total=classification + localization_weight * localization,
                num_positives=num_positives)


def sigmoid_cross_entropy_loss(class_logits, cls_targets, cls_weights):
    """Per-anchor sigmoid cross-entropy, summed over the C + 1 class columns: the OD API's
    `WeightedSigmoidClassificationLoss` (`weighted_sigmoid` in the SSDLite config).

    Args:
      class_logits: float32 [B, N, C + 1] logits, column 0 background.
      cls_targets: int32 [B, N] in [0, C]; 0 = background.
      cls_weights: float32 [B, N]; 0 removes an anchor (the ignore band).

    Returns:
      float32 [B, N], weighted, not normalized.
    """
    _, _, cross_entropy = _sigmoid_cross_entropy(class_logits, cls_targets)
    return tf.reduce_sum(cross_entropy, axis=-1) * tf.convert_to_tensor(cls_weights, tf.float32)


def hard_example_mask(cls_losses, matches, decoded_boxes,
                      num_hard_examples=SSD_NUM_HARD_EXAMPLES,
                      iou_threshold=SSD_MINER_IOU_THRESHOLD,
                      max_negatives_per_positive=SSD_MAX_NEGATIVES_PER_POSITIVE,
                      min_negatives_per_image=SSD_MIN_NEGATIVES_PER_IMAGE):
    """The anchors whose losses count: the TF OD API's `HardExampleMiner` with
    `loss_type: CLASSIFICATION`, per image.

    1. Non-maximum suppression over the image's decoded predicted boxes, scored by their
       classification loss, keeps at most `num_hard_examples` anchors, highest loss first;
       an anchor whose box overlaps a kept higher-loss box with IoU > `iou_threshold` is
       dropped (at 0.99 only near-duplicate boxes).
    2. Of the kept anchors, every positive stays, and the first K negatives in loss order,
       K = max(`min_negatives_per_image`, floor(`max_negatives_per_positive` * kept
       positives)). Ignored anchors are never selected.

    The OD API also drops positives that step 1 does not keep (more than
    `num_hard_examples` anchors, or a near-duplicate box); this does the same.

    Cost: one NMS over the N decoded boxes per image (`tf.map_fn` over the batch). At B = 64
    and N = 2892 (384 px frames) the "ssd" loss took about 3 s on two shared CPU cores
    against 70 ms for the focal loss; not yet measured on an accelerator.

    Args:
      cls_losses: float32 [B, N] per-anchor classification losses (the mining scores).
      matches: int32 [B, N] from `target_assigner.match`: >= 0 positive,
        `target_assigner.NEGATIVE` negative, `target_assigner.IGNORED` ignored.
      decoded_boxes: float32 [B, N, 4] predicted boxes, normalized (ymin, xmin, ymax, xmax).
      num_hard_examples: anchors NMS keeps per image, >= 1.
      iou_threshold: NMS IoU threshold, in [0, 1].
      max_negatives_per_positive: negatives per kept positive, > 0.
      min_negatives_per_image: negatives kept even in an image without positives, >= 0.

    Returns:
      float32 [B, N]: 1 for the selected anchors, else 0; no gradient.
    """
    if num_hard_examples < 1 or not 0.0 <= iou_threshold <= 1.0:
        raise ValueError(
            f"need num_hard_examples >= 1 and 0 <= iou_threshold <= 1; got {num_hard_examples} "
            f"and {iou_threshold} (the SSDLite config: {SSD_NUM_HARD_EXAMPLES}, "
            f"{SSD_MINER_IOU_THRESHOLD}).")
    if max_negatives_per_positive <= 0 or min_negatives_per_image < 0:
        raise ValueError(
            f"need max_negatives_per_positive > 0 and min_negatives_per_image >= 0; got "
            f"{max_negatives_per_positive} and {min_negatives_per_image} (the SSDLite config: "
            f"{SSD_MAX_NEGATIVES_PER_POSITIVE}, {SSD_MIN_NEGATIVES_PER_IMAGE}).")
    cls_losses = tf.stop_gradient(tf.convert_to_tensor(cls_losses, tf.float32))
    matches = tf.convert_to_tensor(matches, tf.int32)
    decoded_boxes = tf.stop_gradient(tf.convert_to_tensor(decoded_boxes, tf.float32))
    _check_rank(cls_losses, 2, "cls_losses", "[B, N]")
    _check_rank(matches, 2, "matches", "[B, N]")
    _check_rank(decoded_boxes, 3, "decoded_boxes", "[B, N, 4]")
    num_anchors = tf.shape(cls_losses)[1]

    def mine_image(image):
        losses, image_matches, boxes = image
        kept = tf.image.non_max_suppression(boxes, losses, num_hard_examples, iou_threshold)
        kept_matches = tf.gather(image_matches, kept)
        positive = kept_matches >= 0
        negative = tf.equal(kept_matches, target_assigner.NEGATIVE)
        num_positives = tf.reduce_sum(tf.cast(positive, tf.float32))
        max_negatives = tf.maximum(
            min_negatives_per_image,
            tf.cast(tf.floor(max_negatives_per_positive * num_positives), tf.int32))
        hardest = negative & (tf.cumsum(tf.cast(negative, tf.int32)) <= max_negatives)
        selected = tf.boolean_mask(kept, positive | hardest)
        return tf.scatter_nd(selected[:, None], tf.ones_like(selected, tf.float32),
                             [num_anchors])

    return tf.map_fn(mine_image, (cls_losses, matches, decoded_boxes),
                     fn_output_signature=tf.TensorSpec([None], tf.float32))


def ssd_detection_loss(class_logits, box_encodings, targets, anchors, localization_weight=1.0,
                       delta=1.0, num_hard_examples=SSD_NUM_HARD_EXAMPLES,
                       iou_threshold=SSD_MINER_IOU_THRESHOLD,
                       max_negatives_per_positive=SSD_MAX_NEGATIVES_PER_POSITIVE,
                       min_negatives_per_image=SSD_MIN_NEGATIVES_PER_IMAGE,
                       scale_factors=box_coder.SSD_SCALE_FACTORS):
    """The SSD loss of `ssdlite_mobilenet_v2_coco.config` (TF OD API), normalized by the
    batch's positive anchors: sigmoid cross-entropy plus smooth-L1 over the hard-mined anchors
    (`hard_example_mask`), as the API's `SSDMetaArch.loss`.

    Args:
      class_logits: float32 [B, N, C + 1], column 0 background.
      box_encodings: float32 [B, N, 4] predicted codes.
      targets: dict from `patchwork_tf.ops.target_assigner.assign_targets` (uses cls_targets,
        cls_weights, reg_targets, reg_weights, matches).
      anchors: float32 [N, 4] normalized, to decode the predicted boxes the miner's NMS reads.
      localization_weight: weight of the localisation term in `total` (config: 1.0).
      delta: Huber delta (config: `weighted_smooth_l1` default 1.0).
      num_hard_examples, iou_threshold, max_negatives_per_positive, min_negatives_per_image:
        the miner's settings (`hard_example_mask`), the config's by default.
      scale_factors: the box coder's (config: 10, 10, 5, 5).

    Returns:
      dict of float32 scalars: classification, localization, total, num_positives (positive
      anchors of the batch, the normalizer) and num_negatives (negatives mined in the batch).
    """
    cls_losses = sigmoid_cross_entropy_loss(class_logits, targets["cls_targets"],
                                            targets["cls_weights"])
    box_encodings = tf.convert_to_tensor(box_encodings, tf.float32)
    decoded_boxes = box_coder.decode(box_encodings, anchors, scale_factors)
    mask = hard_example_mask(cls_losses, targets["matches"], decoded_boxes, num_hard_examples,
                             iou_threshold, max_negatives_per_positive, min_negatives_per_image)
    loc_losses = smooth_l1_loss(box_encodings, targets["reg_targets"], targets["reg_weights"],
                                delta)
    num_positives = tf.reduce_sum(tf.convert_to_tensor(targets["reg_weights"], tf.float32))
    normalizer = tf.maximum(num_positives, 1.0)
    classification = tf.reduce_sum(mask * cls_losses) / normalizer
    localization = tf.reduce_sum(mask * loc_losses) / normalizer
    negatives = tf.equal(tf.convert_to_tensor(targets["matches"], tf.int32),
                         target_assigner.NEGATIVE)
    return dict(classification=classification, localization=localization,
                total=classification + localization_weight * localization,
                num_positives=num_positives,
                num_negatives=tf.reduce_sum(mask * tf.cast(negatives, tf.float32)))
