"""Learning from demonstrations before Q-learning (ours; DQfD, Hester et al. 2018).

A demonstrator policy (the change rule, `baselines.ChangePolicy`) plays in the training
environment; its transitions fill a replay buffer of their own, and the DDQN agent's
Q-network is fit to them with DQfD's large-margin supervised loss

  J_E(Q) = max_a [Q(s, a) + l(a_E, a)] - Q(s, a_E),   l(a_E, a) = margin if a != a_E else 0,

which pushes the demonstrated window's Q-value at least `margin` above every other window's,
plus the agent's own one-step TD loss on the same transitions (weight `td_weight`), which keeps
the Q-values on the reward's scale. The target network is then set to the online network and
the normal DDQN continues (`trainer.collect_and_train`). The agent's train step counter is not
advanced, so epsilon schedules and step counts of the later stages are unchanged.

DQfD keeps the large-margin loss on its demonstrations while it Q-learns; so can we
(`demonstration_loss`, given to `agent.ddqn_agent(auxiliary_loss=...)`): every DDQN train step
of stages 2 and 3 then adds `weight` x J_E on a batch of the rule's demonstrations to the TD
loss on the agent's own transitions. The paper learns the attention by DDQN alone (Sec. 3.3):
no warm start (`num_steps=0`) and no demonstration loss.
"""
import tensorflow as tf
from absl import logging
from tf_agents.drivers import dynamic_step_driver
from tf_agents.trajectories import trajectory
from tf_agents.utils import common

from patchwork_tf.policy import agent as agent_lib
from patchwork_tf.policy import baselines
from patchwork_tf.policy import choosers

MARGIN = 0.8  # DQfD's margin l(a_E, a) for a != a_E (Hester et al. 2018, Sec. 3).
DEMONSTRATION_STEPS = 512  # The rule's steps per training stream.


def large_margin_loss(q_values, expert_actions, margin=MARGIN):
    """DQfD's supervised loss per transition.

    Args:
      q_values: float32 [B, num_actions], Q(s, .).
      expert_actions: integer [B], the demonstrated action a_E.
      margin: l(a_E, a) for every a != a_E.

    Returns:
      float32 [B] >= 0: `max_a [Q(s, a) + l(a_E, a)] - Q(s, a_E)`, 0 exactly when Q(s, a_E)
      beats every other action's Q-value by at least `margin`.
    """
    expert_actions = tf.cast(expert_actions, tf.int32)
    num_actions = tf.shape(q_values)[-1]
    margins = margin * (1.0 - tf.one_hot(expert_actions, num_actions, dtype=q_values.dtype))
    expert_q = tf.gather(q_values, expert_actions, batch_dims=1)
    return tf.reduce_max(q_values + margins, axis=-1) - expert_q


def collect_demonstrations(env, policy, steps_per_stream, use_tf_function=True):
    """A replay buffer filled with `steps_per_stream` steps of every stream under `policy`.

    Args:
      env: the batched training environment (`VideoStreamEnvironment`).
      policy: the demonstrator, a `TFPolicy` over the env's specs with no policy info
        (e.g. `baselines.ChangePolicy`), so its trajectories match a DQN agent's
        `collect_data_spec`.
      steps_per_stream: environment steps per stream (the buffer's capacity).
      use_tf_function: compile the collection.

    Returns:
      A `TFUniformReplayBuffer` holding the demonstrations.
    """
    if steps_per_stream < 2:
        raise ValueError(f"steps_per_stream must be >= 2 (a transition spans two steps), got "
                         f"{steps_per_stream}.")
    data_spec = trajectory.from_transition(
        env.time_step_spec(), policy.policy_step_spec, env.time_step_spec())
    buffer = agent_lib.replay_buffer(data_spec, env.batch_size, steps_per_stream)
    run = dynamic_step_driver.DynamicStepDriver(
        env, policy, observers=[buffer.add_batch],
        num_steps=steps_per_stream * env.batch_size).run
    (common.function(run) if use_tf_function else run)()
    return buffer


def rule_demonstrations(env, steps_per_stream=DEMONSTRATION_STEPS, use_tf_function=True):
    """`collect_demonstrations` of the change rule (`baselines.ChangePolicy`) in `env`.

    Raises:
      ValueError: an environment without the change cue the rule reads.
    """
    rule = baselines.ChangePolicy(env.time_step_spec(), env.action_spec())
    return collect_demonstrations(env, rule, steps_per_stream, use_tf_function)


def _margin_terms(q_network, batch, margin):
    """(mean large-margin loss, agreement, Q-values) of a demonstration batch [B, 2, ...];
    boundary transitions (a clip's last frame -> the next clip; no used action) are left out."""
    first = tf.nest.map_structure(lambda t: t[:, 0], batch.observation)
    used = tf.cast(~batch.is_boundary()[:, 0], tf.float32)
    count = tf.maximum(tf.reduce_sum(used), 1.0)
    q_values, _ = q_network(first, training=True)
    expert_actions = tf.cast(batch.action[:, 0], tf.int32)
    margin_loss = tf.reduce_sum(used * large_margin_loss(q_values, expert_actions, margin)) / count
    agrees = tf.cast(tf.equal(choosers.greedy_actions(q_values), expert_actions), tf.float32)
    return margin_loss, tf.reduce_sum(used * agrees) / count


def demonstration_loss(q_network, demonstrations, weight, sample_batch_size=64, margin=MARGIN):
    """DQfD's large-margin loss on demonstrations, as `agent.ddqn_agent`'s `auxiliary_loss`.

    Args:
      q_network: the agent's online Q-network.
      demonstrations: a replay buffer of the demonstrator's trajectories
        (`rule_demonstrations`).
      weight: lambda_E, the weight of the margin loss against the TD loss.
      sample_batch_size: demonstrated transitions per call.
      margin: the large margin (`large_margin_loss`).

    Returns:
      A callable with no arguments: `weight` x the mean large-margin loss of a fresh batch of
      demonstrations (float32 scalar).
    """
    if weight <= 0:
        raise ValueError(f"The demonstration loss needs a weight > 0, got {weight}.")
    experience = iter(agent_lib.replay_dataset(demonstrations, sample_batch_size))

    def loss():
        batch, _ = next(experience)
        return weight * _margin_terms(q_network, batch, margin)[0]
    return loss


def pretrain(agent, demonstrations, num_steps, sample_batch_size=64, margin=MARGIN,
             td_weight=1.0, use_tf_function=True):
    """Fits the agent's Q-network to demonstrations, then copies it into the target network.

    Args:
      agent: a `DdqnAgent` (or `DqnAgent`) from `agent.ddqn_agent`; its optimizer is used.
      demonstrations: a replay buffer of the demonstrator's trajectories
        (`collect_demonstrations`).
      num_steps: gradient steps; 0 leaves the agent as it is.
      sample_batch_size: transitions per step.
      margin: the large margin (`large_margin_loss`).
      td_weight: weight of the agent's TD loss on the same transitions (0: margin loss only).
      use_tf_function: compile the train step.

    Returns:
      dict(margin_loss, td_loss, agreement) of the last step (floats; agreement: share of the
      batch's transitions on which argmax Q is the demonstrated action), or None when
      `num_steps` is 0.
    """
    if num_steps < 0 or sample_batch_size <= 0:
        raise ValueError(f"Need num_steps >= 0 and sample_batch_size > 0, got {num_steps}, "
                         f"{sample_batch_size}.")
    if num_steps == 0:
        return None
    # pylint: disable=protected-access
    q_network, target_network = agent._q_network, agent._target_q_network
    variables = q_network.trainable_variables
    experience = iter(agent_lib.replay_dataset(demonstrations, sample_batch_size,
                                               num_steps=agent.train_sequence_length))

    def step():
        batch, _ = next(experience)
        with tf.GradientTape() as tape:
            margin_loss, agreement = _margin_terms(q_network, batch, margin)
            td_loss = agent_lib.td_loss(agent, batch)
            loss = margin_loss + td_weight * td_loss
        gradients = tape.gradient(loss, variables)
        agent._optimizer.apply_gradients(zip(gradients, variables))
        return margin_loss, td_loss, agreement

    step = common.function(step) if use_tf_function else step
    for _ in range(num_steps):
        margin_loss, td_loss, agreement = step()
    common.soft_variables_update(q_network.variables, target_network.variables, tau=1.0)
    return {"margin_loss": float(margin_loss), "td_loss": float(td_loss),
            "agreement": float(agreement)}


def warm_start(env, agent, num_steps, steps_per_stream=DEMONSTRATION_STEPS,
               sample_batch_size=64, use_tf_function=True, demonstrations=None):
    """`num_steps` of `pretrain` on the change rule's demonstrations; nothing when
    `num_steps` is 0.

    Args:
      env: the batched training environment; the rule plays `steps_per_stream` steps of
        every stream in it unless `demonstrations` are given.
      agent: the DDQN agent.
      num_steps: `pretrain`'s gradient steps.
      steps_per_stream, sample_batch_size, use_tf_function: as for `rule_demonstrations` and
        `pretrain`.
      demonstrations: the rule's demonstrations already collected (`rule_demonstrations`),
        or None.

    Returns:
      `pretrain`'s dict, or None when `num_steps` is 0.

    Raises:
      ValueError: an environment without the change cue the rule reads.
    """
    if num_steps == 0:
        return None
    if demonstrations is None:
        demonstrations = rule_demonstrations(env, steps_per_stream, use_tf_function)
    result = pretrain(agent, demonstrations, num_steps, sample_batch_size,
                      use_tf_function=use_tf_function)
    logging.info("Imitation of the change rule, %d steps on %d transitions: margin loss %.4f, "
                 "TD loss %.4f, agreement %.3f.", num_steps, int(demonstrations.num_frames()),
                 result["margin_loss"], result["td_loss"], result["agreement"])
    return result
