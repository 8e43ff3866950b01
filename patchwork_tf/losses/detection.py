"""SSD detection losses: sigmoid focal classification loss and smooth-L1 localisation loss.

Classification: **sigmoid focal loss** (Lin et al., "Focal Loss for Dense Object Detection",
ICCV 2017; alpha = 0.25, gamma = 2, the TF Object Detection API's SSD-FPN / RetinaNet setting)
rather than SSD's softmax with 3:1 hard-negative mining. Why:
  * it is a pure per-anchor tensor function: no per-image sort or NMS-based mining, so it runs
    unchanged on a batch of padded frames inside one traced `tf.function`, and on the global
    cell's full-frame prediction memory in stage 3 fine-tuning (Sec. 3.4);
  * easy negatives are down-weighted by p^gamma instead of dropped, so there is no miner to
    tune (negatives per positive, the miner's own NMS) and the loss is a smooth function of
    every anchor's logits;
  * sigmoid scores are independent per class, so "score > 0.5" in the detection reward
    (Eq. 3, Sec. 3.3) is a calibrated per-class threshold rather than a share of a softmax.
Post-processing (`patchwork_tf.ops.postprocess`) therefore uses sigmoid scores too.

Layout: class logits are [B, N, C + 1] with column 0 the background, as the TF OD API's SSD
heads (`add_background_class`); targets come from
`patchwork_tf.ops.target_assigner.assign_targets` (0 = background, class_id + 1). The focal
loss is applied to all C + 1 columns against one-hot targets.

Both losses are summed over anchors and frames and divided by the number of positive anchors
in the batch (at least 1), as SSD (`normalize_loss_by_num_matches`).
"""
import tensorflow as tf

FOCAL_ALPHA = 0.25
FOCAL_GAMMA = 2.0


def _check_rank(x, rank, name, expected):
    if x.shape.rank is not None and x.shape.rank != rank:
        raise ValueError(f"{name} must have shape {expected}; got shape {x.shape}.")


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
    class_logits = tf.convert_to_tensor(class_logits, tf.float32)
    cls_targets = tf.convert_to_tensor(cls_targets, tf.int32)
    _check_rank(class_logits, 3, "class_logits", "[B, N, C + 1]")
    _check_rank(cls_targets, 2, "cls_targets", "[B, N]")
    labels = tf.one_hot(cls_targets, tf.shape(class_logits)[-1], dtype=tf.float32)
    cross_entropy = tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=class_logits)
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
    """SSD training loss of a batch, normalized by its number of positive anchors.

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
