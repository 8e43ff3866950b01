"""rollout: policies pick the windows they should, and the record is the twin's own run."""
import numpy as np
import pytest
import tensorflow as tf

from patchwork_tf.data import clips as clips_lib
from patchwork_tf.visualization import rollout as rollout_lib

CELL = "block_6_depthwise"


def test_scanning_visits_windows_row_major_and_records_the_twin(twin, frames):
    result = rollout_lib.rollout(twin, frames[:6], "scanning", cell_name=CELL)
    np.testing.assert_array_equal(result.actions, [0, 1, 2, 3, 0, 1])
    assert result.memories.shape == (6, 8, 8, twin.memory_shape(CELL)[-1])
    assert len(result.predictions) == 6

    twin.reset_states(1)
    for t in range(6):
        outputs = twin.step(clips_lib.preprocess_frames(frames[t:t + 1]), [t % 4])
        np.testing.assert_allclose(result.predictions[t]["predictions"], outputs[0],
                                   rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(result.memories[-1], twin.memory(CELL)[0], atol=1e-6)


def test_random_policy_is_seeded(twin, frames):
    first = rollout_lib.rollout(twin, frames, "random", seed=3).actions
    again = rollout_lib.rollout(twin, frames, "random", seed=3).actions
    other = rollout_lib.rollout(twin, frames, "random", seed=4).actions
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    assert first.min() >= 0 and first.max() < 4


def test_learned_policy_sees_memory_view_and_eq1_history(twin, frames):
    seen = []

    def least_recent(observation):
        seen.append((observation["memory"].shape, np.array(observation["history"])))
        return -observation["history"]

    result = rollout_lib.rollout(twin, frames[:5], least_recent, cell_name=CELL, alpha=0.5)
    # Q = -F_t picks the window looked at least recently: a scan, once Eq. 1 is applied.
    np.testing.assert_array_equal(result.actions, [0, 1, 2, 3, 0])
    assert seen[0][0] == (1, 8, 8, twin.memory_shape(CELL)[-1])
    np.testing.assert_allclose(seen[4][1], [[0.125, 0.25, 0.5, 1.0]])


def test_bad_inputs_are_refused(twin, frames):
    with pytest.raises(ValueError, match=r"uint8 \[T, 64, 64, 3\]"):
        rollout_lib.rollout(twin, frames.astype(np.float32))
    with pytest.raises(ValueError, match=r"uint8 \[T, 64, 64, 3\]"):
        rollout_lib.rollout(twin, frames[:, :32])
    with pytest.raises(ValueError, match="policy must be one of"):
        rollout_lib.rollout(twin, frames, "greedy")
    with pytest.raises(ValueError, match="cell_name"):
        rollout_lib.rollout(twin, frames, lambda obs: tf.zeros([1, 4]))


def test_warm_start_fills_every_memory_before_the_first_window(twin, frames):
    """From zero memories the first step leaves the other windows black; from a key frame
    the memory already holds the whole frame (Fig. 4 starts there)."""
    cold = rollout_lib.rollout(twin, frames[:1], "scanning", cell_name=CELL)
    warm = rollout_lib.rollout(twin, frames[:1], "scanning", cell_name=CELL, warm_start=True)
    untouched = np.all(cold.memories[0] == 0, axis=-1)
    assert untouched.any()
    assert not np.all(warm.memories[0][untouched] == 0, axis=-1).any()
