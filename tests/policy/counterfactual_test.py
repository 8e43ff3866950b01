"""Tests for learning the Q-network from full-information targets (every window's reward)."""
import numpy as np
import pytest
import tensorflow as tf
import tf_keras

import patchwork_tf as pw
from patchwork_tf.data import clips as clips_lib
from patchwork_tf.policy import counterfactual
from patchwork_tf.policy import observation as observation_lib
from patchwork_tf.policy import q_network
from patchwork_tf.training import configs
from tests.policy.fake_twin import FakeTwin, frame_iou, jumping_square_clips

_SIZE = 8
_CELL = "pixels_half"
_WINDOWS = [(0, 0, 2, 2), (0, 2, 2, 2), (2, 0, 2, 2), (2, 2, 2, 2)]  # In the half-size memory.


def _setting():
    grid = pw.WindowGrid((_SIZE, _SIZE), 2, 1)
    tf_keras.utils.set_random_seed(0)
    net = q_network.AttentionQNetwork(
        q_network.observation_spec((_SIZE // 2, _SIZE // 2, 1), 4, change_cue=True),
        q_network.window_action_spec(4), _WINDOWS, fc_layer_params=(8,))
    net.create_variables()
    return FakeTwin(grid), observation_lib.AttentionObservation(grid, 0.5, True), net


def _collector(twin, observer, net, **kwargs):
    return counterfactual.Collector(twin, observer, _CELL, frame_iou, net, **kwargs)


@pytest.mark.slow  # ~20 s on the shared 2-core machine under load ~6 (two collectors traced).
def test_every_window_reward_is_a_replay_of_the_stateful_twin():
    twin, observer, net = _setting()
    clip = next(iter(jumping_square_clips(1, 3, 5, _SIZE)))
    collected = _collector(twin, observer, net, epsilon=0.5, seed=3).collect(clip)
    observations, rewards, actions = collected
    # The same seed and Q-network take the same windows; only the reward's clipping differs.
    unclipped = _collector(twin, observer, net, reward="difference", epsilon=0.5,
                           seed=3).collect(clip)
    np.testing.assert_array_equal(unclipped[2], actions)
    num_streams, num_frames = 3, 4
    assert rewards.shape == (num_streams * num_frames, 4)
    assert len(set(actions.tolist())) > 1
    frames = clips_lib.preprocess_frames(clip["frames"])
    taken = actions.reshape(num_frames, num_streams)
    gt = lambda t: {"mask": clip["mask"][:, t]}  # noqa: E731
    for t in range(1, num_frames + 1):
        rows = slice((t - 1) * num_streams, t * num_streams)
        for action in range(4):
            twin.reset_states(num_streams)
            kept = twin.warm_start(frames[:, 0])
            for s in range(1, t):
                kept = twin.step(frames[:, s], tf.constant(taken[s - 1]))
            if action == 0:  # The observation the Q-network read when choosing for frame t.
                np.testing.assert_allclose(
                    observations[q_network.POOLED_MEMORY][rows],
                    q_network.pool_memory(twin.memory(_CELL), _WINDOWS), rtol=1e-6)
            gain = (frame_iou(gt(t), twin.step(frames[:, t], tf.fill([num_streams], action)))
                    - frame_iou(gt(t), kept)).numpy()
            np.testing.assert_allclose(rewards[rows, action], np.maximum(gain, 0.0), atol=1e-6)
            np.testing.assert_allclose(unclipped[1][rows, action], gain, atol=1e-6)
    assert (rewards > 0).any() and (rewards == 0).any()


def test_best_window_share_by_hand():
    q_values = np.array([[0.0, 1.0, 0.5], [2.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    # Row 0: Q picks window 1, a best one (tied with 2); row 1: picks 0, not the best 2;
    # row 2: every reward equal, left out.
    rewards = np.array([[0.0, 0.3, 0.3], [0.1, 0.0, 0.2], [0.0, 0.0, 0.0]])
    assert counterfactual.best_window_share(q_values, rewards) == pytest.approx(0.5)
    assert np.isnan(counterfactual.best_window_share(q_values, np.zeros([3, 3])))


def test_config_field_defaults_to_off_and_refuses_negative_steps():
    assert configs.AttentionConfig().counterfactual_steps == 0
    values = configs.to_json(configs.AttentionConfig(), configs.FinetuneConfig())
    del values["counterfactual_steps"]  # A run stored before the field.
    assert configs.from_json(values)[0].counterfactual_steps == 0
    with pytest.raises(ValueError, match="counterfactual_steps"):
        configs.AttentionConfig(counterfactual_steps=-1)


def _shuffled(collector_class):
    """A collector whose reward vectors belong to other rows (shuffled across rows): each
    target keeps the windows' rewards of some frame, but not of the frame it is fit to."""

    class Shuffled(collector_class):
        def collect(self, clip):
            observation, reward, action = super().collect(clip)
            return observation, np.random.default_rng(0).permutation(reward), action
    return Shuffled


@pytest.mark.slow  # 10 s and 3 s on the shared 2-core machine under load ~6.
@pytest.mark.parametrize("collector_class, learns", [
    (counterfactual.Collector, True), (_shuffled(counterfactual.Collector), False)])
def test_fitting_every_window_reward_teaches_the_greedy_q_the_best_window(collector_class,
                                                                          learns):
    # The square holds each place for two frames: on a frame where it stayed, the window it
    # moved into at the frame before is the best one, and the observation shows it (changed,
    # memory still empty there); on a frame where it jumps, no observation can know where.
    twin, observer, net = _setting()
    num_streams = 16
    # Held-out rows from uniformly random windows (epsilon 1), so they do not depend on Q.
    observations, rewards, _ = _collector(twin, observer, net, epsilon=1.0, seed=1).collect(
        next(iter(jumping_square_clips(1, num_streams, 6, _SIZE, seed=1, hold=2))))
    stayed = (np.arange(len(rewards)) // num_streams + 1) % 2 == 1  # Frames 1, 3, 5.
    observations = {key: tf.constant(value[stayed]) for key, value in observations.items()}

    def share():
        return counterfactual.best_window_share(net(observations)[0], rewards[stayed])

    before = share()
    result = counterfactual.train(
        collector_class(twin, observer, _CELL, frame_iou, net, seed=0), net,
        tf_keras.optimizers.Adam(1e-2),
        iter(jumping_square_clips(8, 8, 6, _SIZE, seed=0, hold=2)), num_rounds=8,
        num_steps=300, sample_batch_size=32)
    assert result["rows"] == 8 * 8 * 5
    assert before < 0.4
    if learns:
        assert share() > 0.7
    else:  # Targets not paired with their observations teach no ranking.
        assert share() < 0.45
