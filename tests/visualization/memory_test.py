"""memory_panels draws the patchwork: a step changes the rendering only inside its window."""
import numpy as np
import pytest

from patchwork_tf.visualization import memory as memory_lib
from patchwork_tf.visualization import rollout as rollout_lib

CELL = "block_6_depthwise"


def _inside(window, shape):
    mask = np.zeros(shape, bool)
    mask[window.y0:window.y0 + window.h, window.x0:window.x0 + window.w] = True
    return mask


@pytest.mark.parametrize("policy", ["scanning", "random"])
@pytest.mark.parametrize("method", ["pca", "mean"])
def test_each_step_changes_the_panel_only_inside_its_window(twin, frames, policy, method):
    result = rollout_lib.rollout(twin, frames[:6], policy, cell_name=CELL, seed=1)
    panels = memory_lib.memory_panels(result.memories, (64, 64), method)
    assert panels.shape == (6, 64, 64, 3) and panels.dtype == np.uint8
    previous = np.zeros_like(panels[0])  # zero memories render black
    for t in range(6):
        changed = np.any(panels[t] != previous, axis=-1)
        inside = _inside(result.window(t), changed.shape)
        assert not changed[~inside].any(), f"step {t} changed pixels outside its window"
        if result.actions[t] not in result.actions[:t]:  # a first visit fills black cells
            assert changed[inside].mean() > 0.5, f"step {t} left its new window unchanged"
        previous = panels[t]


def test_unwritten_memory_is_black_and_colours_are_per_pixel():
    memories = np.zeros((2, 2, 2, 4), np.float32)
    memories[0, 0, 0] = [1, 2, 3, 4]
    memories[1, 0, 0] = [1, 2, 3, 4]
    memories[1, 1, 1] = [4, 3, 2, 1]
    memories[1, 0, 1] = [1, 2, 3, 4]
    panels = memory_lib.memory_panels(memories, (4, 4), "pca")
    assert panels.shape == (2, 4, 4, 3)
    np.testing.assert_array_equal(panels[0, 2:, :], 0)
    np.testing.assert_array_equal(panels[0, :2, :2], panels[1, :2, 2:])  # same vector
    assert np.any(panels[1, 0, 0] != panels[1, 2, 2])


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="integer stride"):
        memory_lib.memory_panels(np.zeros((1, 3, 3, 2)), (64, 64))
    with pytest.raises(ValueError, match=r"\[T, H_l, W_l, C\]"):
        memory_lib.memory_panels(np.zeros((3, 3, 2)), (6, 6))
    with pytest.raises(ValueError, match="method"):
        memory_lib.memory_panels(np.zeros((1, 3, 3, 2)), (6, 6), "tsne")
