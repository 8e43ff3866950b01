"""An animated GIF of a rollout: each frame with its predictions and attention window.

Drawn with Pillow: per step, the frame with the window (red), detections (boxes with class
names) or a green foreground mask, and, when the rollout recorded a memory, the memory panel
beside it (`patchwork_tf.visualization.memory`), so the patchwork is seen forming.
"""
import numpy as np
from matplotlib import colors as mpl_colors
from PIL import Image
from PIL import ImageDraw

from patchwork_tf.tasks import detection
from patchwork_tf.tasks import segmentation
from patchwork_tf.visualization import figures
from patchwork_tf.visualization import memory as memory_lib

WINDOW_RGB = (255, 0, 0)
MASK_RGB = np.array([0, 255, 0], np.float32)
GAP = 4  # pixels between the frame and the memory panel, before scaling


def _rgb(color):
    return tuple(int(round(255 * c)) for c in mpl_colors.to_rgb(color))


def annotated_frame(rollout, t, class_names=None, score_threshold=0.5, scale=2):
    """uint8 `[scale * H, scale * W, 3]`: frame `t` with predictions and its window drawn."""
    frame = rollout.frames[t].astype(np.float32)
    height, width = frame.shape[:2]
    predictions = rollout.predictions[t]
    if segmentation.MASK in predictions:
        mask = figures.foreground_mask(predictions, (height, width))
        frame[mask] = 0.55 * frame[mask] + 0.45 * MASK_RGB
    image = Image.fromarray(frame.astype(np.uint8)).resize(
        (width * scale, height * scale), Image.Resampling.NEAREST)
    draw = ImageDraw.Draw(image)
    if detection.BOXES in predictions:
        for box, class_id, score in figures.detections(predictions, score_threshold):
            ymin, xmin, ymax, xmax = box * np.array([height, width, height, width]) * scale
            color = _rgb(figures.CLASS_COLORS[class_id % len(figures.CLASS_COLORS)])
            draw.rectangle([xmin, ymin, xmax - 1, ymax - 1], outline=color, width=2)
            name = class_names[class_id] if class_names else str(class_id)
            label = draw.textbbox((xmin + 1, ymin + 1), f"{name} {score:.2f}")
            draw.rectangle(label, fill=color)
            draw.text((xmin + 1, ymin + 1), f"{name} {score:.2f}", fill=(255, 255, 255))
    _draw_window(draw, rollout, t, scale)
    return np.asarray(image)


def _draw_window(draw, rollout, t, scale):
    win = rollout.window(t)
    draw.rectangle([win.x0 * scale, win.y0 * scale, (win.x0 + win.w) * scale - 1,
                    (win.y0 + win.h) * scale - 1], outline=WINDOW_RGB, width=2)


def clip_gif(rollout, path, class_names=None, score_threshold=0.5, method="pca", scale=2,
             frame_ms=250):
    """Writes the rollout as an animated GIF, one GIF frame per step, looping.

    Args:
      rollout: a `Rollout`.
      path: the .gif file to write.
      class_names: names of the 0-based class ids for box labels.
      score_threshold: detections below it are not drawn.
      method: memory rendering ('pca' or 'mean') when the rollout has memories.
      scale: integer upscaling of every pixel (nearest), for legibility.
      frame_ms: display time of each frame in milliseconds.

    Returns:
      `path`. Each GIF frame is `scale * H` high and `scale * W` wide, plus `scale * (W +
      GAP)` with a memory panel.
    """
    panels = None
    if rollout.memories is not None:
        panels = memory_lib.memory_panels(rollout.memories, rollout.frames.shape[1:3], method)
    images = []
    for t in range(len(rollout.actions)):
        frame = annotated_frame(rollout, t, class_names, score_threshold, scale)
        if panels is not None:
            panel = Image.fromarray(panels[t]).resize(frame.shape[1::-1],
                                                      Image.Resampling.NEAREST)
            _draw_window(ImageDraw.Draw(panel), rollout, t, scale)
            gap = np.full((frame.shape[0], GAP * scale, 3), 255, np.uint8)
            frame = np.concatenate([frame, gap, np.asarray(panel)], axis=1)
        images.append(Image.fromarray(frame))
    images[0].save(path, save_all=True, append_images=images[1:], duration=frame_ms, loop=0,
                   disposal=1, optimize=False)
    return path
