"""The window choosers on hand-worked cases: greedy, scanning, change, random."""
import numpy as np
import tensorflow as tf

from patchwork_tf.policy import choosers

_NONE = [-1, -1, -1]


class GreedyTest(tf.test.TestCase):

    def test_argmax_of_q_values_with_ties_to_the_lowest_window(self):
        q_values = tf.constant([[1.0, 3.0, 2.0, 0.0], [5.0, 1.0, 1.0, 5.0], [0.0, 0.0, 0.0, 0.0]])
        chooser = choosers.greedy(lambda observation: q_values, 4)
        self.assertAllEqual(chooser({}, _NONE), [1, 0, 0])

    def test_reads_a_networks_q_values_and_refuses_other_shapes(self):
        network = lambda observation: (observation["history"] * [1.0, -1.0, 2.0, 0.0], ())  # noqa
        chooser = choosers.greedy(network, 4)
        self.assertAllEqual(chooser({"history": tf.eye(4)}, [-1] * 4), [0, 0, 2, 0])
        self.assertAllEqual(tf.function(chooser)({"history": tf.eye(4)}, [-1] * 4),
                            [0, 0, 2, 0])
        with self.assertRaisesRegex(ValueError, "Q-values of shape"):
            choosers.greedy(lambda observation: tf.zeros([3, 5]), 4)({}, _NONE)
        with self.assertRaisesRegex(TypeError, "callable"):
            choosers.greedy("q", 4)


class ScanningTest(tf.test.TestCase):

    def test_next_window_after_the_last_in_the_order(self):
        chooser = choosers.scanning(4, order=[2, 0, 3, 1])
        # -1 (a new stream) starts at order[0]; 2 -> 0 -> 3 -> 1 -> 2.
        self.assertAllEqual(chooser(None, [-1, 2, 0, 3, 1]), [2, 0, 3, 1, 2])
        self.assertAllEqual(choosers.scanning(3)(None, [-1, 0, 1, 2]), [0, 1, 2, 0])

    def test_a_stream_visits_every_window_once_per_cycle(self):
        chooser = choosers.scanning(6, order=[5, 3, 1, 0, 2, 4])
        last, visited = tf.constant([-1]), []
        for _ in range(12):
            last = chooser(None, last)
            visited.append(int(last[0]))
        self.assertEqual(visited, [5, 3, 1, 0, 2, 4] * 2)

    def test_bad_order_is_refused(self):
        with self.assertRaisesRegex(ValueError, r"permutation of range\(4\)"):
            choosers.scanning(4, order=[0, 1, 1, 2])
        with self.assertRaisesRegex(ValueError, r"permutation of range\(4\)"):
            choosers.scanning(4, order=[0, 1, 2])


class ChangeTest(tf.test.TestCase):

    def test_window_that_changed_most(self):
        change = tf.constant([[0.0, 0.2, 0.1, 0.0], [0.3, 0.0, 0.0, 0.4], [0.0, 0.0, 0.0, 0.0]])
        chooser = choosers.change(4)
        self.assertAllEqual(chooser({"change": change}, _NONE), [1, 3, 0])
        with self.assertRaisesRegex(ValueError, "change cue"):
            chooser({"history": tf.zeros([3, 4])}, _NONE)


class RandomTest(tf.test.TestCase):

    def test_seeded_uniform_windows(self):
        draws = lambda seed: choosers.random(4, seed)(None, [-1] * 50).numpy()  # noqa: E731
        first, again, other = draws(3), draws(3), draws(4)
        np.testing.assert_array_equal(first, again)
        self.assertFalse(np.array_equal(first, other))
        self.assertEqual(first.dtype, np.int32)
        self.assertCountEqual(np.unique(first).tolist(), range(4))

    def test_successive_draws_differ(self):
        chooser = choosers.random(4, seed=0)
        self.assertFalse(np.array_equal(chooser(None, [-1] * 50), chooser(None, [-1] * 50)))


class ByNameTest(tf.test.TestCase):

    def test_names_and_refusals(self):
        self.assertEqual(choosers.by_name("scanning", 4).name, "scanning")
        self.assertEqual(choosers.by_name("dqn", 4, q_fn=lambda o: o).name, "dqn")
        with self.assertRaisesRegex(ValueError, "Unknown policy"):
            choosers.by_name("oracle", 4)
        with self.assertRaisesRegex(ValueError, "only by it"):
            choosers.by_name("scanning", 4, q_fn=lambda o: o)
        with self.assertRaisesRegex(ValueError, "only by it"):
            choosers.by_name("dqn", 4)
