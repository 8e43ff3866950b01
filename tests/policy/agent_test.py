"""Tests for the DDQN agent, its target network updates and the replay buffer."""
import numpy as np
import pytest
import tensorflow as tf
import tf_keras
from tf_agents.specs import tensor_spec
from tf_agents.trajectories import time_step as ts
from tf_agents.trajectories import trajectory

from patchwork_tf.policy import agent as agent_lib
from patchwork_tf.policy import q_network

_NUM_ACTIONS = 4
_WINDOWS = [(i, j, 2, 2) for i in (0, 2) for j in (0, 2)]
_ACTION_SPEC = tensor_spec.BoundedTensorSpec((), tf.int32, 0, _NUM_ACTIONS - 1)
_OBS_SPEC = q_network.observation_spec((4, 4, 2), _NUM_ACTIONS)
_TIME_STEP_SPEC = ts.time_step_spec(_OBS_SPEC)


def _agent(period, seed=0):
    tf_keras.utils.set_random_seed(seed)
    net = q_network.AttentionQNetwork(_OBS_SPEC, _ACTION_SPEC, _WINDOWS, projection_units=4,
                                      fc_layer_params=(8,))
    return agent_lib.ddqn_agent(_TIME_STEP_SPEC, _ACTION_SPEC, net, learning_rate=1e-2,
                                gamma=0.9, target_update_period=period)


def _fill(buffer, batch, steps, seed=0):
    rng = np.random.default_rng(seed)
    for t in range(steps):
        step_type = ts.StepType.FIRST if t == 0 else (
            ts.StepType.LAST if t == steps - 1 else ts.StepType.MID)
        next_type = ts.StepType.FIRST if t == steps - 1 else (
            ts.StepType.LAST if t == steps - 2 else ts.StepType.MID)
        obs = {"memory": tf.constant(rng.normal(size=(batch, 4, 4, 2)), tf.float32),
               "history": tf.constant(rng.uniform(size=(batch, _NUM_ACTIONS)), tf.float32)}
        buffer.add_batch(trajectory.Trajectory(
            step_type=tf.fill([batch], step_type), observation=obs,
            action=tf.constant(rng.integers(0, _NUM_ACTIONS, batch), tf.int32),
            policy_info=(), next_step_type=tf.fill([batch], next_type),
            reward=tf.constant(rng.uniform(size=batch), tf.float32),
            discount=tf.ones([batch])))


def _weights(network):
    return [v.numpy().copy() for v in network.variables]


def _equal(a, b):
    return all(np.array_equal(x, y) for x, y in zip(a, b))


def test_train_changes_weights_and_target_moves_at_period():
    period = 3
    agent = _agent(period)
    buffer = agent_lib.replay_buffer(agent.collect_data_spec, batch_size=2, max_length=32)
    _fill(buffer, batch=2, steps=10)
    experience = iter(agent_lib.replay_dataset(buffer, sample_batch_size=8))
    online, target = agent._q_network, agent._target_q_network
    assert _equal(_weights(online), _weights(target))
    last_copy = _weights(online)
    train = agent.train
    for step in range(1, 2 * period + 2):
        before = _weights(online)
        loss = train(next(experience)[0]).loss
        assert np.isfinite(loss.numpy())
        after = _weights(online)
        assert not _equal(before, after), f"train step {step} left Q unchanged"
        if step % period == 0:
            last_copy = after
        assert _equal(_weights(target), last_copy), f"target wrong after train step {step}"
        assert (step % period == 0) == _equal(_weights(target), after)
    assert int(agent.train_step_counter.numpy()) == 2 * period + 1


def test_soft_target_update_with_tau():
    tf_keras.utils.set_random_seed(0)
    net = q_network.AttentionQNetwork(_OBS_SPEC, _ACTION_SPEC, _WINDOWS)
    agent = agent_lib.ddqn_agent(_TIME_STEP_SPEC, _ACTION_SPEC, net, target_update_period=1,
                                 target_update_tau=0.25)
    buffer = agent_lib.replay_buffer(agent.collect_data_spec, batch_size=2, max_length=32)
    _fill(buffer, batch=2, steps=6)
    target_before = _weights(agent._target_q_network)
    agent.train(next(iter(agent_lib.replay_dataset(buffer, 4)))[0])
    want = [0.75 * t + 0.25 * o for t, o in zip(target_before, _weights(net))]
    for got, expected in zip(_weights(agent._target_q_network), want):
        np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)


def test_epsilon_schedule_follows_train_step():
    step = tf.Variable(0, dtype=tf.int64)
    epsilon = agent_lib.epsilon_schedule(step, start=1.0, end=0.1, decay_steps=10)
    np.testing.assert_allclose(epsilon(), 1.0, rtol=1e-6, atol=1e-6)
    step.assign(5)
    np.testing.assert_allclose(epsilon(), 0.55, rtol=1e-6, atol=1e-6)
    step.assign(100)
    np.testing.assert_allclose(epsilon(), 0.1, rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="decay_steps"):
        agent_lib.epsilon_schedule(step, decay_steps=0)


def test_collect_policy_is_epsilon_greedy_on_schedule():
    tf_keras.utils.set_random_seed(0)
    net = q_network.AttentionQNetwork(_OBS_SPEC, _ACTION_SPEC, _WINDOWS)
    counter = tf.Variable(0, dtype=tf.int64)
    agent = agent_lib.ddqn_agent(
        _TIME_STEP_SPEC, _ACTION_SPEC, net, train_step_counter=counter,
        epsilon_greedy=agent_lib.epsilon_schedule(counter, 1.0, 0.0, decay_steps=10))
    obs = {"memory": tf.random.stateless_normal([64, 4, 4, 2], seed=[0, 0]),
           "history": tf.zeros([64, _NUM_ACTIONS])}
    time_step = ts.restart(obs, batch_size=64)
    greedy = agent.policy.action(time_step).action.numpy()
    counter.assign(10)
    np.testing.assert_array_equal(agent.collect_policy.action(time_step).action, greedy)
    counter.assign(0)
    explored = np.concatenate([agent.collect_policy.action(time_step).action.numpy()
                               for _ in range(4)])
    assert np.unique(explored).tolist() == list(range(_NUM_ACTIONS))


def _sequences(step_types, rewards, seed=0):
    """A Trajectory batch [B, T] with the given step types and rewards, random observations
    and actions, discount 1 (clips end by truncation, as the environment's do)."""
    rng = np.random.default_rng(seed)
    step_type = tf.constant(step_types, tf.int32)
    batch, steps = step_type.shape
    obs = {"memory": tf.constant(rng.normal(size=(batch, steps, 4, 4, 2)), tf.float32),
           "history": tf.constant(rng.uniform(size=(batch, steps, _NUM_ACTIONS)), tf.float32)}
    next_type = tf.concat([step_type[:, 1:], tf.fill([batch, 1], ts.StepType.MID)], axis=1)
    return trajectory.Trajectory(
        step_type=step_type, observation=obs,
        action=tf.constant(rng.integers(0, _NUM_ACTIONS, (batch, steps)), tf.int32),
        policy_info=(), next_step_type=next_type,
        reward=tf.constant(rewards, tf.float32), discount=tf.ones([batch, steps]))


F, M, L = ts.StepType.FIRST, ts.StepType.MID, ts.StepType.LAST


def test_within_clip_weights_drop_sequences_past_a_clips_end():
    # Three-step returns: four steps. A LAST inside the sequence (after its first step) means
    # the return would run into the next clip; a LAST first or last step does not.
    experience = _sequences([[F, M, M, M], [M, L, F, M], [M, M, L, F], [L, F, M, M],
                             [M, M, M, L]], np.zeros((5, 4)))
    np.testing.assert_array_equal(agent_lib.within_clip_weights(experience), [1, 0, 0, 1, 1])
    one_step = _sequences([[M, L], [L, F]], np.zeros((2, 2)))
    np.testing.assert_array_equal(agent_lib.within_clip_weights(one_step), [1, 1])


def test_n_step_td_loss_against_a_hand_computed_target():
    gamma, n = 0.9, 3
    tf_keras.utils.set_random_seed(0)
    net = q_network.AttentionQNetwork(_OBS_SPEC, _ACTION_SPEC, _WINDOWS, projection_units=4,
                                      fc_layer_params=(8,))
    agent = agent_lib.ddqn_agent(_TIME_STEP_SPEC, _ACTION_SPEC, net, gamma=gamma,
                                 n_step_update=n)
    assert agent.train_sequence_length == n + 1
    # Make the target network differ from the online one, so Double DQN's split shows.
    for variable in agent._target_q_network.variables:
        variable.assign(variable * 0.5 + 0.1)
    rewards = np.array([[0.5, 0.0, 1.0, 7.0], [0.2, 0.3, 0.4, 9.0], [1.0, 1.0, 1.0, 1.0],
                        [0.0, 2.0, 0.0, 3.0]])
    experience = _sequences([[F, M, M, M], [M, M, M, L], [M, L, F, M], [L, F, M, M]], rewards)
    first = tf.nest.map_structure(lambda t: t[:, 0], experience.observation)
    last = tf.nest.map_structure(lambda t: t[:, n], experience.observation)
    q_first = net(first)[0].numpy()
    online_last = net(last)[0].numpy()
    target_last = agent._target_q_network(last)[0].numpy()
    expected = []
    for b in range(4):
        greedy = np.argmax(online_last[b])
        target = sum(gamma ** k * rewards[b, k] for k in range(n)) + gamma ** n * target_last[
            b, greedy]
        error = abs(target - q_first[b, int(experience.action[b, 0])])
        huber = 0.5 * error ** 2 if error <= 1 else error - 0.5
        # Sequence 2 runs past its clip's end (within_clip_weights), sequence 3 starts at a
        # clip's LAST step (tf-agents' own mask): both weigh 0.
        expected.append(huber if b < 2 else 0.0)
    np.testing.assert_allclose(agent_lib.td_loss(agent, experience, training=False),
                               np.mean(expected), rtol=1e-5)


def test_n_step_agent_trains_on_sampled_sequences():
    tf_keras.utils.set_random_seed(0)
    net = q_network.AttentionQNetwork(_OBS_SPEC, _ACTION_SPEC, _WINDOWS)
    agent = agent_lib.ddqn_agent(_TIME_STEP_SPEC, _ACTION_SPEC, net, n_step_update=3)
    buffer = agent_lib.replay_buffer(agent.collect_data_spec, batch_size=2, max_length=32)
    _fill(buffer, batch=2, steps=10)
    batch, _ = next(iter(agent_lib.replay_dataset(
        buffer, 8, num_steps=agent.train_sequence_length)))
    assert batch.reward.shape == (8, 4)
    before = _weights(net)
    assert np.isfinite(agent_lib.train(agent, batch).loss.numpy())
    assert not _equal(before, _weights(net))
