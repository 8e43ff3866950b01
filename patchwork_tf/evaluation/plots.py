"""Maximum latency vs accuracy, single-frame against Patchwork variants (Fig. 5 to 8, left).

Takes `StreamResult.to_json()` records; draws with matplotlib (Agg) into PNG files. The
theoretical maximum is the largest per-frame FLOPs; the empirical maximum is the p95 of the
worst frame type (`results.maximum_ms`): a sample maximum of noisy times cannot rank methods.
Records written before per-type statistics are drawn at their sample maximum, labelled so.
"""
import textwrap

import matplotlib

matplotlib.use("Agg")
from matplotlib import pyplot as plt  # noqa: E402
from matplotlib import transforms  # noqa: E402

from patchwork_tf.evaluation import results  # noqa: E402

COLORS = {"single_frame": "tab:blue", "patchwork": "tab:red"}
LABELS = {"single_frame": "single-frame", "patchwork": "Patchwork"}
LATENCY = {
    "theoretical": "theoretical maximum latency (MFLOPs per frame)",
    "empirical": "empirical maximum latency: worst frame type's p95 (ms per frame, 1 thread)",
}


def maximum_latency(record, kind):
    """(x, label suffix): the maximum latency of `kind` a record is drawn at."""
    if kind == "theoretical":
        return record["theoretical"]["maximum"], ""
    p95 = results.maximum_ms(record)
    return (p95, "") if p95 is not None else (record["empirical"]["maximum"], " (sample max)")


def accuracy_metrics(records):
    """The accuracy keys to plot: mAP for detection, J and F for segmentation."""
    if all("mAP" in r["accuracy"] for r in records):
        return ["mAP"]
    return ["J", "F"]


def _label_points(ax, points, offset=6.0, step=9.0, max_lift=120.0):
    """Names each point `(x, y, name, color)` just beside it, lifting a label in steps of
    `step` points (up to `max_lift`) while it would cover another label or point; a leader
    line ties each label to its point. Call once the axes' limits and layout are final."""
    figure = ax.figure
    renderer = figure.canvas.get_renderer()
    to_pixels = figure.dpi / 72.0
    centres = [ax.transData.transform((x, y)) for x, y, _, _ in points]
    radius = 4 * to_pixels
    point_boxes = [transforms.Bbox.from_bounds(cx - radius, cy - radius, 2 * radius, 2 * radius)
                   for cx, cy in centres]
    placed = []
    for i in sorted(range(len(points)), key=lambda i: (points[i][1], points[i][0])):
        x, y, name, color = points[i]
        probe = ax.text(0, 0, name, fontsize=7)
        width, height = probe.get_window_extent(renderer).size
        probe.remove()
        others = placed + point_boxes[:i] + point_boxes[i + 1:]
        # Right of the point, or left where the label would leave the axes.
        side = -1.0 if centres[i][0] + offset * to_pixels + width > ax.bbox.x1 else 1.0
        lift = 0.0
        while lift < max_lift:
            left = centres[i][0] + side * offset * to_pixels - (width if side < 0 else 0.0)
            box = transforms.Bbox.from_bounds(left, centres[i][1] + lift * to_pixels - height / 2,
                                              width, height)
            if not any(box.overlaps(other) for other in others):
                break
            lift += step
        placed.append(box)
        ax.annotate(name, (x, y), xytext=(side * offset, lift), textcoords="offset points",
                    fontsize=7, color=color, va="center", ha="left" if side > 0 else "right",
                    arrowprops=dict(arrowstyle="-", color=color, lw=0.5, alpha=0.7, shrinkA=0,
                                    shrinkB=2))


def latency_accuracy_figure(records, kind, path, title=None):
    """Scatter of maximum latency (`kind` 'theoretical' or 'empirical', see the module doc)
    against accuracy.

    One panel per accuracy metric; single-frame variants blue, Patchwork red, each point
    labelled with its configuration's name. Writes a PNG to `path` and returns it.
    """
    if kind not in LATENCY:
        raise ValueError(f"kind must be one of {sorted(LATENCY)}, got {kind!r}.")
    if not records:
        raise ValueError("No records to plot.")
    xlabel = LATENCY[kind]
    metrics = accuracy_metrics(records)
    fig, axes = plt.subplots(1, len(metrics), figsize=(6.4 * len(metrics), 4.8), squeeze=False)
    panels = []
    for ax, metric in zip(axes[0], metrics):
        labels = []
        for method, color in COLORS.items():
            points = [r for r in records if r["method"] == method]
            if not points:
                continue
            xs, suffixes = zip(*(maximum_latency(r, kind) for r in points))
            ys = [100 * r["accuracy"][metric] for r in points]
            ax.scatter(xs, ys, color=color, label=LABELS[method], s=36, zorder=3)
            labels += [(x, y, r["name"] + suffix, color)
                       for x, y, r, suffix in zip(xs, ys, points, suffixes)]
        ax.set_xlabel(xlabel)
        ax.set_ylabel(f"{metric} (%)")
        ax.margins(0.12)
        ax.autoscale_view()
        ax.grid(True, alpha=0.3)
        ax.legend(loc="best")
        panels.append((ax, labels))
    fig.suptitle(textwrap.fill(title or f"{kind.capitalize()} maximum latency vs accuracy",
                              width=60 * len(metrics)), fontsize=11)
    fig.tight_layout()
    for ax, labels in panels:
        _label_points(ax, labels)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
