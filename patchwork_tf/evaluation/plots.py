"""Maximum latency vs accuracy, single-frame against Patchwork variants (Fig. 5 to 8, left).

Takes `StreamResult.to_json()` records; draws with matplotlib (Agg) into PNG files.
"""
import textwrap

import matplotlib

matplotlib.use("Agg")
from matplotlib import pyplot as plt  # noqa: E402

COLORS = {"single_frame": "tab:blue", "patchwork": "tab:red"}
LABELS = {"single_frame": "single-frame", "patchwork": "Patchwork"}
LATENCY = {
    "theoretical": ("theoretical maximum latency (MFLOPs per frame)", "maximum"),
    "empirical": ("empirical maximum latency (ms per frame, 1 thread)", "maximum"),
}


def accuracy_metrics(records):
  """The accuracy keys to plot: mAP for detection, J and F for segmentation."""
  if all("mAP" in r["accuracy"] for r in records):
    return ["mAP"]
  return ["J", "F"]


def latency_accuracy_figure(records, kind, path, title=None):
  """Scatter of maximum latency (`kind` 'theoretical' or 'empirical') against accuracy.

  One panel per accuracy metric; single-frame variants blue, Patchwork red, each point
  labelled with its configuration's name. Writes a PNG to `path` and returns it.
  """
  if kind not in LATENCY:
    raise ValueError(f"kind must be one of {sorted(LATENCY)}, got {kind!r}.")
  if not records:
    raise ValueError("No records to plot.")
  xlabel, stat = LATENCY[kind]
  metrics = accuracy_metrics(records)
  fig, axes = plt.subplots(1, len(metrics), figsize=(6.4 * len(metrics), 4.8), squeeze=False)
  for ax, metric in zip(axes[0], metrics):
    for method, color in COLORS.items():
      points = [r for r in records if r["method"] == method]
      if not points:
        continue
      ax.scatter([r[kind][stat] for r in points], [100 * r["accuracy"][metric] for r in points],
                 color=color, label=LABELS[method], s=36, zorder=3)
      # Variants often share a latency or an accuracy: labels are staggered, and a leader
      # line ties each to its own point.
      for i, r in enumerate(points):
        ax.annotate(r["name"], (r[kind][stat], 100 * r["accuracy"][metric]),
                    textcoords="offset points", xytext=(6, 4 + 9 * (i % 4)), fontsize=7,
                    color=color, arrowprops=dict(arrowstyle="-", color=color, lw=0.5,
                                                 alpha=0.7, shrinkA=0, shrinkB=2))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(f"{metric} (%)")
    ax.margins(0.12)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best")
  fig.suptitle(textwrap.fill(title or f"{kind.capitalize()} maximum latency vs accuracy",
                            width=60 * len(metrics)), fontsize=11)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)
  return path
