"""Stage 1 of Patchwork training (Sec. 3.4): the single-frame model, trained with batch
normalisation on shuffled single frames.

`train_stage1(model_dir, Stage1Config(task, ...))` trains SSDLite (detection) or DeepLabv3-lite
(segmentation) on MobileNetV2 on frames of a data source (`training.sources`: the synthetic
benchmark, or ImageNet VID / DAVIS mixed with fake videos of COCO, VOC or DET still images) with a
custom loop under a `tf.distribute` strategy chosen by name. It writes into `model_dir`:

* `stage1_config.json`: the model, data and optimizer settings; a resumed run must match it
  (the data copies' directories may move);
* `checkpoints/`: `tf.train.CheckpointManager` checkpoints of the model and the optimizer (the
  step is `optimizer.iterations`); a call on a `model_dir` with checkpoints resumes from the
  latest one. On the synthetic source the batches continue where they stopped, so `k` steps
  then `n - k` more give the variables of `n` uninterrupted steps; on a real source a resumed
  run is determined by the seed and the resume step, but reads a fresh data order (re-reading
  every skipped batch of a video data set would cost as much as training on it);
* `train/`: TensorBoard summaries (losses, learning rate).

Losses: detection uses the target assigner (`patchwork_tf.ops.target_assigner`) and a loss of
`patchwork_tf.losses.detection` chosen by `Stage1Config.detection_loss`: "ssd", the
hard-example-mined sigmoid plus smooth-L1 loss of the paper's detector (the OD API's
`ssdlite_mobilenet_v2_coco.config`), or "focal"; segmentation a per-pixel sigmoid
cross-entropy on the foreground logit (DAVIS 2016 unsupervised, one primary object).

The stage-1 checkpoint is also a checkpoint of the Patchwork model (the twin shares the
single-frame model's weights, docs/design.md section 4). The task object
(`patchwork_tf.tasks`) builds the model and owns its loss.
"""
import dataclasses
import math
import os
import time
from typing import Any, Dict, Optional, Tuple

import tensorflow as tf
import tf_keras

from patchwork_tf import tasks
from patchwork_tf.losses import detection as detection_losses
from patchwork_tf.models import backbone_weights as backbone_weights_lib
from patchwork_tf.training import distribute
from patchwork_tf.training import run_config
from patchwork_tf.training import sources

CONFIG_FILE = "stage1_config.json"
# Config fields that may change when a run resumes: a data copy may move.
DATA_PATHS = ("data_dir", "still_data_dir")
CHECKPOINT_DIR = "checkpoints"
SUMMARY_DIR = "train"
# The key of the learning rate in the outputs of `make_train_step`.
LEARNING_RATE = "learning_rate"


@dataclasses.dataclass(frozen=True)
class Stage1Config:
    """Everything that fixes a stage-1 run's function of the step; stored in `model_dir`.

    Attributes:
      task: "detection" or "segmentation".
      frame_size: `(H, W)` pixels of the frames (the synthetic benchmark's default 128 x 128).
      alpha: MobileNetV2 depth multiplier.
      data: the data source, "synthetic", "imagenet_vid" or "davis" (`sources.SOURCES`).
      data_dir: root of the real source's local copy.
      still_data: still images made into fake videos (Sec. 3.4): "none", or a comma-separated
        list of "coco", "voc" and "imagenet_det" (`sources.DataSource.still_data`).
      still_data_dir: roots of the still sources' local copies, comma-separated in the same
        order (they may move between resumes, `DATA_PATHS`).
      still_fraction: share of fake-video frames in the batches.
      num_classes: object classes (detection); None takes the source's (synthetic 5, ImageNet
        VID 30, DAVIS 1), another value is refused.
      num_extra_layers: SSDLite extra layers; None takes as many as the frame allows, up to 4.
      anchor_min_scale, anchor_max_scale: SSD anchor scales of the first and last feature map.
      reduce_boxes_in_lowest_layer: the OD API's 3 boxes on the stride-16 map. Off by default:
        the synthetic benchmark's objects are 0.13 to 0.37 of the frame side (5th to 95th
        percentile), which on a 128-pixel frame the stride-16 map must cover with square boxes
        of scale 0.2 and 0.3 (the reduced map only has 0.1 and non-square 0.2 boxes, and the
        stride-32 map starts at 0.45).
      output_stride: DeepLab feature stride, 16 or 8.
      dropout_rate: DeepLab dropout after the projection. Dropout draws from an RNG that
        checkpoints do not hold, so exact resumption needs 0.
      batch_norm_momentum: momentum of all BatchNormalization layers.
      batch_size: global batch size.
      learning_rate: peak Adam learning rate of the warmup + cosine schedule.
      num_steps: steps of the whole run (the schedule's length).
      num_train_clips: synthetic training clips (the real sources read every training video).
      frames_per_clip: evenly spaced frames kept per training clip (synthetic) or per 16-frame
        segment of a training video (real sources).
      max_objects: object slots per frame; None takes the source's (synthetic 4, ImageNet VID
        100, DAVIS 1).
      seed: model initialisation, shuffle order and flips.
      backbone_weights: the MobileNetV2 weights a new run starts from: "imagenet" (the paper's
        ImageNet checkpoint, Sec. 4.1), "none" (from scratch) or the path of a weights file of
        the stock MobileNetV2 without its top (`models.backbone_weights`). Only the backbone
        layers take them; the head is freshly initialised, and a resumed run restores its
        checkpoint instead.
      detection_loss: "ssd", the paper's detector's loss (hard-example-mined sigmoid and
        smooth-L1, `losses.detection.ssd_detection_loss`; class logits start at 0), or "focal"
        (`losses.detection.detection_loss`; class logits start at the focal prior). The default
        "focal" is what runs stored before this field trained with, so they load unchanged.
    """
    task: str
    frame_size: Tuple[int, int] = (128, 128)
    alpha: float = 0.35
    data: str = sources.SYNTHETIC
    data_dir: Optional[str] = None
    still_data: str = sources.NO_STILLS
    still_data_dir: Optional[str] = None
    still_fraction: float = 0.5
    num_classes: Optional[int] = None
    num_extra_layers: Optional[int] = None
    anchor_min_scale: float = 0.2
    anchor_max_scale: float = 0.95
    reduce_boxes_in_lowest_layer: bool = False
    output_stride: int = 16
    dropout_rate: float = 0.0
    batch_norm_momentum: float = 0.99
    batch_size: int = 32
    learning_rate: float = 2e-3
    num_steps: int = 1000
    num_train_clips: int = 512
    frames_per_clip: int = 4
    max_objects: Optional[int] = None
    seed: int = 0
    backbone_weights: str = backbone_weights_lib.NONE
    detection_loss: str = detection_losses.FOCAL

    def __post_init__(self):
        tasks.get(self.task)
        if self.num_steps < 1:
            raise ValueError(f"num_steps must be >= 1, got {self.num_steps}.")
        if self.detection_loss not in detection_losses.LOSSES:
            raise ValueError(f"detection_loss must be one of {detection_losses.LOSSES}, got "
                             f"{self.detection_loss!r}.")
        object.__setattr__(self, "frame_size", tuple(int(v) for v in self.frame_size))
        source = self.source
        source.check_task(self.task)
        if self.num_classes is None:
            object.__setattr__(self, "num_classes", source.num_classes)
        elif self.num_classes != source.num_classes:
            raise ValueError(f"num_classes={self.num_classes} but data source {self.data!r} has "
                             f"{source.num_classes} classes; leave num_classes unset.")
        if self.max_objects is None:
            object.__setattr__(self, "max_objects", source.default_max_objects)
        backbone_weights_lib.check_weights(self.backbone_weights, self.alpha)

    @property
    def source(self) -> sources.DataSource:
        """The `sources.DataSource` the run trains on."""
        return sources.DataSource(self.data, self.data_dir, self.still_data, self.still_data_dir,
                                  self.still_fraction)


def pretrained_backbone(config: Stage1Config) -> Optional[tf_keras.Model]:
    """The stock MobileNetV2 holding `config.backbone_weights` (downloaded or read now), for
    `build_model`; None for "none". See `backbone_weights.stock_backbone` for the errors."""
    return backbone_weights_lib.stock_backbone(config.backbone_weights, config.alpha,
                                               config.frame_size + (3,))


def build_model(config: Stage1Config, num_classes: Optional[int] = None,
                pretrained: Optional[tf_keras.Model] = None) -> tf_keras.Model:
    """The single-frame model of `config.task`, freshly initialised.

    Args:
      config: the architecture's fields (task, frame size, alpha, extra layers, anchors'
        `reduce_boxes_in_lowest_layer`, output stride, dropout, batch-norm momentum) and the
        detection loss, which fixes the class logits' initial bias.
      num_classes: the detector's classes; None takes `config.num_classes` (its data
        source's). Another value builds the same architecture for another label set, e.g.
        an export of a model trained elsewhere.
      pretrained: a stock MobileNetV2 (`pretrained_backbone(config)`) whose weights the
        model's backbone layers take, by layer name; None leaves every layer freshly
        initialised. The head's layers stay freshly initialised either way.
    """
    return tasks.get(config.task).build_model(config, num_classes, pretrained)


def load_config(model_dir: str) -> Stage1Config:
    """The `Stage1Config` stored in `model_dir` by `train_stage1`."""
    return run_config.load(
        model_dir, CONFIG_FILE, Stage1Config,
        f"{model_dir!r} is not a stage-1 model directory (train_stage1 writes {CONFIG_FILE}, "
        f"{CHECKPOINT_DIR}/ and {SUMMARY_DIR}/ there).")


def _is_chief(strategy: tf.distribute.Strategy) -> bool:
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    return resolver.task_type == "chief" or (
        resolver.task_type == "worker" and resolver.task_id == 0
        and "chief" not in resolver.cluster_spec().as_dict())


def learning_rate_schedule(config: Stage1Config):
    """Linear warmup over the first 5% of the steps (from lr / 10), then cosine decay to 0."""
    warmup = max(1, config.num_steps // 20)
    return tf_keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=config.learning_rate / 10,
        decay_steps=max(1, config.num_steps - warmup),
        warmup_target=config.learning_rate, warmup_steps=warmup)


def make_replica_step(model: tf_keras.Model, optimizer: tf_keras.optimizers.Optimizer,
                      task, num_replicas: int):
    """The per-replica training step `(images, labels) -> losses` of `train_stage1`.

    One Adam step on `task.loss` (a `tasks.Task` built for `model`), scaled by
    `1 / num_replicas` so that replicas' gradients sum to the global batch's. Returns the dict
    of the task's scalar losses, each divided by `num_replicas` (summed over replicas they are
    the batch's).
    """
    def replica_step(images, labels):
        with tf.GradientTape() as tape:
            outputs = model(images, training=True)
            losses = task.loss(outputs, labels)
            scaled = losses["total"] / num_replicas
        gradients = tape.gradient(scaled, model.trainable_variables)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables))
        return {k: v / num_replicas for k, v in losses.items()}

    return replica_step


def make_train_step(strategy: tf.distribute.Strategy, optimizer: tf_keras.optimizers.Optimizer,
                    replica_step):
    """The `tf.function` `iterator -> losses` of `train_stage1`: one batch of the distributed
    iterator through `replica_step` (`make_replica_step`) on every replica. Returns the
    losses summed over replicas and, under `LEARNING_RATE`, the learning rate of the step's
    update (read in the graph, so the loop runs no eager op per step)."""
    @tf.function
    def train_step(iterator):
        images, labels = next(iterator)
        per_replica = strategy.run(replica_step, args=(images, labels))
        out = {k: strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None)
               for k, v in per_replica.items()}
        # With a schedule, `apply_gradients` stores the rate it used in the variable that
        # `optimizer.learning_rate` reads.
        out[LEARNING_RATE] = tf.identity(optimizer.learning_rate)
        return out

    return train_step


def train_stage1(
    model_dir: str,
    config: Stage1Config,
    strategy: str = "default",
    checkpoint_every: int = 200,
    summary_every: int = 20,
    max_checkpoints: int = 3,
    max_seconds: Optional[float] = None,
    stop_at_step: Optional[int] = None,
    verbose: int = 1,
) -> Dict[str, Any]:
    """Trains (or resumes) the stage-1 single-frame model of `config` in `model_dir`.

    Args:
      model_dir: directory for the config, checkpoints and summaries.
      config: the `Stage1Config` (model, data and optimizer settings).
      strategy: "default", "mirrored" or "multi_worker" (see `distribute.get_strategy`).
      checkpoint_every: steps between checkpoints; the last step is always saved.
      summary_every: steps between TensorBoard summaries.
      max_checkpoints: checkpoints kept.
      max_seconds: stop (and save) after this many seconds of training; None for no limit.
      stop_at_step: stop (and save) at this step, before `num_steps`, e.g. to split a run.
      verbose: 1 for a `tf_keras.utils.Progbar`, 0 for silence.

    Returns:
      dict: `step` reached, `losses` (floats of the last step), `seconds` of training,
      `steps_per_second`, `out_of_time` (whether `max_seconds` stopped it before its last
      step), `model` (the trained tf_keras model), `config`.
    """
    if not isinstance(config, Stage1Config):
        raise TypeError(f"config must be a Stage1Config, got {type(config).__name__}; build one "
                        "with the task and the settings, e.g. Stage1Config('detection').")
    end_step = config.num_steps if stop_at_step is None else min(stop_at_step, config.num_steps)
    strategy_obj = distribute.get_strategy(strategy)
    chief = _is_chief(strategy_obj)
    checkpoint_dir = os.path.join(model_dir, CHECKPOINT_DIR)
    if not chief:
        # Non-chief workers of a multi-worker run save too (collectives need every worker) but
        # into a private directory (the tf.distribute multi-worker checkpointing pattern).
        checkpoint_dir = os.path.join(model_dir, f"worker_{strategy_obj.cluster_resolver.task_id}")
    # A new run starts from the backbone weights; they load before the config is stored, so
    # a missing or wrong file leaves no run behind. A resumed run restores its checkpoint.
    pretrained = (pretrained_backbone(config) if tf.train.latest_checkpoint(checkpoint_dir) is None
                  else None)
    if chief:
        run_config.store(model_dir, CONFIG_FILE, config, extensible=DATA_PATHS)

    tf_keras.utils.set_random_seed(config.seed)
    with strategy_obj.scope():
        model = build_model(config, pretrained=pretrained)
        schedule = learning_rate_schedule(config)
        optimizer = tf_keras.optimizers.Adam(schedule)
        optimizer.build(model.trainable_variables)
    checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer)
    manager = tf.train.CheckpointManager(checkpoint, checkpoint_dir, max_to_keep=max_checkpoints,
                                         step_counter=optimizer.iterations)
    if manager.latest_checkpoint:
        checkpoint.restore(manager.latest_checkpoint).assert_existing_objects_matched()
    start_step = int(optimizer.iterations.numpy())

    dataset = config.source.stage1_dataset(
        config.task, config.frame_size, config.batch_size, config.seed, start_step=start_step,
        frames_per_clip=config.frames_per_clip, max_objects=config.max_objects,
        num_train_clips=config.num_train_clips)
    iterator = iter(strategy_obj.experimental_distribute_dataset(dataset))
    task = tasks.get(config.task).for_model(model, config)
    replica_step = make_replica_step(model, optimizer, task,
                                     strategy_obj.num_replicas_in_sync)
    train_step = make_train_step(strategy_obj, optimizer, replica_step)

    writer = (tf.summary.create_file_writer(os.path.join(model_dir, SUMMARY_DIR)) if chief
              else tf.summary.create_noop_writer())
    progbar = tf_keras.utils.Progbar(config.num_steps, verbose=verbose,
                                     stateful_metrics=["loss", "lr"])
    step, losses, out_of_time = start_step, {}, False
    started = time.perf_counter()
    with writer.as_default():
        while step < end_step:
            losses = train_step(iterator)
            step += 1
            loss = float(losses["total"])
            if not math.isfinite(loss):
                raise FloatingPointError(f"stage-1 loss became {loss} at step {step}; lower "
                                         f"learning_rate (now {config.learning_rate}).")
            learning_rate = float(losses.pop(LEARNING_RATE))
            if step % summary_every == 0 or step == end_step:
                for name, value in losses.items():
                    tf.summary.scalar(f"loss/{name}", value, step=step)
                tf.summary.scalar("learning_rate", learning_rate, step=step)
            progbar.update(step, [("loss", loss), ("lr", learning_rate)])
            out_of_time = (max_seconds is not None and step < end_step
                           and time.perf_counter() - started > max_seconds)
            if step % checkpoint_every == 0 or step == end_step or out_of_time:
                manager.save(checkpoint_number=step)
            if out_of_time:
                break
    seconds = time.perf_counter() - started
    return {
        "step": step,
        "losses": {k: float(v) for k, v in losses.items()},
        "seconds": seconds,
        "steps_per_second": (step - start_step) / seconds if seconds > 0 else float("nan"),
        "out_of_time": out_of_time,
        "model": model,
        "config": config,
    }


def restore_model(model_dir: str) -> Tuple[tf_keras.Model, Stage1Config, int]:
    """The model of the latest stage-1 checkpoint in `model_dir`, its config and step."""
    config = load_config(model_dir)
    model = build_model(config)
    latest = tf.train.latest_checkpoint(os.path.join(model_dir, CHECKPOINT_DIR))
    if latest is None:
        raise FileNotFoundError(f"No checkpoint in {os.path.join(model_dir, CHECKPOINT_DIR)}; "
                                "run train_stage1 first.")
    tf.train.Checkpoint(model=model).restore(latest).expect_partial()
    # CheckpointManager names checkpoints `ckpt-<step>` (train_stage1 passes the step).
    return model, config, int(latest.rsplit("-", 1)[1])
