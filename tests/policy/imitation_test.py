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
from patchwork_tf.training import configs
from tests.policy.fake_twin import FakeTwin, frame_iou, jumping_square_clips

_SIZE = 8
_WINDOWS = [(0, 0, 2, 2), (0, 2, 2, 2), (2, 0, 2, 2), (2, 2, 2, 2)]  # In the half-size memory.


def _clips(seed):
    return jumping_square_clips(16, 4, 6, _SIZE, seed)


def _env(seed):
    return environment.VideoStreamEnvironment(
        FakeTwin(pw.WindowGrid((_SIZE, _SIZE), 2, 1)), _clips(seed), "pixels_half", frame_iou,
        4, change_cue=True, pool_memory=True)


def _agent(env):
    tf_keras.utils.set_random_seed(0)
    net = q_network.AttentionQNetwork(
        q_network.observation_spec((_SIZE // 2, _SIZE // 2, 1), 4, change_cue=True),
        env.action_spec(), _WINDOWS, fc_layer_params=(8,))
    return agent_lib.ddqn_agent(env.time_step_spec(), env.action_spec(), net, gamma=0.5,
                                learning_rate=1e-2, target_update_period=1000)


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
