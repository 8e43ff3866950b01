"""Latency benchmark: the Patchwork window step against the stock MobileNetV2, one CPU thread.

Measures, side by side in one process and interleaved round by round (so machine load hits
every variant alike), the median and p90 milliseconds per frame of:
  * the stock model on the full frame and on the ideal window-sized input (frame / 2 per
    side, the cost of a 1/4 window), each in plain graph mode and with XLA, and per
    batch-norm handling (`--batch_norm`: `as_is` runs the stock layers, `folded` the model
    with each batch norm folded into its conv, `core.folding`); the fastest of these counts
    as "stock", the fastest way a user could run it;
  * the Patchwork twin's stateful window step for each `(M, N)` grid, cycling over actions,
    per compile mode (`--step_modes`), write mode (`--writes`) and batch-norm handling
    (`folded` is the inference option `patchwork_model(..., fold_batch_norm=True)`);
  * and per `--presets`: `default`, the twin `patchwork_model(model, grid)` (the
    differentiable one training unrolls), and `inference`, `patchwork_model(model, grid,
    inference=True)`; the ratio inference / default is printed per grid.
Prints the CPU model and a table with FLOPs (analytic, `patchwork_tf.core.flops`) and the
ratios step / full frame and step / ideal window. `--profile_dir` writes a TF profiler trace
of the measured steps that TensorBoard's profile plugin opens.

  python tools/benchmark_latency.py --alpha=1.0 --frame_size=384 --grids=2:1,4:2,4:1 \
      --batch_norm=as_is,folded
  python tools/benchmark_latency.py --alpha=0.35 --frame_size=128 --grids=4:2 \
      --step_modes=graph --writes=bands --batch_norm=folded --presets=default,inference
"""
import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_float("alpha", 1.0, "MobileNetV2 depth multiplier.")
flags.DEFINE_integer("frame_size", 384, "Square frame size in pixels.")
flags.DEFINE_list("grids", ["2:1", "4:2", "4:1"], "Grids to measure, each as M:N.")
flags.DEFINE_integer("steps", 60, "Measured steps per variant (at least 50 for the report).")
flags.DEFINE_integer("warmup", 10, "Unmeasured steps per variant before measuring.")
flags.DEFINE_integer("rounds", 6, "Rounds over which the measured steps are interleaved.")
flags.DEFINE_integer("threads", 1, "intra- and inter-op threads.")
flags.DEFINE_list("stock_modes", ["graph", "xla"],
                  "How the stock models are compiled: graph and/or xla (XLA is ~10x slower "
                  "for the stock MobileNetV2 on the CPU).")
flags.DEFINE_list("step_modes", ["graph", "xla"],
                  "How the twin's step is compiled: graph and/or xla.")
flags.DEFINE_list("writes", ["bands"], "Memory write modes of the twin: window and/or bands.")
flags.DEFINE_list("batch_norm", ["as_is", "folded"],
                  "How the stock models and the twin's step run batch norm: as_is (the stock "
                  "layers) and/or folded into the convs before them (inference only).")
flags.DEFINE_list("presets", [], "Twins built by name: default (patchwork_model(model, "
                  "grid)) and/or inference (patchwork_model(model, grid, inference=True)).")
flags.DEFINE_string("profile_dir", None, "If set, write a TF profiler trace here.")
flags.DEFINE_string("json_out", None, "If set, write the results as JSON here.")


def _fail_on_bad_flags():
    for spec in FLAGS.grids:
        parts = spec.split(":")
        if len(parts) != 2 or not all(p.isdigit() for p in parts):
            raise app.UsageError(f"--grids entries must look like M:N (e.g. 4:2), got {spec!r}.")
    if not FLAGS.stock_modes or not set(FLAGS.stock_modes) <= {"graph", "xla"}:
        raise app.UsageError(f"--stock_modes takes graph and/or xla, got {FLAGS.stock_modes}.")
    if not set(FLAGS.step_modes) <= {"graph", "xla"} or not set(FLAGS.writes) <= {
            "window", "bands"}:
        raise app.UsageError("--step_modes takes graph, xla; --writes takes window, bands.")
    if not FLAGS.batch_norm or not set(FLAGS.batch_norm) <= {"as_is", "folded"}:
        raise app.UsageError(
            f"--batch_norm takes as_is and/or folded, got {','.join(FLAGS.batch_norm)!r}.")
    if not set(FLAGS.presets) <= {"default", "inference"}:
        raise app.UsageError(f"--presets takes default, inference, got {FLAGS.presets}.")
    if FLAGS.steps < 1 or FLAGS.rounds < 1 or FLAGS.steps % FLAGS.rounds:
        raise app.UsageError(
            f"--steps={FLAGS.steps} must be a positive multiple of --rounds={FLAGS.rounds}.")


def main(argv):
    del argv
    _fail_on_bad_flags()
    import itertools
    import json
    import time

    import numpy as np
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(FLAGS.threads)
    tf.config.threading.set_inter_op_parallelism_threads(FLAGS.threads)

    import tf_keras

    import patchwork_tf as pw
    from patchwork_tf.core import flops
    from patchwork_tf.core import folding

    size, alpha = FLAGS.frame_size, FLAGS.alpha
    variants = {}  # name -> (callable running one frame, FLOPs report)

    def stock(input_size):
        model = tf_keras.applications.MobileNetV2(
            input_shape=(input_size, input_size, 3), alpha=alpha, include_top=False,
            weights=None)
        frames = tf.random.uniform((1, input_size, input_size, 3), -1, 1)
        for bn, jit in itertools.product(FLAGS.batch_norm,
                                         [mode == "xla" for mode in FLAGS.stock_modes]):
            runs = model if bn == "as_is" else folding.fold_batch_norm_model(model)
            fn = tf.function(lambda x, m=runs: m(x, training=False), jit_compile=jit)
            variants[f"stock {input_size} {'xla' if jit else 'graph'} {bn}"] = (
                lambda fn=fn: fn(frames), flops.model_flops(runs))
        return model

    model = stock(size)
    stock(size // 2)
    frames = tf.random.uniform((1, size, size, 3), -1, 1)
    for spec in FLAGS.grids:
        m, n = (int(v) for v in spec.split(":"))
        grid = pw.WindowGrid((size, size), m, n)
        twins = {f"step M={m},N={n} {mode} {write} {bn}": dict(
            jit_compile=mode == "xla", write=write, fold_batch_norm=bn == "folded")
            for mode, write, bn in itertools.product(FLAGS.step_modes, FLAGS.writes,
                                                     FLAGS.batch_norm)}
        twins.update({f"step M={m},N={n} preset {preset}": dict(inference=preset == "inference")
                      for preset in FLAGS.presets})
        for name, options in twins.items():
            twin = pw.patchwork_model(model, grid, **options)
            twin.reset_states(1)
            twin.warm_start(frames)
            actions = [tf.constant([a], tf.int32) for a in range(grid.num_actions)]
            counter = iter(range(10**9))
            variants[name] = (
                lambda t=twin, acts=actions, c=counter: t.step(frames, acts[next(c) % len(acts)]),
                flops.step_flops(twin))

    def run(fn, count):
        times = []
        for _ in range(count):
            start = time.perf_counter()
            out = fn()
            tf.nest.map_structure(lambda t: t.numpy(), out)
            times.append(time.perf_counter() - start)
        return times

    for fn, _ in variants.values():
        run(fn, FLAGS.warmup)
    times = {name: [] for name in variants}
    if FLAGS.profile_dir:
        tf.profiler.experimental.start(FLAGS.profile_dir)
    for _ in range(FLAGS.rounds):
        for name, (fn, _) in variants.items():
            with tf.profiler.experimental.Trace(name):
                times[name] += run(fn, FLAGS.steps // FLAGS.rounds)
    if FLAGS.profile_dir:
        tf.profiler.experimental.stop()

    stats = {name: (1e3 * float(np.median(t)), 1e3 * float(np.percentile(t, 90)))
             for name, t in times.items()}
    def fastest_stock(input_size):
        return min(median for name, (median, _) in stats.items()
                   if name.startswith(f"stock {input_size} "))

    best_full, best_ideal = fastest_stock(size), fastest_stock(size // 2)
    print(f"CPU: {_cpu_model()}")
    print(f"MobileNetV2 alpha={alpha} {size}x{size}, batch 1, {FLAGS.threads} thread(s), "
          f"{FLAGS.steps} steps per variant; /full and /ideal divide by the fastest stock "
          "variant of that input size")
    print(f"{'variant':40s} {'MFLOPs':>8s} {'overhead Melem':>14s} {'median ms':>10s} "
          f"{'p90 ms':>8s} {'/full':>6s} {'/ideal':>7s}")
    rows = []
    for name, (_, report) in variants.items():
        median, p90 = stats[name]
        rows.append(dict(variant=name, mflops=report.mflops,
                         overhead_melements=report.overhead_elements / 1e6,
                         median_ms=median, p90_ms=p90, over_full=median / best_full,
                         over_ideal=median / best_ideal))
        print(f"{name:40s} {report.mflops:8.1f} {report.overhead_elements / 1e6:14.2f} "
              f"{median:10.2f} {p90:8.2f} {median / best_full:6.3f} {median / best_ideal:7.3f}")
    preset_ratios = {}
    for spec in FLAGS.grids if {"default", "inference"} <= set(FLAGS.presets) else []:
        m, n = spec.split(":")
        ratio = (stats[f"step M={m},N={n} preset inference"][0]
                 / stats[f"step M={m},N={n} preset default"][0])
        preset_ratios[spec] = ratio
        print(f"M={m},N={n}: inference preset / default twin (median ms) = {ratio:.3f}")
    if FLAGS.json_out:
        with open(FLAGS.json_out, "w") as f:
            json.dump(dict(alpha=alpha, frame_size=size, threads=FLAGS.threads,
                           cpu=_cpu_model(), rows=rows, preset_ratios=preset_ratios), f,
                      indent=2)


def _cpu_model():
    """The CPU's model name (/proc/cpuinfo), or the platform's processor string."""
    import platform
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


if __name__ == "__main__":
    app.run(main)
