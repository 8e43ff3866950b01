"""Tests for the stage-2 DDQN loop: training, summaries, checkpoint save and resume."""
import glob
import os

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

import patchwork_tf as pw
from patchwork_tf.policy import agent as agent_lib
from patchwork_tf.policy import environment
from patchwork_tf.policy import q_network
from patchwork_tf.policy import trainer
from tests.policy.fake_twin import FakeTwin, frame_iou, jumping_square_clips

_SIZE = 8
_WINDOWS = [(0, 0, 4, 4), (0, 4, 4, 4), (4, 0, 4, 4), (4, 4, 4, 4)]


def _clips(seed=0):
    return jumping_square_clips(8, 2, 4, _SIZE, seed)


def _setup(capacity=64):
    """Environment (observing pooled memories, as stage 2 does), agent, buffer, epsilon."""
    tf_keras.utils.set_random_seed(0)
    env = environment.VideoStreamEnvironment(
        FakeTwin(pw.WindowGrid((_SIZE, _SIZE), 2, 1)), _clips(), "pixels_half", frame_iou, 4,
        pool_memory=True)
    net = q_network.AttentionQNetwork(
        q_network.observation_spec((_SIZE // 2, _SIZE // 2, 1), 4), env.action_spec(),
        [(y // 2, x // 2, h // 2, w // 2) for y, x, h, w in _WINDOWS], fc_layer_params=(8,))
    counter = tf.Variable(0, dtype=tf.int64, trainable=False)
    epsilon = agent_lib.epsilon_schedule(counter, 1.0, 0.1, decay_steps=10)
    agent = agent_lib.ddqn_agent(env.time_step_spec(), env.action_spec(), net,
                                 epsilon_greedy=epsilon, target_update_period=2,
                                 train_step_counter=counter)
    buffer = agent_lib.replay_buffer(agent.collect_data_spec, env.batch_size,
                                     max_length=capacity)
    return env, agent, buffer, epsilon


def _run(root, num_train_steps, use_tf_function=False, capacity=64, **kwargs):
    env, agent, buffer, epsilon = _setup(capacity)
    result = trainer.collect_and_train(
        root, env, agent, buffer, num_train_steps, epsilon_fn=epsilon, initial_collect_steps=6,
        sample_batch_size=4, checkpoint_interval=2, summary_interval=1,
        use_tf_function=use_tf_function, **kwargs)
    return result, agent, buffer


def _checkpoint_bytes(root):
    latest = tf.train.latest_checkpoint(os.path.join(root, "checkpoints"))
    return sum(os.path.getsize(path) for path in glob.glob(latest + ".*"))


def _checkpoint_keys(root):
    latest = tf.train.latest_checkpoint(os.path.join(root, "checkpoints"))
    return [name for name, _ in tf.train.list_variables(latest)]


def _weights(agent):
    return [v.numpy() for v in agent._q_network.variables + agent._target_q_network.variables]


def _summary_tags(root):
    tags = set()
    for path in glob.glob(os.path.join(root, "summaries", "events.*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            tags.update(value.tag for value in event.summary.value)
    return tags


def _folders(tmp_path, *names):
    """Fresh empty folders under pytest's `tmp_path`, as strings."""
    for name in names:
        (tmp_path / name).mkdir()
    return [str(tmp_path / name) for name in names]


def test_resume_continues_from_the_checkpoint(tmp_path):
    root = str(tmp_path)
    first, agent_a, buffer_a = _run(root, 3, checkpoint_replay_buffer=True)
    assert first["train_step"] == 3
    assert np.isfinite(first["loss"])
    assert "ckpt-3.index" in os.listdir(os.path.join(root, "checkpoints"))
    # A fresh set-up with other random weights restores step 3, weights and buffer, and
    # trains nothing more when asked for 3 steps.
    tf_keras.utils.set_random_seed(7)
    again, agent_b, buffer_b = _run(root, 3, checkpoint_replay_buffer=True)
    assert again == {"train_step": 3, "loss": None}
    for a, b in zip(_weights(agent_a), _weights(agent_b)):
        np.testing.assert_array_equal(a, b)
    assert int(buffer_b.num_frames()) == int(buffer_a.num_frames())
    # Asked for 5, it continues with steps 4 and 5 and saves them.
    more, agent_c, _ = _run(root, 5, checkpoint_replay_buffer=True)
    assert more["train_step"] == 5
    assert int(agent_c._optimizer.iterations.numpy()) == 5
    assert not all(np.array_equal(a, c) for a, c in zip(_weights(agent_a), _weights(agent_c)))
    assert "ckpt-5.index" in os.listdir(os.path.join(root, "checkpoints"))
    assert {"loss", "mean_q", "reward", "epsilon", "actions"} <= _summary_tags(root)


def test_checkpoints_leave_the_buffer_out_unless_asked(tmp_path):
    # Default: no buffer in the checkpoint, whatever its capacity; a resume refills the
    # empty buffer with the initial random collection (6 steps per stream, 2 streams: the
    # driver counts 6 non-boundary steps per stream, 7 steps with the boundary).
    small, large, kept = _folders(tmp_path, "small", "large", "kept")
    _, agent_a, _ = _run(small, 2, capacity=16)
    _run(large, 2, capacity=4096)
    _run(kept, 2, capacity=4096, checkpoint_replay_buffer=True)
    assert not any(k.startswith("replay_buffer/") for k in _checkpoint_keys(small))
    assert any(k.startswith("replay_buffer/") for k in _checkpoint_keys(kept))
    assert _checkpoint_bytes(small) == _checkpoint_bytes(large)
    # The kept buffer's pooled memories alone: 2 streams x 4096 steps x 4 windows x 4 B.
    assert _checkpoint_bytes(kept) - _checkpoint_bytes(large) > 2 * 4096 * 16
    again, agent_b, buffer_b = _run(small, 2, capacity=16)
    assert again == {"train_step": 2, "loss": None}
    assert int(buffer_b.num_frames()) == 14
    for a, b in zip(_weights(agent_a), _weights(agent_b)):
        np.testing.assert_array_equal(a, b)
    # A checkpoint that holds a buffer resumes without reading it, too.
    again, _, buffer_c = _run(kept, 2, capacity=4096)
    assert again["train_step"] == 2
    assert int(buffer_c.num_frames()) == 14


@pytest.mark.slow
def test_compiled_loop_trains(tmp_path):
    result, _, buffer = _run(str(tmp_path), 2, use_tf_function=True)
    assert result["train_step"] == 2
    assert np.isfinite(result["loss"])
    # The driver counts only non-boundary steps. Clips of 4 frames give 3 steps and then one
    # boundary step (LAST -> FIRST). Random collection: 6 counted steps take 7 steps and end
    # at LAST; train step 1 collects a boundary and one step, train step 2 one step. That is
    # 10 steps per stream, 2 streams.
    assert int(buffer.num_frames()) == 20


@pytest.mark.slow
def test_compiled_loop_on_real_twin(tmp_path):
    tf_keras.utils.set_random_seed(0)
    model = tf_keras.applications.MobileNetV2(
        input_shape=(64, 64, 3), alpha=0.35, include_top=False, weights=None)
    grid = pw.WindowGrid((64, 64), 2, 1)
    frames = np.random.default_rng(0).integers(0, 256, (2, 4, 64, 64, 3), dtype=np.uint8)
    stock = model(tf.reshape(tf.cast(frames, tf.float32) / 127.5 - 1.0, [8, 64, 64, 3]))
    clips = tf.data.Dataset.from_tensors(
        {"frames": frames,
         "features": tf.reshape(stock, [2, 4] + stock.shape[1:].as_list())}).repeat()

    def closeness(gt, predictions):
        return -tf.reduce_mean(tf.abs(predictions - gt["features"]), axis=[1, 2, 3])

    env = environment.VideoStreamEnvironment(
        pw.patchwork_model(model, grid), clips, "block_13_depthwise", closeness,
        grid.num_actions)
    net = q_network.AttentionQNetwork(
        env.observation_spec(), env.action_spec(),
        q_network.windows_in_memory(grid, env.observation_spec()["memory"].shape))
    agent = agent_lib.ddqn_agent(env.time_step_spec(), env.action_spec(), net)
    buffer = agent_lib.replay_buffer(agent.collect_data_spec, env.batch_size, max_length=32)
    weights = [v.numpy() for v in net.trainable_variables]
    result = trainer.collect_and_train(
        str(tmp_path), env, agent, buffer, 3, initial_collect_steps=4, sample_batch_size=4)
    assert result["train_step"] == 3
    assert np.isfinite(result["loss"])
    assert not all(np.array_equal(w, v.numpy()) for w, v in zip(weights, net.trainable_variables))
