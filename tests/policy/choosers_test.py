"""The window choosers on hand-worked cases: greedy, scanning, change, random."""
import numpy as np
import pytest
import tensorflow as tf

from patchwork_tf.policy import choosers

_NONE = [-1, -1, -1]


def test_greedy_argmax_of_q_values_with_ties_to_the_lowest_window():
    q_values = tf.constant([[1.0, 3.0, 2.0, 0.0], [5.0, 1.0, 1.0, 5.0], [0.0, 0.0, 0.0, 0.0]])
    chooser = choosers.greedy(lambda observation: q_values, 4)
    np.testing.assert_array_equal(chooser({}, _NONE), [1, 0, 0])


def test_greedy_reads_a_networks_q_values_and_refuses_other_shapes():
    network = lambda observation: (observation["history"] * [1.0, -1.0, 2.0, 0.0], ())  # noqa
    chooser = choosers.greedy(network, 4)
    np.testing.assert_array_equal(chooser({"history": tf.eye(4)}, [-1] * 4), [0, 0, 2, 0])
    np.testing.assert_array_equal(tf.function(chooser)({"history": tf.eye(4)}, [-1] * 4),
                                  [0, 0, 2, 0])
    with pytest.raises(ValueError, match="Q-values of shape"):
        choosers.greedy(lambda observation: tf.zeros([3, 5]), 4)({}, _NONE)
    with pytest.raises(TypeError, match="callable"):
        choosers.greedy("q", 4)


def test_scanning_next_window_after_the_last_in_the_order():
    chooser = choosers.scanning(4, order=[2, 0, 3, 1])
    # -1 (a new stream) starts at order[0]; 2 -> 0 -> 3 -> 1 -> 2.
    np.testing.assert_array_equal(chooser(None, [-1, 2, 0, 3, 1]), [2, 0, 3, 1, 2])
    np.testing.assert_array_equal(choosers.scanning(3)(None, [-1, 0, 1, 2]), [0, 1, 2, 0])


def test_scanning_stream_visits_every_window_once_per_cycle():
    chooser = choosers.scanning(6, order=[5, 3, 1, 0, 2, 4])
    last, visited = tf.constant([-1]), []
    for _ in range(12):
        last = chooser(None, last)
        visited.append(int(last[0]))
    assert visited == [5, 3, 1, 0, 2, 4] * 2


def test_scanning_bad_order_is_refused():
    with pytest.raises(ValueError, match=r"permutation of range\(4\)"):
        choosers.scanning(4, order=[0, 1, 1, 2])
    with pytest.raises(ValueError, match=r"permutation of range\(4\)"):
        choosers.scanning(4, order=[0, 1, 2])


def test_change_takes_the_window_that_changed_most():
    change = tf.constant([[0.0, 0.2, 0.1, 0.0], [0.3, 0.0, 0.0, 0.4], [0.0, 0.0, 0.0, 0.0]])
    chooser = choosers.change(4)
    np.testing.assert_array_equal(chooser({"change": change}, _NONE), [1, 3, 0])
    with pytest.raises(ValueError, match="change cue"):
        chooser({"history": tf.zeros([3, 4])}, _NONE)


def test_random_seeded_uniform_windows():
    draws = lambda seed: choosers.random(4, seed)(None, [-1] * 50).numpy()  # noqa: E731
    first, again, other = draws(3), draws(3), draws(4)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    assert first.dtype == np.int32
    assert np.unique(first).tolist() == list(range(4))


def test_random_successive_draws_differ():
    chooser = choosers.random(4, seed=0)
    assert not np.array_equal(chooser(None, [-1] * 50), chooser(None, [-1] * 50))


def test_by_name_names_and_refusals():
    assert choosers.by_name("scanning", 4).name == "scanning"
    assert choosers.by_name("dqn", 4, q_fn=lambda o: o).name == "dqn"
    with pytest.raises(ValueError, match="Unknown policy"):
        choosers.by_name("oracle", 4)
    with pytest.raises(ValueError, match="only by it"):
        choosers.by_name("scanning", 4, q_fn=lambda o: o)
    with pytest.raises(ValueError, match="only by it"):
        choosers.by_name("dqn", 4)
