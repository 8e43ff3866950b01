"""Tests for the attention observation and its change cue, on hand-worked 8x8 frames."""
import numpy as np
import pytest
import tensorflow as tf

import patchwork_tf as pw
from patchwork_tf.policy import observation as observation_lib

# 8x8 frames, M=2, N=1: four 4x4 windows, row-major (0 top-left ... 3 bottom-right); the
# thumbnail stride is 4, so each window is one thumbnail pixel.
_GRID = pw.WindowGrid((8, 8), 2, 1)


def _frame(values):
    """A [1, 8, 8, 3] frame whose 4x4 quadrant q (row-major) has the value values[q]."""
    quadrants = np.asarray(values, np.float32).reshape(2, 2)
    return tf.constant(np.kron(quadrants, np.ones((4, 4)))[None, :, :, None]
                       * np.ones((1, 1, 1, 3)), tf.float32)


def test_stride_divides_the_windows():
    assert observation_lib.thumbnail_stride(_GRID) == 4
    assert observation_lib.thumbnail_stride(pw.WindowGrid((128, 128), 4, 2)) == 8
    assert observation_lib.thumbnail_stride(pw.WindowGrid((96, 96), 4, 2)) == 8
    assert observation_lib.thumbnail_stride(pw.WindowGrid((36, 36), 2, 1)) == 6
    with pytest.raises(ValueError, match="does not divide window"):
        observation_lib.AttentionObservation(_GRID, stride=3)


def test_change_since_each_window_was_last_processed():
    observer = observation_lib.AttentionObservation(_GRID, alpha=0.5)
    state = observer.start(_frame([0, 0, 0, 0]))
    np.testing.assert_allclose(state["change"], np.zeros((1, 4)))
    # Quadrant 3 brightens by 1.0 and quadrant 1 by 0.5; window 1 is processed.
    state = observer.advance(state, _frame([0, 0.5, 0, 1.0]), tf.constant([1]))
    np.testing.assert_allclose(state["change"], [[0, 0, 0, 1.0]])
    np.testing.assert_allclose(state["history"], [[0, 1, 0, 0]])
    # Quadrant 3 darkens to 0.25 (0.25 from what window 3 last saw, 0); window 0 processed.
    state = observer.advance(state, _frame([0.2, 0.5, 0, 0.25]), tf.constant([0]))
    np.testing.assert_allclose(state["change"], [[0, 0, 0, 0.25]], atol=1e-6)
    np.testing.assert_allclose(state["history"], [[1, 0.5, 0, 0]])
    observation = observer.observation(tf.zeros([1, 2, 2, 5]), state)
    assert set(observation) == {"memory", "history", "change"}
    np.testing.assert_allclose(observation["change"], state["change"])


def test_windows_of_overlapping_grids_average_their_thumbnail_pixels():
    grid = pw.WindowGrid((16, 16), 4, 2)   # 9 windows of 8x8 at offsets 0, 4, 8
    observer = observation_lib.AttentionObservation(grid, stride=4)
    rng = np.random.default_rng(0)
    frames = [tf.constant(rng.uniform(-1, 1, (2, 16, 16, 3)), tf.float32) for _ in range(3)]
    state = observer.start(frames[0])
    seen = frames[0].numpy().reshape(2, 4, 4, 4, 4, 3).mean((2, 4))
    for frames_t, actions in zip(frames[1:], ([4, 0], [8, 4])):
        state = observer.advance(state, frames_t, tf.constant(actions))
        current = frames_t.numpy().reshape(2, 4, 4, 4, 4, 3).mean((2, 4))
        for b, action in enumerate(actions):
            w = grid.window(action)
            seen[b, w.y0 // 4:(w.y0 + w.h) // 4, w.x0 // 4:(w.x0 + w.w) // 4] = current[
                b, w.y0 // 4:(w.y0 + w.h) // 4, w.x0 // 4:(w.x0 + w.w) // 4]
        difference = np.abs(current - seen).mean(-1)
        expected = [[difference[b, w.y0 // 4:(w.y0 + w.h) // 4, w.x0 // 4:(w.x0 + w.w) // 4].mean()
                     for w in (grid.window(a) for a in range(9))] for b in range(2)]
        np.testing.assert_allclose(state["change"], expected, rtol=1e-5, atol=1e-6)


def test_without_the_cue_the_paper_observation():
    observer = observation_lib.AttentionObservation(_GRID, change_cue=False)
    state = observer.advance(observer.start(_frame([0] * 4)), _frame([1] * 4), tf.constant([2]))
    assert set(state) == {"history"}
    assert set(observer.observation(tf.zeros([1, 2, 2, 5]), state)) == {"memory", "history"}
    assert set(observer.spec((2, 2, 5))) == {"memory", "history"}
    assert observer.flops() == 0


def test_spec_state_spec_and_flops():
    observer = observation_lib.AttentionObservation(_GRID)
    spec = observer.spec((2, 2, 5))
    assert spec["change"].shape == (4,) and spec["history"].shape == (4,)
    state_spec = observer.state_spec(3)
    assert state_spec["thumbnail"].shape == (3, 2, 2, 3)
    assert set(observer.initial_state(3)) == set(state_spec)
    # pooling 8*8*3, difference/abs/channel mean 3*2*2*3, window means 2*4*2*2.
    assert observer.flops() == 192 + 36 + 32
