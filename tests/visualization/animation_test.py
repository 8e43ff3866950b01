"""The clip GIF: one frame per step, the window in red, masks blended green."""
import numpy as np
from PIL import Image
from PIL import ImageSequence

from patchwork_tf.visualization import animation
from patchwork_tf.visualization import rollout as rollout_lib

CELL = "block_6_depthwise"


def _gif_frames(path):
    with Image.open(path) as gif:
        return [np.asarray(f.convert("RGB")).astype(int) for f in ImageSequence.Iterator(gif)]


def test_gif_has_a_frame_per_step_with_the_window_in_red(twin, frames, tmp_path):
    result = rollout_lib.rollout(twin, frames, "random", cell_name=CELL, seed=2)
    gif = _gif_frames(animation.clip_gif(result, str(tmp_path / "clip.gif"), scale=2))
    assert len(gif) == len(frames)
    assert gif[0].shape == (128, 2 * (64 + animation.GAP + 64), 3)
    for t, image in enumerate(gif):
        win = result.window(t)
        for panel_x in (0, 2 * (64 + animation.GAP)):  # the frame and the memory panel
            edge = image[2 * win.y0, panel_x + 2 * win.x0:panel_x + 2 * (win.x0 + win.w)]
            red = (edge[:, 0] > 200) & (edge[:, 1] < 60) & (edge[:, 2] < 60)
            assert red.all(), f"frame {t}: the window's top edge is not red"

    bare = rollout_lib.rollout(twin, frames[:3], "scanning")
    gif = _gif_frames(animation.clip_gif(bare, str(tmp_path / "bare.gif"), scale=1))
    assert len(gif) == 3 and gif[0].shape == (64, 64, 3)


def test_mask_is_blended_green_inside_and_frame_untouched_outside(twin, frames):
    result = rollout_lib.rollout(twin, frames[:1], "scanning")
    mask = np.zeros((64, 64), bool)
    mask[40:60, 5:25] = True  # away from window 0 (rows and cols 0..31)
    result.predictions[0] = {"segmentation_mask": mask}
    drawn = animation.annotated_frame(result, 0, scale=1).astype(float)
    frame = frames[0].astype(float)
    expected = 0.55 * frame + 0.45 * np.array([0, 255, 0])
    np.testing.assert_allclose(drawn[mask], expected[mask], atol=1.0)
    outside = ~mask
    outside[:33, :33] = False  # the window's outline
    np.testing.assert_array_equal(drawn[outside], frame[outside])
