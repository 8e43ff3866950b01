"""Rendering a Patchwork Cell's memory as images (the patchwork of Fig. 2).

Each memory pixel (a C-vector) is mapped to a colour by one per-pixel function shared by all
steps, so two steps' renderings differ exactly where the memory changed: inside the windows
written in between. Pixels never written (all zero, as after `reset_states`) are black.
"""
import numpy as np
from matplotlib import colormaps

METHODS = ("pca", "mean")
_MAX_FIT_PIXELS = 20000


def _fit_pixels(flat, written):
    pixels = flat[written]
    if len(pixels) > _MAX_FIT_PIXELS:
        step = int(np.ceil(len(pixels) / _MAX_FIT_PIXELS))
        pixels = pixels[::step]
    return pixels


def memory_panels(memories, frame_size, method="pca"):
    """Renders a memory's history at frame resolution with colours shared across steps.

    Args:
      memories: float `[T, H_l, W_l, C]`, a cell's full-frame memory after each step.
      frame_size: `(H, W)` of the frames; `H / H_l` and `W / W_l` must be one integer stride.
      method: 'pca' (the first three principal components over all steps' written pixels as
        RGB) or 'mean' (the channel mean through the viridis colour map).

    Returns:
      uint8 `[T, H, W, 3]`, each memory pixel a `stride x stride` block (nearest upsampling),
      so a window of the frame covers the same pixels in the panel.

    Raises:
      ValueError: a memory that is not `[T, H_l, W_l, C]`, a frame size that is not an integer
        multiple of the memory's, or an unknown method.
    """
    memories = np.asarray(memories, np.float32)
    if memories.ndim != 4:
        raise ValueError(f"memories must be [T, H_l, W_l, C], got shape {memories.shape}.")
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}.")
    steps, rows, cols, channels = memories.shape
    height, width = frame_size
    stride = height // rows
    if rows * stride != height or cols * stride != width:
        raise ValueError(
            f"A {rows}x{cols} memory is not the {height}x{width} frame at one integer stride; "
            "pick a cell whose memory has the frame's size divided by its stride.")
    flat = memories.reshape(-1, channels)
    written = np.any(flat != 0.0, axis=1)
    rgb = np.zeros((flat.shape[0], 3), np.float32)
    if written.any():
        pixels = _fit_pixels(flat, written)
        if method == "pca":
            mean = pixels.mean(axis=0)
            _, _, components = np.linalg.svd(pixels - mean, full_matrices=False)
            basis = np.zeros((channels, 3), np.float32)
            basis[:, :min(3, components.shape[0])] = components[:3].T
            projected = (flat - mean) @ basis
            scale = np.percentile(np.abs((pixels - mean) @ basis), 99, axis=0)
            rgb = np.clip(projected / (2.0 * np.maximum(scale, 1e-6)) + 0.5, 0.0, 1.0)
        else:
            value = flat.mean(axis=1)
            low, high = np.percentile(pixels.mean(axis=1), [1, 99])
            normalized = np.clip((value - low) / max(high - low, 1e-6), 0.0, 1.0)
            rgb = colormaps["viridis"](normalized)[:, :3]
    rgb[~written] = 0.0
    panels = (rgb.reshape(steps, rows, cols, 3) * 255.0 + 0.5).astype(np.uint8)
    return panels.repeat(stride, axis=1).repeat(stride, axis=2)
