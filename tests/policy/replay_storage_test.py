"""The replay buffer stores pooled memories: same transitions, same Q-values and DDQN update.

The old storage kept each step's full memory [Hl, Wl, C]; the new keeps its window means
[num_actions, C] (`q_network.pool_observation`, run by the environment). Both are filled by
the same clips and actions here, and the Q-values of the old network (numpy,
`reference_q_network`) on the old buffer's full memories must equal the new network's on the
new buffer's pooled ones, with the same weights; so must a train step on both.
"""
import numpy as np
import tensorflow as tf
import tf_keras
from tf_agents.trajectories import trajectory

import patchwork_tf as pw
from patchwork_tf.policy import agent as agent_lib
from patchwork_tf.policy import environment
from patchwork_tf.policy import q_network
from tests.policy import reference_q_network
from tests.policy.fake_twin import FakeTwin, frame_iou

_SIZE = 8
_STREAMS = 2
_STEPS = 9  # Two clips of 4 frames and the boundary step between them.


def _clips():
    """Clips of 4 frames in which a 2x2 square jumps to a random place each frame."""
    rng = np.random.default_rng(3)
    masks = np.zeros([4, _STREAMS, 4, _SIZE, _SIZE], np.uint8)
    for index in np.ndindex(4, _STREAMS, 4):
        y, x = rng.integers(0, _SIZE - 1, size=2)
        masks[index][y:y + 2, x:x + 2] = 1
    frames = np.repeat(masks[..., None] * 255, 3, axis=-1).astype(np.uint8)
    return tf.data.Dataset.from_tensor_slices({"frames": frames, "mask": masks})


def _filled(pool_memory, network, actions):
    """A DDQN agent on `network` and its buffer, filled by `actions` [_STEPS, B]."""
    env = environment.VideoStreamEnvironment(
        FakeTwin(pw.WindowGrid((_SIZE, _SIZE), 2, 1)), _clips(), "pixels_half", frame_iou, 4,
        change_cue=True, pool_memory=pool_memory)
    agent = agent_lib.ddqn_agent(env.time_step_spec(), env.action_spec(), network,
                                 learning_rate=1e-2, target_update_period=1)
    buffer = agent_lib.replay_buffer(agent.collect_data_spec, _STREAMS, max_length=16)
    time_step = env.current_time_step()
    for action in actions:
        next_step = env.step(action)
        buffer.add_batch(trajectory.from_transition(
            time_step, agent.collect_policy.action(time_step)._replace(action=action),
            next_step))
        time_step = next_step
    return agent, buffer


def _all_steps(buffer):
    """The buffer's contents in order, [B, _STEPS, ...]."""
    dataset = buffer.as_dataset(sample_batch_size=_STREAMS, num_steps=_STEPS,
                                single_deterministic_pass=True)
    return next(iter(dataset))[0]


def _pairs(items):
    """Every transition (adjacent pair of steps) of `items` [B, T, ...], as [B * (T-1), 2, ...]."""
    return tf.nest.map_structure(
        lambda x: tf.concat([x[:, t:t + 2] for t in range(x.shape[1] - 1)], axis=0), items)


def _network():
    net = q_network.AttentionQNetwork(
        q_network.observation_spec((_SIZE // 2, _SIZE // 2, 1), 4, change_cue=True),
        q_network.window_action_spec(4), [(0, 0, 2, 2), (0, 2, 2, 2), (2, 0, 2, 2),
                                          (2, 2, 2, 2)], projection_units=3, fc_layer_params=(5,))
    net.create_variables()
    return net


def test_same_transitions_same_q_values_and_update():
    tf_keras.utils.set_random_seed(0)
    old_net, new_net = _network(), _network()
    rng = np.random.default_rng(1)
    for old, new in zip(old_net.variables, new_net.variables):
        value = rng.normal(scale=0.5, size=old.shape).astype(np.float32)
        old.assign(value)
        new.assign(value)
    actions = tf.constant(rng.integers(0, 4, size=(_STEPS, _STREAMS)), tf.int32)
    old_agent, old_buffer = _filled(False, old_net, actions)
    new_agent, new_buffer = _filled(True, new_net, actions)

    old_items, new_items = _all_steps(old_buffer), _all_steps(new_buffer)
    assert old_items.observation["memory"].shape == (_STREAMS, _STEPS, 4, 4, 1)
    assert new_items.observation["pooled_memory"].shape == (_STREAMS, _STEPS, 4, 1)
    flat = {key: value.numpy().reshape((-1,) + tuple(value.shape[2:]))
            for key, value in old_items.observation.items()}
    want = reference_q_network.q_values(old_net, flat).reshape(_STREAMS, _STEPS, 4)
    assert np.ptp(want) > 0.1
    np.testing.assert_allclose(new_net(new_items.observation)[0], want, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(old_net(old_items.observation)[0], want, rtol=1e-5, atol=1e-5)

    # One DDQN step on all stored transitions: the same loss and the same new weights.
    before = [v.numpy() for v in new_net.variables]
    old_loss = old_agent.train(_pairs(old_items)).loss
    new_loss = new_agent.train(_pairs(new_items)).loss
    assert float(new_loss) > 0.0
    np.testing.assert_allclose(new_loss, old_loss, rtol=1e-5, atol=1e-6)
    for old, new in zip(old_net.variables, new_net.variables):
        np.testing.assert_allclose(new, old, rtol=1e-5, atol=1e-6)
    assert not all(np.array_equal(b, v.numpy()) for b, v in zip(before, new_net.variables))


def test_pooled_buffer_holds_num_actions_by_c_floats_a_step():
    # Buffer bytes, from its variables, against the spec arithmetic: per step the old
    # storage holds Hl * Wl * C memory floats, the new num_actions * C.
    net = _network()
    rng = np.random.default_rng(0)
    actions = tf.constant(rng.integers(0, 4, size=(1, _STREAMS)), tf.int32)
    sizes = []
    for pool_memory in (False, True):
        _, buffer = _filled(pool_memory, net, actions)
        sizes.append(sum(v.shape.num_elements() * v.dtype.size for v in buffer.variables()))
    assert sizes[0] - sizes[1] == _STREAMS * 16 * (4 * 4 * 1 - 4 * 1) * 4
