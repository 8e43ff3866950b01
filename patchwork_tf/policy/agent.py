"""Double DQN for the attention network (paper Sec. 3.3, Eq. 4-5) and its replay buffer.

`Y_t = R_{t+1} + gamma * Q(S_{t+1}, argmax_a Q(S_{t+1}, a; Theta); Theta')`: the online
network picks the next action, the target network `Theta'` (a delayed copy) values it. This is
tf-agents' `DdqnAgent`; this module only fixes the pieces Patchwork needs (epsilon-greedy
collection on a schedule of the train step, target update period or Polyak tau, TD loss,
n-step returns that stop at a clip's end) and builds the matching `TFUniformReplayBuffer` and
its sampling dataset. An optional auxiliary loss joins the TD loss in every train step (ours:
DQfD's large-margin loss on demonstrations, `policy.imitation.demonstration_loss`).
"""
import tensorflow as tf
import tf_keras
from tf_agents.agents.dqn import dqn_agent
from tf_agents.replay_buffers import tf_uniform_replay_buffer
from tf_agents.trajectories import time_step as ts
from tf_agents.utils import common


def epsilon_schedule(train_step, start=1.0, end=0.05, decay_steps=10_000, start_step=0):
    """Linear epsilon decay for epsilon-greedy collection.

    Args:
      train_step: int64 scalar `tf.Variable`, the agent's train step counter.
      start: epsilon at train step 0.
      end: epsilon from `decay_steps` on.
      decay_steps: number of train steps over which epsilon falls linearly.
      start_step: the train step at which the decay starts (a later stage's first step).

    Returns:
      A callable with no arguments returning the current float32 epsilon, as `DdqnAgent`'s
      `epsilon_greedy` accepts.

    Raises:
      ValueError: epsilons outside [0, 1] or a non-positive `decay_steps`.
    """
    if not (0.0 <= end <= 1.0 and 0.0 <= start <= 1.0):
        raise ValueError(f"start and end must lie in [0, 1], got start={start}, end={end}.")
    if decay_steps <= 0:
        raise ValueError(f"decay_steps must be positive, got {decay_steps}.")
    decay = tf_keras.optimizers.schedules.PolynomialDecay(
        initial_learning_rate=start, decay_steps=decay_steps, end_learning_rate=end, power=1.0)
    return lambda: tf.cast(decay(tf.maximum(train_step - start_step, 0)), tf.float32)


class _DdqnAgentWithAuxiliaryLoss(dqn_agent.DdqnAgent):
    """`DdqnAgent` whose training loss is the TD loss plus `auxiliary_loss()`, a float32
    scalar of the online Q-network's variables, recomputed at every train step. The loss
    of `training=False` calls (evaluation) is the TD loss alone."""

    def __init__(self, *args, auxiliary_loss, **kwargs):
        super().__init__(*args, **kwargs)
        self._auxiliary_loss = auxiliary_loss

    def _loss(self, experience, td_errors_loss_fn=None, gamma=1.0, reward_scale_factor=1.0,
              weights=None, training=False):
        loss_info = super()._loss(experience, td_errors_loss_fn, gamma, reward_scale_factor,
                                  weights, training)
        if not training:
            return loss_info
        return loss_info._replace(loss=loss_info.loss + self._auxiliary_loss())


def ddqn_agent(time_step_spec,
               action_spec,
               q_network,
               learning_rate=1e-3,
               gamma=0.9,
               epsilon_greedy=0.1,
               target_update_period=100,
               target_update_tau=1.0,
               td_errors_loss_fn=common.element_wise_huber_loss,
               gradient_clipping=None,
               train_step_counter=None,
               auxiliary_loss=None,
               n_step_update=1):
    """A Double DQN agent for the attention network, initialised.

    Args:
      time_step_spec: the environment's `TimeStep` spec.
      action_spec: scalar integer `BoundedTensorSpec` of window indices.
      q_network: the online Q-network, e.g. an `AttentionQNetwork`; the agent makes the target
        network as `q_network.copy()`.
      learning_rate: Adam's learning rate (`alpha` of Eq. 4).
      gamma: the discount factor of Eq. 5.
      epsilon_greedy: collection epsilon, a float or a callable returning one (see
        `epsilon_schedule`).
      target_update_period: train steps between target updates `Theta' <- Theta`.
      target_update_tau: Polyak factor of each target update (1.0: a hard copy).
      td_errors_loss_fn: element-wise loss of the TD errors (Huber by default).
      gradient_clipping: global norm to clip gradients to, or None.
      train_step_counter: int64 scalar variable counting train steps; made if None.
      auxiliary_loss: None, or a callable with no arguments returning a float32 scalar
        that is added to the TD loss of every train step (its gradient flows into the
        online Q-network).
      n_step_update: n of the TD target `R_{t+1} + ... + gamma^{n-1} R_{t+n} + gamma^n
        Q(S_{t+n}, ...)`; 1 is Eq. 5. The agent trains on sequences of n + 1 steps
        (`agent.train_sequence_length`); train it with `train`, which drops the sequences
        that run past a clip's end.

    Returns:
      An initialised `DdqnAgent` (target network equal to the online network).
    """
    if train_step_counter is None:
        train_step_counter = tf.Variable(0, dtype=tf.int64, trainable=False, name="train_step")
    extra = {} if auxiliary_loss is None else {"auxiliary_loss": auxiliary_loss}
    agent = (dqn_agent.DdqnAgent if auxiliary_loss is None else _DdqnAgentWithAuxiliaryLoss)(
        time_step_spec,
        action_spec,
        q_network=q_network,
        optimizer=tf_keras.optimizers.Adam(learning_rate=learning_rate),
        epsilon_greedy=epsilon_greedy,
        target_update_period=target_update_period,
        target_update_tau=target_update_tau,
        td_errors_loss_fn=td_errors_loss_fn,
        gamma=gamma,
        gradient_clipping=gradient_clipping,
        train_step_counter=train_step_counter,
        n_step_update=n_step_update,
        **extra)
    agent.initialize()
    return agent


def within_clip_weights(experience):
    """Per-sequence weights of an n-step TD loss: 0 where the return would run past a clip.

    A clip's end is a truncation (`environment`: discount 1 at LAST), so a sequence with a
    LAST step after its first would add the next clip's rewards to the return and bootstrap
    from the next clip. tf-agents masks a LAST first step itself; this masks the others.

    Args:
      experience: a `Trajectory` batch [B, n + 1, ...].

    Returns:
      float32 [B]: 1 for sequences within one clip, 0 for the others (all 1 when n is 1).
    """
    inner = experience.step_type[:, 1:-1]
    return tf.cast(tf.reduce_all(tf.not_equal(inner, ts.StepType.LAST), axis=1), tf.float32)


def train(agent, experience):
    """One train step of `agent` on `experience` [B, n + 1, ...] (`replay_dataset` with
    `num_steps=agent.train_sequence_length`), sequences that span two clips weighted 0.

    Returns:
      tf-agents' `LossInfo`.
    """
    return agent.train(experience, weights=within_clip_weights(experience))


def td_loss(agent, experience, training=True):
    """The agent's TD loss (Eq. 4-5) on `experience` alone, without an auxiliary loss.

    Args:
      agent: a `DdqnAgent` from `ddqn_agent`.
      experience: a `Trajectory` batch [B, n + 1, ...] as `replay_dataset` samples it with
        `num_steps=agent.train_sequence_length`.
      training: run the Q-network in training mode.

    Returns:
      float32 scalar, the mean (Huber) TD loss of the batch, sequences that span two clips
      weighted 0 (`within_clip_weights`).
    """
    # pylint: disable=protected-access
    return dqn_agent.DqnAgent._loss(agent, experience, td_errors_loss_fn=agent._td_errors_loss_fn,
                                    gamma=agent._gamma, weights=within_clip_weights(experience),
                                    training=training).loss


def replay_buffer(data_spec, batch_size, max_length):
    """A uniform replay buffer for the agent's trajectories.

    Args:
      data_spec: the agent's `collect_data_spec`.
      batch_size: number of parallel streams adding to the buffer (the environment's B).
      max_length: capacity per stream, in steps.

    Returns:
      A `TFUniformReplayBuffer`.
    """
    return tf_uniform_replay_buffer.TFUniformReplayBuffer(
        data_spec=data_spec, batch_size=batch_size, max_length=max_length)


def replay_dataset(buffer, sample_batch_size, num_steps=2, num_parallel_calls=2):
    """Batches of adjacent steps sampled uniformly from the buffer, for `train`.

    Args:
      buffer: a `TFUniformReplayBuffer`.
      sample_batch_size: transitions per training batch.
      num_steps: adjacent steps per sample, the agent's `train_sequence_length` (2 for
        one-step TD targets).
      num_parallel_calls: parallel sampling calls.

    Returns:
      A `tf.data.Dataset` of `(Trajectory [sample_batch_size, num_steps, ...], BufferInfo)`.
    """
    return buffer.as_dataset(
        sample_batch_size=sample_batch_size, num_steps=num_steps,
        num_parallel_calls=num_parallel_calls).prefetch(2)
