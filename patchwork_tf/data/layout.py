"""Checks on local copies of real data sets: clear errors that name the expected layout."""
import os

import numpy as np
from PIL import Image


class DataLayoutError(ValueError):
    """A local data copy is missing, or a file in it is malformed."""


def require(path, what, layout):
    """Returns `path` if it exists; raises DataLayoutError naming `what` and `layout` if not."""
    if not os.path.exists(path):
        raise DataLayoutError(f"{what} not found at {path!r}. Expected this layout:\n{layout}")
    return path


def read_lines(path, what, layout):
    """Non-empty, stripped lines of a list file that must exist."""
    with open(require(path, what, layout)) as f:
        return [line.strip() for line in f if line.strip()]


def read_image(path, layout, mode="RGB"):
    """Pixels of an image file: uint8 [H, W, 3] for mode "RGB"; stored values (palette
    indices, grey levels; [H, W] or [H, W, C]) for mode None."""
    require(path, "image", layout)
    try:
        with Image.open(path) as image:
            if mode is None:
                return np.asarray(image)
            return np.asarray(image.convert(mode) if image.mode != mode else image, np.uint8)
    except OSError as error:
        raise DataLayoutError(f"cannot decode image {path!r} ({error}). Expected this layout:\n"
                              f"{layout}") from error
