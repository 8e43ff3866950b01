"""Measures how concentrated change is in the synthetic benchmark, and how fast it generates.

For each pair of consecutive frames a pixel has changed when any channel differs by more than
`--threshold`. Per pair we report the share of changed pixels in the frame and, over the
windows of an `(M, N)` Patchwork grid (default M=4, N=2: nine windows of 1/4 of the frame,
paper Sec. 3.1), the share of the changed pixels that the best window holds. Pairs without any
change are counted separately (any window holds "all" of nothing). Generation speed is the
frames per second of `synthetic_clips` in this single Python thread (numpy on one core).

    python tools/data_statistics.py --split=test --task=detection --num_clips=200
"""
import time

from absl import app
from absl import flags
import numpy as np

from patchwork_tf.data import synthetic

_SPLIT = flags.DEFINE_enum("split", "test", list(synthetic.SPLITS), "Benchmark split.")
_TASK = flags.DEFINE_enum("task", "detection", list(synthetic.TASKS), "Task flavour.")
_NUM_CLIPS = flags.DEFINE_integer("num_clips", 200, "Clips to measure.")
_FRAME_SIZE = flags.DEFINE_integer("frame_size", 128, "Square frame side in pixels.")
_CLIP_LENGTH = flags.DEFINE_integer("clip_length", 16, "Frames per clip.")
_M = flags.DEFINE_integer("m", 4, "Grid slices per side (paper's M).")
_N = flags.DEFINE_integer("n", 2, "Window side in slices (paper's N).")
_THRESHOLD = flags.DEFINE_integer("threshold", 0, "A channel must differ by more than this.")


def best_window_shares(changed, m, n):
    """Share of each map's changed pixels inside its best window of an (m, n) grid.

    Args:
        changed: bool [P, H, W] change maps; H and W divisible by m.
        m, n: the grid (windows of n x n slices, top-left corners at multiples of 1/m).

    Returns:
        float64 [P]; NaN where a map has no changed pixel.
    """
    pairs, height, width = changed.shape
    if height % m or width % m:
        raise ValueError(f"frame {height}x{width} is not divisible by m={m}.")
    blocks = changed.reshape(pairs, m, height // m, m, width // m).sum(axis=(2, 4))
    windows = np.zeros((pairs, m - n + 1, m - n + 1))
    for dy in range(n):
        for dx in range(n):
            windows += blocks[:, dy:dy + m - n + 1, dx:dx + m - n + 1]
    totals = changed.sum(axis=(1, 2)).astype(np.float64)
    best = windows.reshape(pairs, -1).max(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(totals > 0, best / totals, np.nan)


def main(argv):
    del argv
    start = time.perf_counter()
    clips = list(synthetic.synthetic_clips(_SPLIT.value, _TASK.value, _NUM_CLIPS.value,
                                           _FRAME_SIZE.value, _CLIP_LENGTH.value))
    seconds = time.perf_counter() - start
    frames = sum(clip["frames"].shape[0] for clip in clips)

    overall, best = [], []
    for clip in clips:
        video = clip["frames"].astype(np.int16)
        changed = (np.abs(np.diff(video, axis=0)) > _THRESHOLD.value).any(axis=-1)
        overall.append(changed.mean(axis=(1, 2)))
        best.append(best_window_shares(changed, _M.value, _N.value))
    overall = np.concatenate(overall)
    best = np.concatenate(best)
    moving = best[~np.isnan(best)]
    print(f"split={_SPLIT.value} task={_TASK.value} clips={len(clips)} "
          f"frame={_FRAME_SIZE.value} T={_CLIP_LENGTH.value} pairs={overall.size} "
          f"grid M={_M.value} N={_N.value} threshold={_THRESHOLD.value}")
    print(f"changed pixels per frame: mean {overall.mean():.2%}, median "
          f"{np.median(overall):.2%}, 90th percentile {np.percentile(overall, 90):.2%}")
    print(f"pairs without change: {np.mean(np.isnan(best)):.1%}")
    print(f"best window's share of the changed pixels (pairs with change): median "
          f"{np.median(moving):.1%}, mean {moving.mean():.1%}, share of pairs > 50%: "
          f"{np.mean(moving > 0.5):.1%}")
    print(f"generation: {frames / seconds:.0f} frames/s on one core ({frames} frames, "
          f"{seconds:.2f} s)")


if __name__ == "__main__":
    app.run(main)
