"""Stage 2 (Sec. 3.4): the stage-1 model placed in the Patchwork setting, attention trained.

The stage-1 model's weights are frozen; its Patchwork twin streams batches of clips through a
`VideoStreamEnvironment`, and tf-agents' `DdqnAgent` trains the `AttentionQNetwork` on the
Eq. 2 reward (Sec. 3.3). Everything resumes from `tf.train.CheckpointManager` checkpoints in
`model_dir`.

Layout of a Patchwork model directory (`model_dir`):
  stage1/                 the single-frame model (`stage1.train_stage1`)
  patchwork_config.json   the `PatchworkConfig` of stages 2 and 3
  stage2/checkpoints/     agent (Q-network, target network, optimizer); the replay buffer
                          only with `checkpoint_replay_buffer=True` (`trainer.collect_and_train`)
  stage3/checkpoints/     the same plus the fine-tuned model and its optimizer

The replay buffer stores the observation as the Q-network reads it: each window's mean of the
observed cell's memory (`q_network.pool_observation`), not the memory itself. At the scale of
`experiments/vid.flags` that is 9 x 576 floats a step instead of 24 x 24 x 576, about 0.33 GB
for 16 streams x 1000 steps instead of 21 GB (`tools/replay_memory.py`).
"""
import dataclasses
import os
from typing import Optional

import tensorflow as tf
import tf_keras

from patchwork_tf import tasks
from patchwork_tf.core import grid as grid_lib
from patchwork_tf.core import twin as twin_lib
from patchwork_tf.metrics import rewards
from patchwork_tf.policy import agent as agent_lib
from patchwork_tf.policy import environment as environment_lib
from patchwork_tf.policy import imitation
from patchwork_tf.policy import observation as observation_lib
from patchwork_tf.policy import q_network as q_network_lib
from patchwork_tf.policy import trainer
from patchwork_tf.training import run_config
from patchwork_tf.training import sources
from patchwork_tf.training import stage1

CONFIG_FILE = "patchwork_config.json"
STAGE1_DIR = "stage1"


@dataclasses.dataclass(frozen=True)
class PatchworkConfig:
    """The Patchwork setting and the attention training of stages 2 and 3.

    Attributes:
      m, n: the window grid (Sec. 3.1).
      observed_cell: the cell (layer L, Fig. 3) whose memory the Q-network reads; None takes
        the one the stage-1 model's builder names (`tasks.Task.observed_cell`).
      history_alpha: decay of the action history, Eq. 1.
      change_cue: the Q-network also observes how much each window changed since it was
        last processed (`policy.observation`); False is the paper's observation.
      q_network: the Q-network's head (`q_network.Q_NETWORKS`): "ours" adds a hidden layer of
        64 ReLU units between the concatenation of window features and history and the
        Q-value layer; "paper" has the final fully connected layer alone (Sec. 3.1, Fig. 3);
        "window" (ours) scores each window from its own features, no layer across windows.
      num_streams: clips streamed side by side (the environment's batch).
      clip_length: frames per training clip.
      num_train_clips: synthetic training clips (cycled; real sources read every video).
      data, data_dir, still_data, still_data_dir, still_fraction: the data source of the
        training clips (`sources.DataSource`); `data` must be the stage-1 model's.
      reward: `rewards.REWARDS`: "clipped" is Eq. 2; "difference" (ours) drops its clipping
        at 0, so frames where no window beats the kept prediction still rank the windows.
      gamma: discount of Eq. 5.
      learning_rate: Adam learning rate of the Q-network in stage 2.
      target_update_period: train steps between target-network updates (Eq. 5's Theta').
      epsilon_start, epsilon_end, epsilon_decay_steps: the epsilon-greedy schedule.
      replay_capacity: replay buffer steps per stream.
      sample_batch_size: transitions per DDQN train step.
      initial_collect_steps: random-policy steps per stream before training.
      imitation_steps: gradient steps of learning from the change rule's demonstrations
        (`policy.imitation`, DQfD's large-margin loss plus TD) before stage 2's DDQN; 0 (the
        paper's setting) learns by DDQN alone. Needs `change_cue`.
      stage2_steps: DDQN train steps of stage 2.
      stage3_steps: DDQN train steps of stage 3 (absolute count, continuing stage 2's).
      stage3_learning_rate: learning rate of the fine-tuned main network in stage 3.
      stage3_q_learning_rate: the Q-network's learning rate in stage 3 (lower than stage 2).
      stage3_finetune_every: DDQN train steps between supervised fine-tuning steps.
      stage3_clip_length: frames of the unrolled clips of the supervised loss.
      stage3_batch_size: clips per supervised fine-tuning step.
      seed: seed of the clip order and the networks' initialisation.
    """

    m: int = 4
    n: int = 2
    observed_cell: Optional[str] = None
    history_alpha: float = 0.5
    change_cue: bool = True
    q_network: str = "ours"
    num_streams: int = 8
    clip_length: int = 16
    num_train_clips: int = 256
    reward: str = rewards.CLIPPED
    gamma: float = 0.9
    learning_rate: float = 1e-3
    target_update_period: int = 100
    epsilon_start: float = 1.0
    epsilon_end: float = 0.05
    epsilon_decay_steps: int = 500
    replay_capacity: int = 1000
    sample_batch_size: int = 64
    initial_collect_steps: int = 32
    imitation_steps: int = 0
    stage2_steps: int = 600
    stage3_steps: int = 900
    stage3_learning_rate: float = 1e-4
    stage3_q_learning_rate: float = 2e-4
    stage3_finetune_every: int = 4
    stage3_clip_length: int = 6
    stage3_batch_size: int = 4
    seed: int = 0
    data: str = sources.SYNTHETIC
    data_dir: Optional[str] = None
    still_data: str = sources.NO_STILLS
    still_data_dir: Optional[str] = None
    still_fraction: float = 0.5

    def __post_init__(self):
        _ = self.source  # Refuses bad data fields where they enter.
        if self.reward not in rewards.REWARDS:
            raise ValueError(f"reward must be one of {rewards.REWARDS}, got {self.reward!r}.")
        if self.q_network not in q_network_lib.Q_NETWORKS:
            raise ValueError(f"q_network must be one of {sorted(q_network_lib.Q_NETWORKS)}, "
                             f"got {self.q_network!r}.")
        if self.imitation_steps < 0 or (self.imitation_steps and not self.change_cue):
            raise ValueError(
                f"imitation_steps ({self.imitation_steps}) must be >= 0, and > 0 only with the "
                "change cue the demonstrating rule reads (change_cue=True).")
        if self.stage3_steps < self.stage2_steps:
            raise ValueError(
                f"stage3_steps ({self.stage3_steps}) counts on from stage 2's "
                f"{self.stage2_steps} DDQN steps and must not be smaller.")

    @property
    def source(self):
        """The `sources.DataSource` of the training clips."""
        return sources.DataSource(self.data, self.data_dir, self.still_data,
                                  self.still_data_dir, self.still_fraction)


# Step counts may grow between runs: a resumed run then trains on to the new count. Data copies
# may move.
_EXTENSIBLE_FIELDS = ("stage2_steps", "stage3_steps") + stage1.DATA_PATHS


def with_observed_cell(config, stage1_config):
    """`config` with an `observed_cell` of None replaced by the stage-1 model's
    (`tasks.Task.observed_cell`)."""
    if config.observed_cell is not None:
        return config
    return dataclasses.replace(config, observed_cell=tasks.get(stage1_config.task).observed_cell)


def store_config(model_dir, config):
    """Writes `config` to `model_dir`, or checks it against the stored one but for the step
    counts (a resume). Returns the config as stored (the observed cell resolved)."""
    config = with_observed_cell(config, stage1.load_config(os.path.join(model_dir, STAGE1_DIR)))
    run_config.store(model_dir, CONFIG_FILE, config, extensible=_EXTENSIBLE_FIELDS)
    return config


def load_config(model_dir):
    return run_config.load(model_dir, CONFIG_FILE, PatchworkConfig,
                           f"{model_dir!r} has no Patchwork stage (run stage 2 first).")


def training_clips(task, config, frame_size, num_clips, clip_length, batch_size, seed,
                   max_objects=4):
    """Batched, repeated training clips `[B, T, ...]` of `config`'s data source with the
    reward's fields (`sources.DataSource.training_clips`)."""
    return config.source.training_clips(task, frame_size, clip_length, batch_size, seed,
                                        num_clips=num_clips, max_objects=max_objects)


@dataclasses.dataclass
class Patchwork:
    """A stage-1 model in the Patchwork setting, with its attention Q-network."""

    model: tf_keras.Model
    stage1_config: stage1.Stage1Config
    config: PatchworkConfig
    grid: grid_lib.WindowGrid
    twin: twin_lib.PatchworkModel
    task: tasks.Task
    q_network: q_network_lib.AttentionQNetwork

    @property
    def observer(self):
        """The `AttentionObservation` that builds the Q-network's input."""
        return observation_lib.AttentionObservation(
            self.grid, self.config.history_alpha, self.config.change_cue)

    @property
    def observation_spec(self):
        return self.observer.spec(self.twin.view_shape(self.config.observed_cell))


def build_patchwork(model_dir, config, write="bands", jit_compile=False):
    """The stage-1 model of `model_dir/stage1` in the Patchwork setting of `config`.

    The Q-network is freshly initialised (seeded); `load_patchwork` restores a trained one.
    """
    model, stage1_config, _ = stage1.restore_model(os.path.join(model_dir, STAGE1_DIR))
    if config.data != stage1_config.data:
        raise ValueError(
            f"the Patchwork config reads data source {config.data!r}, but the stage-1 model of "
            f"{model_dir!r} was trained on {stage1_config.data!r}; use the same source.")
    config = with_observed_cell(config, stage1_config)
    grid = grid_lib.WindowGrid(stage1_config.frame_size, config.m, config.n)
    twin = twin_lib.patchwork_model(model, grid, jit_compile=jit_compile, write=write,
                                    full_memory_cells=[config.observed_cell])
    task = tasks.get(stage1_config.task).for_model(model, stage1_config)
    tf_keras.utils.set_random_seed(config.seed)
    q_network = q_network_lib.for_twin(twin, config.observed_cell, config.change_cue,
                                       config.q_network)
    return Patchwork(model, stage1_config, config, grid, twin, task, q_network)


def latest_stage(model_dir):
    """'stage3' or 'stage2', the newest stage with a checkpoint, or None (stage 1 only)."""
    for stage in ("stage3", "stage2"):
        if tf.train.latest_checkpoint(os.path.join(model_dir, stage, "checkpoints")):
            return stage
    return None


@dataclasses.dataclass(frozen=True)
class TrainedCheckpoints:
    """Where the newest trained weights of a train job are.

    Attributes:
      stage1_dir: the stage-1 directory; its `stage1.CONFIG_FILE` fixes the architecture.
      model: checkpoint prefix of the single-frame model's weights: stage 3's (fine-tuned)
        when stage 3 ran, else stage 1's latest.
      agent: checkpoint prefix of the newest attention Q-network (stage 3, else stage 2), or
        None when only stage 1 ran.
    """

    stage1_dir: str
    model: str
    agent: Optional[str]

    def restore_model(self, model):
        """Restores `model` (built by `stage1.build_model` of the stage-1 config) from
        `self.model`; the optimizer and agent in the checkpoint stay unread."""
        tf.train.Checkpoint(model=model).restore(self.model).expect_partial()


def trained_checkpoints(model_dir):
    """The `TrainedCheckpoints` of a train job directory, or of a stage-1 directory alone.

    Raises:
      FileNotFoundError: `model_dir` holds neither layout, or no checkpoint of the model.
    """
    stage1_dir = (model_dir if os.path.exists(os.path.join(model_dir, stage1.CONFIG_FILE))
                  else os.path.join(model_dir, STAGE1_DIR))
    if not os.path.exists(os.path.join(stage1_dir, stage1.CONFIG_FILE)):
        raise FileNotFoundError(
            f"{model_dir} is neither a train job directory (with {STAGE1_DIR}/"
            f"{stage1.CONFIG_FILE}) nor a stage-1 directory (with {stage1.CONFIG_FILE}); pass "
            "the train job's model directory.")
    stage = latest_stage(model_dir)
    agent = stage and tf.train.latest_checkpoint(os.path.join(model_dir, stage, "checkpoints"))
    model = agent if stage == "stage3" else tf.train.latest_checkpoint(
        os.path.join(stage1_dir, stage1.CHECKPOINT_DIR))
    if model is None:
        raise FileNotFoundError(
            f"No checkpoint in {os.path.join(stage1_dir, stage1.CHECKPOINT_DIR)}; run stage 1 "
            "(train_stage1) first.")
    return TrainedCheckpoints(stage1_dir, model, agent)


def restore_q_network(q_network, checkpoint):
    """Restores an `AttentionQNetwork` from a stage-2/3 agent checkpoint.

    Returns:
      The restore status (partial: target network, optimizer and replay buffer stay unread).
    """
    return tf.train.Checkpoint(agent=tf.train.Checkpoint(_q_network=q_network)).restore(
        checkpoint).expect_partial()


def load_patchwork(model_dir, write="bands", jit_compile=False):
    """The trained Patchwork model of a `train` run: the newest model weights and Q-network
    of `trained_checkpoints`."""
    checkpoints = trained_checkpoints(model_dir)
    patchwork = build_patchwork(model_dir, load_config(model_dir), write, jit_compile)
    checkpoints.restore_model(patchwork.model)
    if checkpoints.agent is not None:
        restore_q_network(patchwork.q_network, checkpoints.agent)
    return patchwork


@dataclasses.dataclass
class PatchworkSetting:
    """A `Patchwork` model with the environment and agent that train its attention."""

    patchwork: Patchwork
    env: environment_lib.VideoStreamEnvironment
    agent: object
    replay_buffer: object
    epsilon: object

    def __getattr__(self, name):
        return getattr(self.patchwork, name)


def build_setting(model_dir, config, learning_rate, train_step_offset=0):
    """Restores the stage-1 model of `model_dir` and builds twin, environment and agent.

    The environment observes the memory's window means (`pool_memory`), so the agent's specs
    and the replay buffer hold `pooled_memory` [num_actions, C] per step, not the memory.

    Args:
      model_dir: the Patchwork model directory (its `stage1/` holds the trained model).
      config: the `PatchworkConfig`.
      learning_rate: the Q-network's Adam learning rate.
      train_step_offset: train steps already taken before this stage (for epsilon).
    """
    patchwork = build_patchwork(model_dir, config)
    config = patchwork.config  # The observed cell resolved.
    clips = training_clips(patchwork.stage1_config.task, config,
                           patchwork.stage1_config.frame_size, config.num_train_clips,
                           config.clip_length, config.num_streams, config.seed,
                           patchwork.stage1_config.max_objects)
    env = environment_lib.VideoStreamEnvironment(
        patchwork.twin, clips, config.observed_cell, patchwork.task.reward_metric,
        patchwork.grid.num_actions, alpha=config.history_alpha, change_cue=config.change_cue,
        pool_memory=True, reward=config.reward)
    train_step = tf.Variable(0, dtype=tf.int64, trainable=False, name="train_step")
    epsilon = agent_lib.epsilon_schedule(
        train_step, config.epsilon_start, config.epsilon_end, config.epsilon_decay_steps,
        start_step=train_step_offset)
    agent = agent_lib.ddqn_agent(
        env.time_step_spec(), env.action_spec(), patchwork.q_network,
        learning_rate=learning_rate, gamma=config.gamma, epsilon_greedy=epsilon,
        target_update_period=config.target_update_period, train_step_counter=train_step)
    buffer = agent_lib.replay_buffer(agent.collect_data_spec, env.batch_size,
                                     config.replay_capacity)
    return PatchworkSetting(patchwork, env, agent, buffer, epsilon)


def progress_callback(target_steps, verbose):
    """A `tf_keras.utils.Progbar` over train steps, as an `on_train_step` callback."""
    if not verbose:
        return None
    bar = tf_keras.utils.Progbar(target_steps, stateful_metrics=["loss"])

    def update(step, loss):
        bar.update(step, values=[("loss", loss)])
    return update


def train_stage2(model_dir, config, verbose=1, **trainer_kwargs):
    """Stage 2: trains the attention network by DDQN on the frozen stage-1 model.

    Returns:
      dict(train_step, loss) of `policy.trainer.collect_and_train`.
    """
    config = store_config(model_dir, config)
    setting = build_setting(model_dir, config, config.learning_rate)
    setting.model.trainable = False
    root_dir = os.path.join(model_dir, "stage2")
    if not tf.train.latest_checkpoint(os.path.join(root_dir, "checkpoints")):
        imitation.warm_start(setting.env, setting.agent, config.imitation_steps,
                             sample_batch_size=config.sample_batch_size)
    return trainer.collect_and_train(
        root_dir, setting.env, setting.agent, setting.replay_buffer,
        config.stage2_steps, epsilon_fn=setting.epsilon,
        initial_collect_steps=config.initial_collect_steps,
        sample_batch_size=config.sample_batch_size,
        on_train_step=progress_callback(config.stage2_steps, verbose),
        **trainer_kwargs)
