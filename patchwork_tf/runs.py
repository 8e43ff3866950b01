"""A trained run's directory, and the models built from it.

Layout of a `python -m patchwork_tf.train` run (`model_dir`):
  stage1/                   the single-frame model (`training.stage1.train_stage1`):
    stage1_config.json      its `Stage1Config` (the architecture and data)
    checkpoints/            `tf.train.CheckpointManager` checkpoints of model and optimizer
  patchwork_config.json     the `AttentionConfig` and `FinetuneConfig` of stages 2 and 3
  stage2/checkpoints/       the DDQN agent (Q-network, target network, optimizer)
  stage3/checkpoints/       the same plus the fine-tuned model
  eval/, export/, seeds/    the evaluation, the SavedModel, the runs of other seeds

`TrainedRun.find(model_dir)` reads which weights are newest; its methods build the model, its
Patchwork twin and the trained Q-network. `build_model` builds an untrained model of the same
architectures from a task, a frame size and a depth multiplier.
"""
import dataclasses
import os
from typing import Optional

import tensorflow as tf
import tf_keras

from patchwork_tf import tasks
from patchwork_tf.core import grid as grid_lib
from patchwork_tf.core import twin as twin_lib
from patchwork_tf.data import synthetic
from patchwork_tf.policy import q_network as q_network_lib
from patchwork_tf.training import configs
from patchwork_tf.training import run_config
from patchwork_tf.training import stage1

STAGE1_DIR = "stage1"
STAGE1_CONFIG_FILE = stage1.CONFIG_FILE
PATCHWORK_CONFIG_FILE = "patchwork_config.json"
CHECKPOINT_DIR = "checkpoints"
ATTENTION_STAGES = ("stage2", "stage3")
EVAL_DIR = "eval"
EXPORT_DIR = "export"
SEEDS_DIR = "seeds"

BACKBONE = "backbone"
MODEL_TASKS = (BACKBONE,) + tasks.TASKS


def checkpoint_dir(model_dir, stage):
    """The checkpoint directory of `stage` ("stage1", "stage2" or "stage3") of a run."""
    return os.path.join(model_dir, stage, CHECKPOINT_DIR)


def latest_stage(model_dir):
    """'stage3' or 'stage2', the newest attention stage with a checkpoint, or None."""
    for stage in reversed(ATTENTION_STAGES):
        if tf.train.latest_checkpoint(checkpoint_dir(model_dir, stage)):
            return stage
    return None


def finished_step(model_dir, stage):
    """The train step of the newest checkpoint of `stage` ("stage2", "stage3"), or None
    (the checkpoints are numbered by it)."""
    latest = tf.train.latest_checkpoint(checkpoint_dir(model_dir, stage))
    return None if latest is None else int(latest.rsplit("-", 1)[1])


def load_patchwork_configs(model_dir):
    """(`AttentionConfig`, `FinetuneConfig`) stored in a run by stage 2 (`configs.from_json`).

    Raises:
      FileNotFoundError: the run has no Patchwork stage.
      ValueError: the file holds settings of another version, naming them.
    """
    values = run_config.load_values(model_dir, PATCHWORK_CONFIG_FILE,
                                    f"{model_dir!r} has no Patchwork stage (run stage 2 first).")
    try:
        return configs.from_json(values)
    except ValueError as e:
        raise ValueError(f"{os.path.join(model_dir, PATCHWORK_CONFIG_FILE)}: {e}") from e


def build_model(task, frame_size, depth_multiplier, num_classes=len(synthetic.CLASS_NAMES),
                num_extra_layers=None, max_detections=100, score_threshold=1e-8, seed=None):
    """A freshly initialised single-frame model of `task` and its post-processing: the task
    object (`patchwork_tf.tasks`, called as `task(outputs, image_size)`), or None for the
    backbone.

    Detection and segmentation models are the stage-1 architecture (`stage1.build_model`
    with the `Stage1Config` defaults for the rest), so stage-1 checkpoints restore into them.

    Args:
      task: one of `MODEL_TASKS`.
      frame_size: H = W in pixels.
      depth_multiplier: MobileNetV2's alpha.
      num_classes: detection classes without background.
      num_extra_layers: SSDLite's extra layers; None takes as many as the frame allows, up
        to 4 (`tasks.detection.extra_layers`).
      max_detections, score_threshold: of the detection NMS.
      seed: seeds the initialisation when given (`tf_keras.utils.set_random_seed`).
    """
    if task not in MODEL_TASKS:
        raise ValueError(f"task must be one of {MODEL_TASKS}, got {task!r}.")
    if seed is not None:
        tf_keras.utils.set_random_seed(seed)
    if task not in tasks.TASKS:  # BACKBONE
        return tf_keras.applications.MobileNetV2(
            input_shape=(frame_size, frame_size, 3), alpha=depth_multiplier,
            include_top=False, weights=None), None
    config = model_config(task, frame_size, depth_multiplier, num_extra_layers)
    model = stage1.build_model(config, num_classes=num_classes)
    return model, postprocess(model, config, max_detections, score_threshold)


def model_config(task, frame_size, depth_multiplier, num_extra_layers=None):
    """The `Stage1Config` of the model `build_model` builds for `task` (one of `tasks.TASKS`)
    at H = W = `frame_size` pixels: the stage-1 defaults for the rest."""
    return stage1.Stage1Config(task, frame_size=(frame_size, frame_size),
                               alpha=depth_multiplier, num_extra_layers=num_extra_layers)


def postprocess(model, config, max_detections=100, score_threshold=1e-8):
    """The task object of a model built by `stage1.build_model(config)`, the serving
    post-processing: detection decoding with stage 1's anchors and NMS (`max_detections`,
    `score_threshold`), or the segmentation mask."""
    task = tasks.get(config.task)
    nms = dict(max_detections=max_detections, score_threshold=score_threshold)
    return task.for_model(model, config, **{k: v for k, v in nms.items() if k in task.settings})


def restore_checkpoint(model, checkpoint):
    """Restores `model` from a `tf.train.Checkpoint(model=...)` prefix or directory.

    Returns:
      the checkpoint prefix restored.

    Raises:
      ValueError: a directory without checkpoints, or a checkpoint that does not hold this
        model's variables (a model built with other settings than the trained one).
    """
    path = tf.train.latest_checkpoint(checkpoint) if os.path.isdir(checkpoint) else checkpoint
    if path is None:
        raise ValueError(
            f"No checkpoint in directory {checkpoint!r}; expected ckpt-N.index files as "
            "tf.train.CheckpointManager writes them (stage 1), or pass a checkpoint prefix.")
    try:
        tf.train.Checkpoint(model=model).restore(path).expect_partial() \
            .assert_existing_objects_matched()
    except (AssertionError, ValueError) as error:
        raise ValueError(
            f"Checkpoint {path!r} does not fit model {model.name!r}: {error}. Build the model "
            "with the task, frame size, depth multiplier and classes it was trained with.") \
            from error
    return path


def scaled_size(frame_size, resolution):
    """`frame_size` scaled by `resolution`, rounded; refuses frames below 32 pixels."""
    size = tuple(int(round(s * resolution)) for s in frame_size)
    if resolution <= 0 or any(s < 32 for s in size):
        raise ValueError(f"resolution {resolution} of a {frame_size} model gives {size} frames; "
                         "MobileNetV2 needs at least 32x32.")
    return size


def build_at_resolution(config, resolution, where):
    """The freshly initialised architecture of `config` (a `Stage1Config`) at `resolution`, a
    fraction of its frame size, with the same layers, so that its checkpoints restore into it
    layer by layer: for SSDLite the number of extra layers is fixed to the trained model's,
    and a frame too small to hold them is refused (naming `where`, the model's directory:
    that resolution needs its own model).
    """
    config = tasks.get(config.task).fixed_layers(config)
    trained_size = tuple(config.frame_size)
    config = dataclasses.replace(config, frame_size=scaled_size(trained_size, resolution))
    try:
        return stage1.build_model(config)
    except ValueError as e:
        raise ValueError(
            f"The model of {where} (trained at {trained_size}) cannot run at resolution "
            f"{resolution} ({config.frame_size}) with the same layers: {e} Train a model at "
            "that frame size and evaluate it with its own --model_dir.") from e


def restore_q_network(twin, config, checkpoint):
    """The `AttentionQNetwork` of `config` (an `AttentionConfig`) for `twin`'s grid and
    observed memory, restored from a stage-2/3 agent checkpoint (a twin at another
    resolution reads the same checkpoint, `q_network.for_twin`).

    Raises:
      AssertionError: the checkpoint lacks a variable of the network.
    """
    network = q_network_lib.for_twin(twin, config.observed_cell, config.change_cue,
                                     config.q_network)
    tf.train.Checkpoint(agent=tf.train.Checkpoint(_q_network=network)).restore(
        checkpoint).expect_partial().assert_existing_objects_matched()
    return network


@dataclasses.dataclass(frozen=True)
class TrainedRun:
    """The newest trained weights of a train job, and its settings.

    Attributes:
      model_dir: the run's directory (or a stage-1 directory alone).
      stage1_dir: the stage-1 directory; its `Stage1Config` fixes the architecture.
      stage1_config: that `Stage1Config`.
      attention: the `AttentionConfig` of stages 2 and 3 (the observed cell resolved), or
        None when no stage 2 was set up.
      finetune: the `FinetuneConfig` of stage 3, or None likewise.
      model_checkpoint: checkpoint prefix of the single-frame model's weights: stage 3's
        (fine-tuned) when stage 3 ran, else stage 1's latest.
      agent_checkpoint: checkpoint prefix of the newest attention Q-network (stage 3, else
        stage 2), or None when only stage 1 ran.
    """

    model_dir: str
    stage1_dir: str
    stage1_config: stage1.Stage1Config
    attention: Optional[configs.AttentionConfig]
    finetune: Optional[configs.FinetuneConfig]
    model_checkpoint: str
    agent_checkpoint: Optional[str]

    @classmethod
    def find(cls, model_dir):
        """The `TrainedRun` of a train job directory, or of a stage-1 directory alone.

        Raises:
          FileNotFoundError: `model_dir` holds neither layout, or no checkpoint of the model.
        """
        stage1_dir = (model_dir if os.path.exists(os.path.join(model_dir, STAGE1_CONFIG_FILE))
                      else os.path.join(model_dir, STAGE1_DIR))
        if not os.path.exists(os.path.join(stage1_dir, STAGE1_CONFIG_FILE)):
            raise FileNotFoundError(
                f"{model_dir} is neither a train job directory (with {STAGE1_DIR}/"
                f"{STAGE1_CONFIG_FILE}) nor a stage-1 directory (with {STAGE1_CONFIG_FILE}); "
                "pass the train job's model directory.")
        stage = latest_stage(model_dir)
        agent = stage and tf.train.latest_checkpoint(checkpoint_dir(model_dir, stage))
        model = agent if stage == "stage3" else tf.train.latest_checkpoint(
            os.path.join(stage1_dir, CHECKPOINT_DIR))
        if model is None:
            raise FileNotFoundError(
                f"No checkpoint in {os.path.join(stage1_dir, CHECKPOINT_DIR)}; run stage 1 "
                "(train_stage1) first.")
        stage1_config = stage1.load_config(stage1_dir)
        attention = finetune = None
        if os.path.exists(os.path.join(model_dir, PATCHWORK_CONFIG_FILE)):
            attention, finetune = load_patchwork_configs(model_dir)
            attention = configs.with_observed_cell(attention, stage1_config)
        return cls(model_dir, stage1_dir, stage1_config, attention, finetune, model,
                   agent or None)

    def build_model(self, resolution=1.0):
        """The single-frame model with the newest weights, rebuilt at `resolution` (a fraction
        of the trained frame size, `build_at_resolution`)."""
        model = build_at_resolution(self.stage1_config, resolution, self.stage1_dir)
        tf.train.Checkpoint(model=model).restore(self.model_checkpoint).expect_partial()
        return model

    def postprocess(self, model, max_detections=100, score_threshold=1e-8):
        """The serving post-processing of `model` (`build_model`), see `postprocess`."""
        return postprocess(model, self.stage1_config, max_detections, score_threshold)

    @property
    def observed_cell(self):
        """The cell the trained Q-network reads, or None without a Patchwork stage."""
        return self.attention.observed_cell if self.attention else None

    def build_twin(self, model, **options):
        """The Patchwork twin of `model` (`build_model`) on the run's grid (M = 4, N = 2
        without a Patchwork stage), whose observed cell keeps whole-window memories.

        `options` (`write`, `fold_batch_norm`, `jit_compile`, `inference`, ...) go to
        `patchwork_model`.
        """
        config = self.attention or configs.AttentionConfig()
        grid = grid_lib.WindowGrid(tuple(model.inputs[0].shape[1:3]), config.m, config.n)
        cells = [self.observed_cell] if self.observed_cell else []
        return twin_lib.patchwork_model(model, grid, full_memory_cells=cells, **options)

    def restore_q_network(self, twin):
        """The trained `AttentionQNetwork` for `twin` (`build_twin`), restored.

        Raises:
          ValueError: the run has no stage-2 or stage-3 checkpoint.
        """
        if self.agent_checkpoint is None:
            raise ValueError(f"{self.model_dir} has no trained attention network (no stage2/ "
                             "or stage3/ checkpoint); run stage 2 first.")
        return restore_q_network(twin, self.attention, self.agent_checkpoint)
