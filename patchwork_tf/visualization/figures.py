"""Fig. 2 (the memory patchwork) and Fig. 4 (predictions and attention windows) as PNG files.

Both draw a `Rollout` (`patchwork_tf.visualization.rollout`) with matplotlib, the attention
window of each step as a red rectangle. Figures are `matplotlib.figure.Figure` objects saved
without pyplot, so no global backend state is touched, and a figure of `figsize` inches saved
at `dpi` is `figsize * dpi` pixels.
"""
import numpy as np
from matplotlib import figure as mpl_figure
from matplotlib import patches

from patchwork_tf.tasks import detection
from patchwork_tf.tasks import segmentation
from patchwork_tf.visualization import memory as memory_lib

WINDOW_COLOR = "red"
MASK_COLOR = (0.0, 1.0, 0.0)
PANEL_INCHES = 2.0
TITLE_INCHES = 0.3


def _steps(rollout, steps, default_count):
    total = len(rollout.actions)
    steps = list(range(min(default_count, total))) if steps is None else [int(s) for s in steps]
    bad = [s for s in steps if not 0 <= s < total]
    if not steps or bad:
        raise ValueError(f"steps must be indices into the rollout's {total} steps, got {steps}.")
    return steps


def _draw_window(ax, rollout, t):
    win = rollout.window(t)
    ax.add_patch(patches.Rectangle((win.x0 - 0.5, win.y0 - 0.5), win.w, win.h, fill=False,
                                   edgecolor=WINDOW_COLOR, linewidth=2.0))


def _image_axis(ax, image, title=None):
    ax.imshow(image, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=8)


# One colour per class id, matplotlib's tab10 without its red (red marks the window).
CLASS_COLORS = ("#1f77b4", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22",
                "#7f7f7f", "#2ca02c")


def detections(predictions, score_threshold):
    """`(box, class_id, score)` of the detections scoring at least `score_threshold`, with
    0-based class ids.

    `predictions` holds one frame's detections as `tasks.DetectionTask` names them:
    `detection_boxes` `[D, 4]` normalized `(ymin, xmin, ymax, xmax)`, `detection_scores`
    `[D]`, `detection_classes` `[D]` (1-based) and optionally `num_detections` (rows past it
    are padding).
    """
    scores = predictions[detection.SCORES]
    count = int(predictions.get(detection.NUM_DETECTIONS, len(scores)))
    return [(predictions[detection.BOXES][i],
             int(predictions[detection.CLASSES][i]) - detection.LABEL_ID_OFFSET,
             float(scores[i]))
            for i in range(count) if scores[i] >= score_threshold]


def foreground_mask(predictions, frame_size):
    """bool `[H, W]` from one frame's `segmentation_mask` (`[H, W]` or `[H, W, 1]`, bool or
    0/1)."""
    mask = np.asarray(predictions[segmentation.MASK])
    if mask.ndim == 3 and mask.shape[-1] == 1:
        mask = mask[..., 0]
    if mask.shape != tuple(frame_size):
        raise ValueError(f"predictions['{segmentation.MASK}'] must be [{frame_size[0]}, {frame_size[1]}] (the "
                         f"frame), got shape {mask.shape}; upsample it in the postprocess.")
    return mask.astype(bool)


def figure2(rollout, path, steps=None, method="pca", dpi=100):
    """Fig. 2: the observed cell's memory forming a patchwork over (by default) five steps.

    Top row: the frames with the step's window; bottom row: the memory after the step
    (`memory_lib.memory_panels`, colours shared by all steps).

    Args:
      rollout: a `Rollout` with memories (run with a `cell_name`).
      path: the PNG file to write.
      steps: the step indices to show; default the first five.
      method: memory rendering, 'pca' or 'mean'.
      dpi: pixels per inch; the image is `(2 * len(steps)) x (4 + 0.6)` inches.

    Returns:
      `path`.
    """
    if rollout.memories is None:
        raise ValueError("The rollout recorded no memory; run rollout(..., cell_name=...).")
    steps = _steps(rollout, steps, 5)
    panels = memory_lib.memory_panels(rollout.memories, rollout.frames.shape[1:3], method)
    fig = mpl_figure.Figure(figsize=(PANEL_INCHES * len(steps),
                                     2 * (PANEL_INCHES + TITLE_INCHES)))
    axes = fig.subplots(2, len(steps), squeeze=False)
    for column, t in enumerate(steps):
        _image_axis(axes[0, column], rollout.frames[t],
                    f"frame {t}, window {rollout.actions[t]}")
        _draw_window(axes[0, column], rollout, t)
        _image_axis(axes[1, column], panels[t], f"{rollout.cell_name} after step {t}"
                    if column == 0 else f"memory after step {t}")
        _draw_window(axes[1, column], rollout, t)
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=0.94, wspace=0.04,
                        hspace=0.12)
    fig.savefig(path, dpi=dpi)
    return path


def figure4(rollout, path, class_names=None, steps=None, score_threshold=0.5, columns=5,
            dpi=100):
    """Fig. 4: predictions and the attention window over (by default) ten consecutive frames.

    Detections (`detection_boxes`, `detection_scores`, `detection_classes` in the
    predictions) are drawn as boxes labelled with the class name and score; a foreground
    `segmentation_mask` as a green overlay. Predictions with
    neither (a bare backbone) leave only the windows drawn.

    Args:
      rollout: a `Rollout`.
      path: the PNG file to write.
      class_names: names of the 0-based class ids; None labels boxes with the ids.
      steps: the step indices to show; default the first ten.
      score_threshold: detections below it are not drawn.
      columns: panels per row.
      dpi: pixels per inch; the image is `(2 * columns) x (2.3 * rows)` inches.

    Returns:
      `path`.
    """
    steps = _steps(rollout, steps, 10)
    rows = -(-len(steps) // columns)
    height, width = rollout.frames.shape[1:3]
    fig = mpl_figure.Figure(figsize=(PANEL_INCHES * columns,
                                     rows * (PANEL_INCHES + TITLE_INCHES)))
    axes = fig.subplots(rows, columns, squeeze=False)
    for index, ax in enumerate(axes.flat):
        if index >= len(steps):
            ax.axis("off")
            continue
        t = steps[index]
        predictions = rollout.predictions[t]
        _image_axis(ax, rollout.frames[t], f"frame {t}")
        if segmentation.MASK in predictions:
            overlay = np.zeros((height, width, 4), np.float32)
            overlay[foreground_mask(predictions, (height, width))] = MASK_COLOR + (0.45,)
            ax.imshow(overlay, interpolation="nearest")
        if detection.BOXES in predictions:
            for box, class_id, score in detections(predictions, score_threshold):
                ymin, xmin, ymax, xmax = box * np.array([height, width, height, width])
                color = CLASS_COLORS[class_id % len(CLASS_COLORS)]
                ax.add_patch(patches.Rectangle((xmin - 0.5, ymin - 0.5), xmax - xmin,
                                               ymax - ymin, fill=False, edgecolor=color,
                                               linewidth=1.5))
                name = class_names[class_id] if class_names else str(class_id)
                # A label above a box at the frame's top edge would cover the title.
                inside = ymin < 0.12 * height
                ax.text(xmin, ymin if inside else ymin - 1, f"{name} {score:.2f}",
                        color="white", fontsize=6, va="top" if inside else "bottom",
                        bbox=dict(facecolor=color, edgecolor="none", pad=1.0))
        _draw_window(ax, rollout, t)
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=0.95, wspace=0.04,
                        hspace=0.15)
    fig.savefig(path, dpi=dpi)
    return path
