"""Tests for Eq. 1, the action history, on a hand-worked sequence."""
import numpy as np
import pytest
import tensorflow as tf

from patchwork_tf.policy.action_history import action_history


def test_hand_worked_sequence():
    # Two streams, 3 actions, alpha = 0.5.
    # Stream 0 takes actions 0, 0, 1:
    #   F1 = [1, 0, 0]; F2 = min(0.5*[1,0,0] + [1,0,0], 1) = [1, 0, 0];
    #   F3 = [0.5, 1, 0].
    # Stream 1 takes actions 2, 1, 0:
    #   F1 = [0, 0, 1]; F2 = [0, 1, 0.5]; F3 = [1, 0.5, 0.25].
    history = tf.zeros([2, 3])
    expected = [
        [[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]],
        [[1.0, 0.0, 0.0], [0.0, 1.0, 0.5]],
        [[0.5, 1.0, 0.0], [1.0, 0.5, 0.25]],
    ]
    for actions, want in zip([[0, 2], [0, 1], [1, 0]], expected):
        history = action_history(history, tf.constant(actions, tf.int32), alpha=0.5)
        np.testing.assert_allclose(history, want, rtol=1e-6, atol=1e-6)


def test_alpha_zero_is_onehot_and_alpha_one_saturates():
    start = tf.constant([[0.7, 0.2]])
    np.testing.assert_allclose(action_history(start, [1], alpha=0.0), [[0.0, 1.0]],
                               rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(action_history(start, [1], alpha=1.0), [[0.7, 1.0]],
                               rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(action_history(start, [0], alpha=1.0), [[1.0, 0.2]],
                               rtol=1e-6, atol=1e-6)


def test_in_tf_function_with_tensor_alpha():
    fn = tf.function(action_history)
    got = fn(tf.constant([[0.5, 0.5]]), tf.constant([0]), tf.constant(0.5))
    np.testing.assert_allclose(got, np.array([[1.0, 0.25]]), rtol=1e-6, atol=1e-6)


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="previous_history"):
        action_history(tf.zeros([3]), [0], 0.5)
    with pytest.raises(ValueError, match="actions must be"):
        action_history(tf.zeros([1, 3]), [[0]], 0.5)
    with pytest.raises(ValueError, match="alpha"):
        action_history(tf.zeros([1, 3]), [0], 1.5)
    with pytest.raises(ValueError, match="integers"):
        action_history(tf.zeros([1, 3]), [0.0], 0.5)
