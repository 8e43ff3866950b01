"""Stage 2 of the paper's training (Sec. 3.4): the attention network learned by DDQN.

The Patchwork model is fixed; epsilon-greedy collection in the video stream environment fills
a replay buffer and Double DQN train steps (Eq. 4-5) fit the Q-network. The agent (its
networks, optimizer and train step) is saved with `tf.train.CheckpointManager`, and the replay
buffer only when asked (`checkpoint_replay_buffer`): it would make each checkpoint as large as
the buffer's capacity. A run resumed without it refills the empty buffer with
`initial_collect_steps` random steps per stream before it trains on. TensorBoard scalars
record loss, reward, mean Q and epsilon, and a histogram the windows chosen.
"""
import os

import tensorflow as tf
from absl import logging
from tf_agents.drivers import dynamic_step_driver
from tf_agents.policies import random_tf_policy
from tf_agents.utils import common

from patchwork_tf.policy import agent as agent_lib


class _CollectStats(tf.Module):
    """Observer: reward sum, step count and chosen actions of the transitions since `reset`."""

    def __init__(self, num_actions):
        super().__init__(name="collect_stats")
        self.reward_sum = tf.Variable(0.0, trainable=False)
        self.steps = tf.Variable(0.0, trainable=False)
        self.action_counts = tf.Variable(tf.zeros([num_actions]), trainable=False)

    def __call__(self, trajectory):
        # A boundary transition (LAST -> FIRST) only starts the next clip; its action is unused.
        used = tf.cast(~trajectory.is_boundary(), tf.float32)
        self.reward_sum.assign_add(tf.reduce_sum(used * trajectory.reward))
        self.steps.assign_add(tf.reduce_sum(used))
        self.action_counts.assign_add(tf.reduce_sum(
            used[:, None] * tf.one_hot(trajectory.action, self.action_counts.shape[0]), axis=0))

    def reset(self):
        for variable in (self.reward_sum, self.steps, self.action_counts):
            variable.assign(tf.zeros_like(variable))


def collect_and_train(root_dir,
                      env,
                      agent,
                      replay_buffer,
                      num_train_steps,
                      epsilon_fn=None,
                      initial_collect_steps=100,
                      collect_steps_per_train_step=1,
                      sample_batch_size=32,
                      checkpoint_interval=1000,
                      summary_interval=100,
                      max_checkpoints=3,
                      use_tf_function=True,
                      extra_trackables=None,
                      on_train_step=None,
                      checkpoint_replay_buffer=False):
    """Runs DDQN on the environment until the agent's train step reaches `num_train_steps`.

    Resumes from the newest checkpoint under `root_dir/checkpoints` if there is one. The
    replay buffer resumes with it when it was saved there (`checkpoint_replay_buffer`);
    otherwise it starts empty and the initial random collection runs again.

    Args:
      root_dir: folder for `checkpoints/` and `summaries/` (TensorBoard).
      env: a `VideoStreamEnvironment` (any batched `TFEnvironment`).
      agent: a `DdqnAgent` from `agent.ddqn_agent` for the env's specs.
      replay_buffer: a `TFUniformReplayBuffer` for `agent.collect_data_spec` and the env's
        batch size.
      num_train_steps: the train step to stop at (absolute, so a resumed run continues).
      epsilon_fn: the callable given to the agent as `epsilon_greedy`, to log epsilon; or None.
      initial_collect_steps: environment steps of each stream taken by a random policy into
        an empty buffer before training.
      collect_steps_per_train_step: environment steps of each stream before each train step.
      sample_batch_size: transitions per train step.
      checkpoint_interval: train steps between checkpoints (one is also saved at the end).
      summary_interval: train steps between summaries.
      max_checkpoints: checkpoints kept.
      use_tf_function: compile collection and training into graphs (off: eager, for debugging).
      extra_trackables: dict of more objects for the checkpoint (stage 3 adds the fine-tuned
        model and its optimizer), restored and saved with the agent.
      on_train_step: callable `(train_step, loss)` run after each train step, e.g. a progress
        bar or stage 3's supervised fine-tuning step.
      checkpoint_replay_buffer: save (and restore) the replay buffer's contents with the
        checkpoints. Off, checkpoints hold no buffer, so their size does not grow with
        `replay_buffer`'s capacity, and a resumed run refills the buffer with
        `initial_collect_steps` random steps per stream (a buffer saved by an earlier run is
        left unread).

    Returns:
      dict(train_step=int, loss=float of the last train step or None when no step ran).
    """
    if num_train_steps < 0 or sample_batch_size <= 0 or collect_steps_per_train_step <= 0:
        raise ValueError(
            f"Need num_train_steps >= 0, sample_batch_size > 0 and collect_steps_per_train_step "
            f"> 0, got {num_train_steps}, {sample_batch_size}, {collect_steps_per_train_step}.")
    train_step = agent.train_step_counter
    trackables = dict(agent=agent, **(extra_trackables or {}))
    if checkpoint_replay_buffer:
        trackables["replay_buffer"] = replay_buffer
    checkpoint = tf.train.Checkpoint(**trackables)
    manager = tf.train.CheckpointManager(
        checkpoint, os.path.join(root_dir, "checkpoints"), max_to_keep=max_checkpoints,
        step_counter=train_step, checkpoint_interval=checkpoint_interval)
    restored = manager.restore_or_initialize()
    saved_step = None
    if restored:
        saved_step = int(train_step.numpy())
        logging.info("Resumed from %s at train step %d.", restored, saved_step)

    action_spec = env.action_spec()
    stats = _CollectStats(int(action_spec.maximum) - int(action_spec.minimum) + 1)
    wrap = common.function if use_tf_function else (lambda f: f)
    collect = wrap(dynamic_step_driver.DynamicStepDriver(
        env, agent.collect_policy, observers=[replay_buffer.add_batch, stats],
        num_steps=collect_steps_per_train_step * env.batch_size).run)
    if int(replay_buffer.num_frames()) == 0 and initial_collect_steps > 0:
        random_policy = random_tf_policy.RandomTFPolicy(env.time_step_spec(), action_spec)
        wrap(dynamic_step_driver.DynamicStepDriver(
            env, random_policy, observers=[replay_buffer.add_batch],
            num_steps=initial_collect_steps * env.batch_size).run)()

    experience = iter(agent_lib.replay_dataset(replay_buffer, sample_batch_size,
                                               num_steps=agent.train_sequence_length))
    q_network = agent._q_network  # pylint: disable=protected-access

    def train_once():
        batch, _ = next(experience)
        loss = agent_lib.train(agent, batch).loss
        q_values, _ = q_network(tf.nest.map_structure(lambda t: t[:, 0], batch.observation))
        return loss, tf.reduce_mean(tf.reduce_max(q_values, axis=-1))

    train_once = wrap(train_once)
    writer = tf.summary.create_file_writer(os.path.join(root_dir, "summaries"))
    time_step = env.current_time_step()
    loss = None
    with writer.as_default():
        while int(train_step.numpy()) < num_train_steps:
            time_step, _ = collect(time_step=time_step)
            loss, mean_q = train_once()
            step = int(train_step.numpy())
            if on_train_step is not None:
                on_train_step(step, float(loss))
            if step % summary_interval == 0:
                steps = tf.maximum(stats.steps, 1.0)
                tf.summary.scalar("loss", loss, step=step)
                tf.summary.scalar("mean_q", mean_q, step=step)
                tf.summary.scalar("reward", stats.reward_sum / steps, step=step)
                if epsilon_fn is not None:
                    tf.summary.scalar("epsilon", epsilon_fn(), step=step)
                tf.summary.histogram(
                    "actions", tf.repeat(tf.range(stats.action_counts.shape[0]),
                                         tf.cast(stats.action_counts, tf.int32)), step=step)
                logging.info("train step %d: loss %.4f, reward %.4f, mean Q %.4f", step,
                             float(loss), float(stats.reward_sum / steps), float(mean_q))
                stats.reset()
            if manager.save(checkpoint_number=step) is not None:
                saved_step = step
    if saved_step != int(train_step.numpy()):
        manager.save(checkpoint_number=int(train_step.numpy()), check_interval=False)
    writer.flush()
    return {"train_step": int(train_step.numpy()),
            "loss": None if loss is None else float(loss)}
