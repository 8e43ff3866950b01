"""Window geometry (Sec. 3.1) on hand-worked cases, and its refusals."""
import numpy as np
import pytest

from patchwork_tf.core.grid import Window, WindowGrid


@pytest.mark.parametrize("m, n, num_actions, window", [
    (1, 1, 1, (384, 384)), (2, 1, 4, (192, 192)), (4, 2, 9, (192, 192)), (4, 1, 16, (96, 96)),
])
def test_paper_grids(m, n, num_actions, window):
    grid = WindowGrid((384, 384), m, n)
    assert grid.num_actions == num_actions
    assert grid.window_size == window


def test_m4_n2_windows_hand_worked():
    grid = WindowGrid((384, 256), m=4, n=2)
    # Slices are 96 x 64 pixels; action 5 is row 1, col 2: corner (96, 128), size 192 x 128.
    assert grid.action_to_rowcol(5) == (1, 2)
    assert grid.rowcol_to_action(1, 2) == 5
    assert grid.window(5) == Window(96, 128, 192, 128)
    assert grid.window_box(5) == pytest.approx((0.25, 0.5, 0.75, 1.0))
    assert grid.window(8) == Window(192, 128, 192, 128)
    # At stride 32: corner (3, 4), window 6 x 4 cells.
    assert grid.window_in_map(5, 32, (12, 8)) == Window(3, 4, 6, 4)
    np.testing.assert_array_equal(grid.offsets_table(32)[[0, 5, 8]], [[0, 0], [3, 4], [6, 4]])


def test_alignment_rule():
    grid = WindowGrid((384, 384), m=4, n=2)  # slices of 96 pixels
    assert [grid.is_aligned(s) for s in (1, 2, 8, 16, 32, 64)] == [True] * 5 + [False]
    assert WindowGrid((96, 96), 1, 1).is_aligned(64)  # the full frame is always aligned
    with pytest.raises(ValueError, match="stride-64"):
        grid.window_in_map(0, 64, (6, 6))


def test_full_frame_window_is_whole_map():
    grid = WindowGrid((100, 100), 1, 1)
    assert grid.window_in_map(0, 32, (4, 4)) == Window(0, 0, 4, 4)


@pytest.mark.parametrize("kwargs, message", [
    (dict(frame_size=(384, 384), m=2, n=3), "1 <= n <= m"),
    (dict(frame_size=(100, 128), m=3, n=1), "not divisible by m=3"),
    (dict(frame_size=(64, 64), m=2.0, n=1), "must be integers"),
])
def test_refusals(kwargs, message):
    with pytest.raises((ValueError, TypeError), match=message):
        WindowGrid(**kwargs)


def test_action_out_of_range():
    grid = WindowGrid((64, 64), 2, 1)
    with pytest.raises(ValueError, match=r"outside 0\.\.3"):
        grid.window(4)
