"""Stage 2 (Sec. 3.4): the stage-1 model placed in the Patchwork setting, attention trained.

The stage-1 model's weights are frozen; its Patchwork twin streams batches of clips through a
`VideoStreamEnvironment`, and tf-agents' `DdqnAgent` trains the `AttentionQNetwork` on the
Eq. 2 reward (Sec. 3.3); ours optionally learns from the change rule's demonstrations first
(`imitation_steps`) and keeps DQfD's margin loss on them (`demonstration_weight`,
`policy.imitation`), or fits the Q-network to every window's reward first
(`counterfactual_steps`, `policy.counterfactual`). Everything resumes from
`tf.train.CheckpointManager` checkpoints in `model_dir`.

Layout of a Patchwork model directory (`model_dir`):
  stage1/                 the single-frame model (`stage1.train_stage1`)
  patchwork_config.json   the `AttentionConfig` and `FinetuneConfig` of stages 2 and 3
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

import tensorflow as tf
import tf_keras

from patchwork_tf import runs
from patchwork_tf import tasks
from patchwork_tf.core import grid as grid_lib
from patchwork_tf.core import twin as twin_lib
from patchwork_tf.policy import agent as agent_lib
from patchwork_tf.policy import counterfactual
from patchwork_tf.policy import environment as environment_lib
from patchwork_tf.policy import imitation
from patchwork_tf.policy import observation as observation_lib
from patchwork_tf.policy import q_network as q_network_lib
from patchwork_tf.policy import trainer
from patchwork_tf.training import configs
from patchwork_tf.training import run_config
from patchwork_tf.training import stage1

# Step counts may grow between runs: a resumed run then trains on to the new count. Data copies
# may move.
_EXTENSIBLE_FIELDS = ("stage2_steps", configs.FINETUNE_PREFIX + "steps") + stage1.DATA_PATHS


def store_config(model_dir, config, finetune=None):
    """Writes the `AttentionConfig` `config` and the `FinetuneConfig` `finetune` to
    `model_dir` (`runs.PATCHWORK_CONFIG_FILE`), or checks them against the stored ones but
    for the step counts (a resume). `finetune` None keeps the stored one (the defaults when
    none is stored).

    Returns:
      (attention, finetune) as stored, the observed cell resolved.
    """
    config = configs.with_observed_cell(
        config, stage1.load_config(os.path.join(model_dir, runs.STAGE1_DIR)))
    if finetune is None:
        stored = os.path.exists(os.path.join(model_dir, runs.PATCHWORK_CONFIG_FILE))
        finetune = (runs.load_patchwork_configs(model_dir)[1] if stored
                    else configs.FinetuneConfig())
    configs.check_steps(config, finetune)
    run_config.store(model_dir, runs.PATCHWORK_CONFIG_FILE, configs.to_json(config, finetune),
                     extensible=_EXTENSIBLE_FIELDS,
                     load_stored=lambda d: configs.to_json(*runs.load_patchwork_configs(d)))
    return config, finetune


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
    config: configs.AttentionConfig
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

    The Q-network is freshly initialised (seeded); `runs.TrainedRun` restores a trained one.
    """
    model, stage1_config, _ = stage1.restore_model(os.path.join(model_dir, runs.STAGE1_DIR))
    if config.data != stage1_config.data:
        raise ValueError(
            f"the Patchwork config reads data source {config.data!r}, but the stage-1 model of "
            f"{model_dir!r} was trained on {stage1_config.data!r}; use the same source.")
    config = configs.with_observed_cell(config, stage1_config)
    grid = grid_lib.WindowGrid(stage1_config.frame_size, config.m, config.n)
    twin = twin_lib.patchwork_model(model, grid, jit_compile=jit_compile, write=write,
                                    full_memory_cells=[config.observed_cell])
    task = tasks.get(stage1_config.task).for_model(model, stage1_config)
    tf_keras.utils.set_random_seed(config.seed)
    q_network = q_network_lib.for_twin(twin, config.observed_cell, config.change_cue,
                                       config.q_network)
    return Patchwork(model, stage1_config, config, grid, twin, task, q_network)


@dataclasses.dataclass
class PatchworkSetting:
    """A `Patchwork` model with the environment and agent that train its attention."""

    patchwork: Patchwork
    env: environment_lib.VideoStreamEnvironment
    agent: object
    replay_buffer: object
    epsilon: object
    demonstrations: object = None


def build_setting(model_dir, config, learning_rate, train_step_offset=0,
                  demonstrations=False):
    """Restores the stage-1 model of `model_dir` and builds twin, environment and agent.

    The environment observes the memory's window means (`pool_memory`), so the agent's specs
    and the replay buffer hold `pooled_memory` [num_actions, C] per step, not the memory.

    Args:
      model_dir: the Patchwork model directory (its `stage1/` holds the trained model).
      config: the `configs.AttentionConfig`.
      learning_rate: the Q-network's Adam learning rate.
      train_step_offset: train steps already taken before this stage (for epsilon).
      demonstrations: let the change rule play in the environment first
        (`imitation.rule_demonstrations`, kept as the setting's `demonstrations`); always
        done when `config.demonstration_weight` > 0, whose loss reads them.
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
    demonstrations = (imitation.rule_demonstrations(env)
                      if demonstrations or config.demonstration_weight else None)
    auxiliary_loss = (imitation.demonstration_loss(
        patchwork.q_network, demonstrations, config.demonstration_weight,
        config.sample_batch_size) if config.demonstration_weight else None)
    train_step = tf.Variable(0, dtype=tf.int64, trainable=False, name="train_step")
    epsilon = agent_lib.epsilon_schedule(
        train_step, config.epsilon_start, config.epsilon_end, config.epsilon_decay_steps,
        start_step=train_step_offset)
    agent = agent_lib.ddqn_agent(
        env.time_step_spec(), env.action_spec(), patchwork.q_network,
        learning_rate=learning_rate, gamma=config.gamma, epsilon_greedy=epsilon,
        target_update_period=config.target_update_period, train_step_counter=train_step,
        auxiliary_loss=auxiliary_loss, n_step_update=config.n_step)
    buffer = agent_lib.replay_buffer(agent.collect_data_spec, env.batch_size,
                                     config.replay_capacity)
    return PatchworkSetting(patchwork, env, agent, buffer, epsilon, demonstrations)


def progress_callback(target_steps, verbose):
    """A `tf_keras.utils.Progbar` over train steps, as an `on_train_step` callback."""
    if not verbose:
        return None
    bar = tf_keras.utils.Progbar(target_steps, stateful_metrics=["loss"])

    def update(step, loss):
        bar.update(step, values=[("loss", loss)])
    return update


def train_stage2(model_dir, config, finetune=None, verbose=1, **trainer_kwargs):
    """Stage 2: trains the attention network by DDQN on the frozen stage-1 model.

    Args:
      model_dir: the run's directory (`runs`), its stage 1 trained.
      config: the `configs.AttentionConfig`.
      finetune: the `configs.FinetuneConfig` stored with it for stage 3; None keeps the
        stored one (`store_config`).
      verbose: 1 for a progress bar.
      **trainer_kwargs: for `policy.trainer.collect_and_train`.

    Returns:
      dict(train_step, loss) of `policy.trainer.collect_and_train`.
    """
    config, _ = store_config(model_dir, config, finetune)
    root_dir = os.path.join(model_dir, "stage2")
    fresh = not tf.train.latest_checkpoint(os.path.join(root_dir, "checkpoints"))
    warm_start = config.imitation_steps > 0 and fresh
    setting = build_setting(model_dir, config, config.learning_rate,
                            demonstrations=warm_start)
    setting.patchwork.model.trainable = False
    if warm_start:
        imitation.warm_start(setting.env, setting.agent, config.imitation_steps,
                             sample_batch_size=config.sample_batch_size,
                             demonstrations=setting.demonstrations)
    if config.counterfactual_steps > 0 and fresh:
        patchwork = setting.patchwork
        counterfactual.warm_start(
            patchwork, setting.agent,
            training_clips(patchwork.stage1_config.task, config,
                           patchwork.stage1_config.frame_size, config.num_train_clips,
                           config.clip_length, config.num_streams, config.seed,
                           patchwork.stage1_config.max_objects),
            config.counterfactual_steps, config.counterfactual_rounds,
            sample_batch_size=config.sample_batch_size)
    return trainer.collect_and_train(
        root_dir, setting.env, setting.agent, setting.replay_buffer,
        config.stage2_steps, epsilon_fn=setting.epsilon,
        initial_collect_steps=config.initial_collect_steps,
        sample_batch_size=config.sample_batch_size,
        on_train_step=progress_callback(config.stage2_steps, verbose),
        **trainer_kwargs)
