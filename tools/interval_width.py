r"""How many evaluation clips a 95 % interval of a given width needs, and what they cost.

    PYTHONPATH=. python tools/interval_width.py --model_dir=runs/synthetic_det \
        --num_clips=256 --subsets=16,32,64,128,256 --policies=single_frame,scanning

Evaluates each policy once on the first `--num_clips` clips of `--split` (as the train job's
evaluation does, `evaluation.api.evaluate`, one thread), side by side in one process, then for each
subset size n computes the 95 % bootstrap interval over videos (`evaluation.bootstrap`) of
the accuracy on the first n clips (the clips an evaluation with `--eval_clips=n` scores).
Prints, per policy and n: the accuracy, the interval, its half-width (the larger side, in
points) and half-width x sqrt(n), which stays about constant when the width shrinks as
1/sqrt(n); the clips needed for `--target` points, extrapolated from the largest subset;
the evaluation's wall time per clip of each policy and its ratio to the first policy's; the
bootstrap's own time; and the CPU model. Timings are of this machine in its current state:
read the ratios, not the absolute numbers.
"""
import math
import time

from absl import app
from absl import flags

from machine import cpu_model  # tools/machine.py

FLAGS = flags.FLAGS
flags.DEFINE_string("model_dir", None, "A train job or stage-1 directory.")
flags.DEFINE_enum("split", "test", ["validation", "test"], "Synthetic split.")
flags.DEFINE_integer("num_clips", 256, "Clips evaluated per policy.")
flags.DEFINE_list("subsets", ["16", "32", "64", "128", "256"], "Subset sizes n (first n clips).")
flags.DEFINE_list("policies", ["single_frame", "scanning"], "Policies evaluated, side by side.")
flags.DEFINE_integer("clip_length", 16, "Frames per clip.")
flags.DEFINE_integer("frame_size", 128, "Frame size of the clips.")
flags.DEFINE_float("target", 1.5, "Wanted half-width of the interval, in points.")
flags.DEFINE_integer("threads", 1, "TensorFlow intra- and inter-op threads.")
flags.mark_flag_as_required("model_dir")


def main(argv):
    del argv
    import numpy as np
    import tensorflow as tf
    tf.config.threading.set_intra_op_parallelism_threads(FLAGS.threads)
    tf.config.threading.set_inter_op_parallelism_threads(FLAGS.threads)
    from patchwork_tf.evaluation import api
    from patchwork_tf.evaluation import bootstrap

    subsets = sorted(int(n) for n in FLAGS.subsets if int(n) <= FLAGS.num_clips)
    if not subsets:
        raise app.UsageError(f"--subsets {FLAGS.subsets} are all above --num_clips.")
    print(f"CPU: {cpu_model()}; {FLAGS.threads} TensorFlow thread(s)")
    evaluated = {}
    for policy in FLAGS.policies:
        loaded = api.load_trained(FLAGS.model_dir, with_q_network=policy == "dqn")
        begin = time.perf_counter()
        result, _ = api.evaluate(
            loaded, policy, *api.default_grid(loaded),
            split=FLAGS.split, num_clips=FLAGS.num_clips, clip_length=FLAGS.clip_length,
            clip_frame_size=(FLAGS.frame_size,) * 2, name=policy)
        evaluated[policy] = (result, time.perf_counter() - begin)

    print(f"\n{FLAGS.split} split, clips of {FLAGS.clip_length} frames; half-width: the larger "
          "side of the 95 % interval, in points")
    print("| policy | clips n | accuracy % | 95 % interval | half-width | half-width x sqrt(n) "
          "| bootstrap s |")
    print("|---|---|---|---|---|---|---|")
    needed = {}
    for policy, (result, _) in evaluated.items():
        metric = next(iter(result.accuracy))
        for n in subsets:
            states = result.video_states[:n]
            begin = time.perf_counter()
            lo, hi = bootstrap.interval(states)[metric]
            seconds = time.perf_counter() - begin
            point = bootstrap.pooled_metric(states)(np.ones((1, n)))[metric][0]
            half = 100 * max(point - lo, hi - point)
            print(f"| {policy} | {n} | {100 * point:.1f} | [{100 * lo:.1f}, {100 * hi:.1f}] | "
                  f"{half:.2f} | {half * math.sqrt(n):.1f} | {seconds:.2f} |")
        needed[policy] = math.ceil(n * (half / FLAGS.target) ** 2)

    first = FLAGS.policies[0]
    per_clip = {p: seconds / FLAGS.num_clips for p, (_, seconds) in evaluated.items()}
    print(f"\n| policy | clips for +-{FLAGS.target:g} points (from n = {subsets[-1]}) | "
          f"evaluation s per clip | / {first} |")
    print("|---|---|---|---|")
    for policy in FLAGS.policies:
        print(f"| {policy} | {needed[policy]} | {per_clip[policy]:.2f} | "
              f"{per_clip[policy] / per_clip[first]:.2f} |")


if __name__ == "__main__":
    app.run(main)
