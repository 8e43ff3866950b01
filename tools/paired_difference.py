"""Paired difference A - B of two evaluations of the same clips, with its 95 % interval.

Reads the per-video progress folders that `python -m patchwork_tf.evaluate
--output_dir=DIR --name=NAME` writes (`DIR/NAME_progress/video_*.json`, one metric state
per video) and prints A's and B's accuracy, A - B, and the percentile interval of A - B over
the same bootstrap resamples of the videos (`evaluation.bootstrap.paired_difference`).

  PYTHONPATH=. python tools/paired_difference.py \
      --a=/work/runs/imit1/eval128/dqn_progress --b=/work/runs/diag/eval128/change_progress
"""
import glob
import json
import os

import numpy as np
from absl import app
from absl import flags

from patchwork_tf.evaluation import bootstrap

flags.DEFINE_string("a", None, "Progress folder of method A (`<output_dir>/<name>_progress`).")
flags.DEFINE_string("b", None, "Progress folder of method B, evaluated on the same videos.")
FLAGS = flags.FLAGS


def load_states(progress_dir):
    """(video ids, metric states) of a progress folder, in evaluation order.

    Raises:
      FileNotFoundError: a folder without per-video files.
    """
    paths = sorted(glob.glob(os.path.join(progress_dir, "video_*.json")))
    if not paths:
        raise FileNotFoundError(
            f"{progress_dir} holds no video_*.json; pass the `<name>_progress` folder of a "
            "`python -m patchwork_tf.evaluate --output_dir=... --name=...` run.")
    records = []
    for path in paths:
        with open(path) as f:
            records.append(json.load(f))
    return [r["video_id"] for r in records], [r["metric"] for r in records]


def compare(dir_a, dir_b):
    """{metric: dict(a, b, difference, interval)} (fractions) of A - B on the same videos.

    Raises:
      ValueError: the two folders hold different videos.
    """
    ids_a, states_a = load_states(dir_a)
    ids_b, states_b = load_states(dir_b)
    if ids_a != ids_b:
        raise ValueError(f"{dir_a} and {dir_b} hold different videos ({len(ids_a)} and "
                         f"{len(ids_b)}); evaluate both on the same split and --num_clips.")
    everything = np.ones((1, len(states_a)))
    point_a = bootstrap.pooled_metric(states_a)(everything)
    point_b = bootstrap.pooled_metric(states_b)(everything)
    return {name: {"a": float(point_a[name][0]), "b": float(point_b[name][0]), **paired}
            for name, paired in bootstrap.paired_difference(states_a, states_b).items()}


def main(argv):
    del argv
    for name, row in compare(FLAGS.a, FLAGS.b).items():
        lo, hi = row["interval"]
        print(f"{name}: A {100 * row['a']:.1f}, B {100 * row['b']:.1f}, A - B "
              f"{100 * row['difference']:+.1f} [{100 * lo:+.1f}, {100 * hi:+.1f}] "
              "(paired 95 % interval over videos)")


if __name__ == "__main__":
    flags.mark_flags_as_required(["a", "b"])
    app.run(main)
