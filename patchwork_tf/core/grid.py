"""The window grid: the discrete action space of Patchwork (Sec. 3.1).

A frame of `H x W` pixels is sliced `M` times per dimension; a window spans `N` adjacent slices,
so it has relative size `N/M` and its top-left corner lies at `(i/M, j/M)` for
`i, j in 0..M-N`. That gives `(M-N+1)^2` actions, numbered row-major. `M = N = 1` is the
full frame.
"""
import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class Window:
    """A window in the pixels (or feature cells) of one map: rows `y0:y0+h`, cols `x0:x0+w`."""

    y0: int
    x0: int
    h: int
    w: int

    def scaled(self, stride):
        """The same window in a map of the given stride; the caller checks alignment."""
        return Window(self.y0 // stride, self.x0 // stride, self.h // stride, self.w // stride)


class WindowGrid:
    """All windows of an `(M, N)` action space on frames of `frame_size = (H, W)` pixels.

    `H` and `W` must be divisible by `M`, so every window has integer pixel coordinates.
    Whether a window also falls on whole feature cells of a layer of stride `s` is
    `is_aligned(s)`; the Patchwork converter uses it to decide where windows stop (docs/design.md
    section 1).
    """

    def __init__(self, frame_size, m, n):
        height, width = (int(v) for v in frame_size)
        if not (isinstance(m, (int, np.integer)) and isinstance(n, (int, np.integer))):
            raise TypeError(f"m and n must be integers, got m={m!r}, n={n!r}.")
        if not 1 <= n <= m:
            raise ValueError(f"Need 1 <= n <= m for a window grid, got m={m}, n={n}.")
        if height <= 0 or width <= 0:
            raise ValueError(f"frame_size must be positive, got {frame_size}.")
        if height % m or width % m:
            raise ValueError(
                f"Frame size {height}x{width} is not divisible by m={m}: the windows of an "
                f"(m={m}, n={n}) grid would not fall on whole pixels. Use a frame size that is a "
                f"multiple of {m}."
            )
        self.frame_size = (height, width)
        self.m = int(m)
        self.n = int(n)
        self.positions_per_side = self.m - self.n + 1
        self.num_actions = self.positions_per_side**2
        self.slice_size = (height // self.m, width // self.m)
        self.window_size = (self.slice_size[0] * self.n, self.slice_size[1] * self.n)

    def __repr__(self):
        return f"WindowGrid(frame_size={self.frame_size}, m={self.m}, n={self.n})"

    @property
    def is_full_frame(self):
        return self.m == self.n

    def _check_action(self, action):
        if not 0 <= int(action) < self.num_actions:
            raise ValueError(
                f"Action {action} is outside 0..{self.num_actions - 1} of {self!r}."
            )

    def action_to_rowcol(self, action):
        """Row-major action index -> `(i, j)`, the window's corner in slices."""
        self._check_action(action)
        return divmod(int(action), self.positions_per_side)

    def rowcol_to_action(self, row, col):
        if not (0 <= row < self.positions_per_side and 0 <= col < self.positions_per_side):
            raise ValueError(
                f"(row, col) = ({row}, {col}) is outside 0..{self.positions_per_side - 1} "
                f"of {self!r}."
            )
        return int(row) * self.positions_per_side + int(col)

    def window(self, action):
        """The window of `action` in frame pixels."""
        row, col = self.action_to_rowcol(action)
        return Window(
            row * self.slice_size[0], col * self.slice_size[1], *self.window_size
        )

    def windows(self):
        """All windows in action order."""
        return [self.window(a) for a in range(self.num_actions)]

    def window_box(self, action):
        """The window of `action` as a normalized `(ymin, xmin, ymax, xmax)` box."""
        win = self.window(action)
        height, width = self.frame_size
        return (win.y0 / height, win.x0 / width, (win.y0 + win.h) / height,
                (win.x0 + win.w) / width)

    def is_aligned(self, stride):
        """Whether every window falls on whole cells of a feature map of this stride.

        Window offsets and sizes are multiples of the slice size, so that is what must divide
        by the stride. On the full-frame grid (`M = N`) the window is the whole map at every
        stride.
        """
        if self.is_full_frame:
            return True
        return all(s % int(stride) == 0 for s in self.slice_size)

    def window_in_map(self, action, stride, map_size):
        """The window of `action` in a feature map of `stride` and `map_size = (rows, cols)`.

        Raises if the grid is not aligned to the stride (the converter never asks then).
        """
        if self.is_full_frame:
            return Window(0, 0, int(map_size[0]), int(map_size[1]))
        if not self.is_aligned(stride):
            raise ValueError(
                f"Windows of {self!r} (slices of {self.slice_size[0]}x{self.slice_size[1]} "
                f"pixels) do not fall on whole cells of a stride-{stride} feature map."
            )
        return self.window(action).scaled(stride)

    def offsets_table(self, stride=1, map_size=None):
        """int32 `[num_actions, 2]`: `(y0, x0)` of each window in a map of this stride."""
        map_size = map_size or (self.frame_size[0] // stride, self.frame_size[1] // stride)
        return np.array(
            [
                (win.y0, win.x0)
                for win in (
                    self.window_in_map(a, stride, map_size) for a in range(self.num_actions)
                )
            ],
            dtype=np.int32,
        ).reshape(self.num_actions, 2)
