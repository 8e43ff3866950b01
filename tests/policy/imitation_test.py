"""Tests for learning from the change rule's demonstrations (DQfD's large-margin loss)."""
import numpy as np
import pytest
import tensorflow as tf
import tf_keras

import patchwork_tf as pw
from patchwork_tf.policy import agent as agent_lib
from patchwork_tf.policy import baselines
from patchwork_tf.policy import environment
from patchwork_tf.policy import imitation
from patchwork_tf.policy import q_network
from patchwork_tf.policy import trainer
from patchwork_tf.training import configs
from tests.policy.fake_twin import FakeTwin, frame_iou, jumping_square_clips

_SIZE = 8
_WINDOWS = [(0, 0, 2, 2), (0, 2, 2, 2), (2, 0, 2, 2), (2, 2, 2, 2)]  # In the half-size memory.


def _clips(seed):
    return jumping_square_clips(16, 4, 6, _SIZE, seed)


def _silent_metric(gt, predictions):
    """Every prediction scores 1, so every Eq. 2 reward is 0."""
    del predictions
    return tf.ones(tf.shape(gt["mask"])[:1])


def _env(seed, metric=frame_iou):
    return environment.VideoStreamEnvironment(
        FakeTwin(pw.WindowGrid((_SIZE, _SIZE), 2, 1)), _clips(seed), "pixels_half", metric,
        4, change_cue=True, pool_memory=True)


def _q_network(env):
    tf_keras.utils.set_random_seed(0)
    return q_network.AttentionQNetwork(
        q_network.observation_spec((_SIZE // 2, _SIZE // 2, 1), 4, change_cue=True),
        env.action_spec(), _WINDOWS, fc_layer_params=(8,))


def _agent(env, net=None, auxiliary_loss=None):
    return agent_lib.ddqn_agent(env.time_step_spec(), env.action_spec(),
                                net or _q_network(env), gamma=0.5, learning_rate=1e-2,
                                target_update_period=1000, auxiliary_loss=auxiliary_loss)


def _agreement(agent, env, steps=24):
    """Share of held-out frames with one largest change where argmax Q is the rule's window."""
    rule = baselines.ChangePolicy(env.time_step_spec(), env.action_spec())
    time_step = env.current_time_step()
    agree, counted = 0, 0
    for _ in range(steps):
        change = time_step.observation["change"].numpy()
        top2 = np.sort(change, axis=-1)[:, -2:]
        clear = top2[:, 1] > top2[:, 0] + 1e-6
        q_values, _ = agent._q_network(time_step.observation)
        rule_action = rule.action(time_step).action.numpy()
        agree += int(np.sum(clear & (np.argmax(q_values.numpy(), -1) == rule_action)))
        counted += int(np.sum(clear))
        time_step = env.step(rule_action)
    return agree / counted


def test_large_margin_loss_against_a_hand_worked_batch():
    q_values = tf.constant([[1.0, 0.5, 0.1], [0.0, 2.0, 1.5]])
    # Row 0: a_E = 0 beats the others by 0.5 < 0.8: max(1.0, 1.3, 0.9) - 1.0 = 0.3.
    # Row 1: a_E = 2: max(0.8, 2.8, 1.5) - 1.5 = 1.3.
    loss = imitation.large_margin_loss(q_values, tf.constant([0, 2]), margin=0.8)
    np.testing.assert_allclose(loss, [0.3, 1.3], rtol=1e-6, atol=1e-6)
    # A lead of at least the margin costs nothing.
    np.testing.assert_allclose(imitation.large_margin_loss(q_values, tf.constant([0, 1]), 0.4),
                               [0.0, 0.0], rtol=1e-6, atol=1e-6)


@pytest.mark.slow  # 22 s on the shared 2-core machine (83 s beside a training run).
def test_warm_start_greedy_q_learns_the_change_rule():
    env = _env(seed=0)
    agent = _agent(env)
    held_out = _env(seed=1)
    before = _agreement(agent, held_out)
    result = imitation.warm_start(env, agent, num_steps=100, steps_per_stream=32,
                                  sample_batch_size=32)
    after = _agreement(agent, held_out)
    assert before < 0.6
    assert after > 0.85
    assert result["agreement"] > 0.85
    # The target network is the online network; the train step counter did not move.
    for online, target in zip(agent._q_network.variables, agent._target_q_network.variables):
        np.testing.assert_array_equal(online, target)
    assert int(agent.train_step_counter.numpy()) == 0


def test_warm_start_of_zero_steps_leaves_agent_and_environment_as_they_are():
    assert configs.AttentionConfig().imitation_steps == 0
    env = _env(seed=0)
    agent = _agent(env)
    weights = [v.numpy() for v in agent._q_network.variables]
    frame = int(env._frame_index.numpy())
    assert imitation.warm_start(env, agent, num_steps=0) is None
    assert int(env._frame_index.numpy()) == frame
    for before, after in zip(weights, agent._q_network.variables):
        np.testing.assert_array_equal(before, after)


def test_config_refuses_imitation_without_the_change_cue():
    with pytest.raises(ValueError, match="change_cue=True"):
        configs.AttentionConfig(imitation_steps=10, change_cue=False)
    with pytest.raises(ValueError, match="change_cue=True"):
        configs.AttentionConfig(demonstration_weight=1.0, change_cue=False)
    with pytest.raises(ValueError, match="weight > 0"):
        imitation.demonstration_loss(None, None, weight=0.0)


def test_the_demonstration_loss_joins_the_td_loss_of_train_steps_only():
    env = _env(seed=0)
    demonstrations = imitation.rule_demonstrations(env, steps_per_stream=6)
    assert int(demonstrations.num_frames()) == 6 * 4
    batch, _ = next(iter(agent_lib.replay_dataset(demonstrations, 16)))
    plain = _agent(env)
    net = _q_network(env)
    term = imitation.demonstration_loss(net, demonstrations, weight=2.0, sample_batch_size=16)
    agent = _agent(env, net, auxiliary_loss=term)
    # Same seed, same weights: the TD losses agree; the term is 2 x a mean margin loss >= 0
    # (a fresh demonstration batch per call; the demonstrations are the rule's, so the
    # untrained Q-network pays a margin on them).
    td = float(agent_lib.td_loss(agent, batch))
    np.testing.assert_allclose(td, float(agent_lib.td_loss(plain, batch)), rtol=1e-6)
    assert float(term()) > 0.0
    np.testing.assert_allclose(
        float(agent._loss(batch, gamma=agent._gamma, training=False).loss), td, rtol=1e-6)
    loss = float(agent.train(batch).loss)
    plain_loss = float(plain.train(batch).loss)
    np.testing.assert_allclose(plain_loss, td, rtol=1e-6)
    assert loss > td + 1e-3  # TD loss + the term (the term of the step's own batch).
    # The term's gradient moved the weights: the two agents no longer agree.
    assert any(not np.allclose(a, b) for a, b in zip(agent._q_network.variables,
                                                     plain._q_network.variables))


@pytest.mark.slow  # ~20 s on the shared 2-core machine.
def test_ddqn_with_the_demonstration_loss_learns_the_rule_on_a_silent_reward(tmp_path):
    # Eq. 2 says nothing here (every reward 0), so the TD loss alone cannot rank the windows;
    # the margin loss on the rule's demonstrations, added to each DDQN step, teaches the rule.
    env = _env(seed=0, metric=_silent_metric)
    net = _q_network(env)
    agent = _agent(env, net, auxiliary_loss=imitation.demonstration_loss(
        net, imitation.rule_demonstrations(env, steps_per_stream=32), weight=1.0,
        sample_batch_size=32))
    held_out = _env(seed=1)
    before = _agreement(agent, held_out)
    buffer = agent_lib.replay_buffer(agent.collect_data_spec, env.batch_size, 64)
    trainer.collect_and_train(str(tmp_path), env, agent, buffer, num_train_steps=100,
                              initial_collect_steps=4, sample_batch_size=32)
    assert before < 0.6
    assert _agreement(agent, held_out) > 0.85
    assert int(agent.train_step_counter.numpy()) == 100
