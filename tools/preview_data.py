"""Writes a PNG contact sheet of data clips: frames with boxes, class names and masks drawn.

Rows are clips, columns are frames (every `--frame_stride`-th). Boxes and instance masks are
coloured by track; the segmentation flavour overlays its primary-object `mask` in green.

    python tools/preview_data.py --task=detection --split=test --output=/tmp/preview.png
"""
from absl import app
from absl import flags
import matplotlib

matplotlib.use("Agg")
from matplotlib import patches  # noqa: E402
from matplotlib import pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from patchwork_tf.data import synthetic  # noqa: E402

_OUTPUT = flags.DEFINE_string("output", "/tmp/patchwork_preview.png", "PNG file to write.")
_SPLIT = flags.DEFINE_enum("split", "test", list(synthetic.SPLITS), "Benchmark split.")
_TASK = flags.DEFINE_enum("task", "detection", list(synthetic.TASKS), "Task flavour.")
_NUM_CLIPS = flags.DEFINE_integer("num_clips", 4, "Clips (rows) in the sheet.")
_START = flags.DEFINE_integer("start", 0, "Index of the first clip in the split.")
_FRAME_SIZE = flags.DEFINE_integer("frame_size", 128, "Square frame side in pixels.")
_CLIP_LENGTH = flags.DEFINE_integer("clip_length", 16, "Frames per clip.")
_FRAME_STRIDE = flags.DEFINE_integer("frame_stride", 3, "Show every this many frames.")
_MASKS = flags.DEFINE_bool("masks", True, "Overlay masks.")

_TRACK_COLOURS = plt.get_cmap("tab10").colors


def contact_sheet(clips, class_names, frame_stride, draw_masks, output):
    """Draws `clips` (a list of clip dicts of numpy arrays) into a PNG at `output`."""
    columns = range(0, clips[0]["frames"].shape[0], frame_stride)
    figure, axes = plt.subplots(len(clips), len(columns), squeeze=False,
                                figsize=(1.8 * len(columns), 1.9 * len(clips)))
    for row, clip in enumerate(clips):
        height, width = clip["frames"].shape[1:3]
        for col, t in enumerate(columns):
            axis = axes[row, col]
            image = clip["frames"][t].astype(np.float32) / 255.0
            if draw_masks and "instance_masks" in clip:
                for k in range(clip["valid"].shape[1]):
                    if clip["valid"][t, k]:
                        colour = np.array(_TRACK_COLOURS[clip["track_ids"][t, k] % 10])
                        where = clip["instance_masks"][t, k].astype(bool)
                        image[where] = 0.6 * image[where] + 0.4 * colour
            if draw_masks and "mask" in clip and "segmentation" in str(clip["clip_id"]):
                where = clip["mask"][t].astype(bool)
                image[where] = 0.5 * image[where] + 0.5 * np.array([0.0, 1.0, 0.0])
            axis.imshow(image, interpolation="nearest")
            for k in np.flatnonzero(clip["valid"][t]):
                ymin, xmin, ymax, xmax = clip["boxes"][t, k] * [height, width, height, width]
                colour = _TRACK_COLOURS[clip["track_ids"][t, k] % 10]
                axis.add_patch(patches.Rectangle((xmin - 0.5, ymin - 0.5), xmax - xmin,
                                                 ymax - ymin, fill=False, edgecolor=colour,
                                                 linewidth=1.2))
                axis.text(xmin, ymin - 1, class_names[clip["classes"][t, k]], color=colour,
                          fontsize=6, va="bottom")
            axis.set_xticks([])
            axis.set_yticks([])
            if row == 0:
                axis.set_title(f"t={t}", fontsize=7)
            if col == 0:
                axis.set_ylabel(str(clip["clip_id"]).replace("synthetic/", ""), fontsize=6)
    figure.tight_layout()
    figure.savefig(output, dpi=110)
    plt.close(figure)


def main(argv):
    del argv
    clips = list(synthetic.synthetic_clips(_SPLIT.value, _TASK.value, _NUM_CLIPS.value,
                                           _FRAME_SIZE.value, _CLIP_LENGTH.value,
                                           start=_START.value))
    contact_sheet(clips, synthetic.CLASS_NAMES, _FRAME_STRIDE.value, _MASKS.value, _OUTPUT.value)
    print(f"wrote {_OUTPUT.value}")


if __name__ == "__main__":
    app.run(main)
